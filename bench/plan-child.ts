import { createPool } from '../lib/db/postgres.js';
import { startBoss } from '../lib/queue.js';
import { planOccurrence } from '../core/delivery/plan.js';

// Plans one occurrence in a process of its own, so its peak RSS is the planner's alone.
const [url, broadcastId] = process.argv.slice(2) as [string, string];
const pool = createPool(url, 2, 'bench-plan');
const boss = await startBoss(url, { supervise: false, max: 2 });
const started = performance.now();
const r = await planOccurrence(pool, boss, { broadcastId, key: 'once', scheduledAt: new Date() }, new Date());
const seconds = (performance.now() - started) / 1000;
await boss.stop({ graceful: false });
await pool.end();
process.stdout.write(JSON.stringify({ rows: r.audienceSize, batches: r.batches, seconds, max_rss_mb: process.resourceUsage().maxRSS / 1024 }) + '\n');
