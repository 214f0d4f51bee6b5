/**
 * Runs the local platform (devenv/local-platform.ts, as `npm start`), scrapes the /metrics
 * of every Herald service, and fails when a rule or a dashboard panel names a metric
 * that none of them exports (and that is not a pinned cluster series).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalPlatform, type LocalPlatform } from '../../devenv/local-platform.js';
import { ALERTS } from './alerts.js';
import { dashboards, panelQueries } from './dashboards.js';
import { exportedSeries, metricDrift, type MetricReference } from './drift.js';
import { EXTERNAL_SERIES } from './external-series.js';

let dataDir: string;
let platform: LocalPlatform;
const scraped: Record<string, Set<string>> = {};
let exported: Set<string>;

const references = (): MetricReference[] => [...ALERTS.map((a) => ({ source: `alert ${a.alert}`, expr: a.expr })), ...panelQueries()];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-drift-'));
  platform = await startLocalPlatform({ dataDir, ports: 'free', seed: false, logDir: false });
  for (const service of ['api', 'worker', 'operator'] as const) {
    const res = await fetch(`http://127.0.0.1:${platform.ports[service]}/metrics`);
    expect(res.status, `${service} /metrics`).toBe(200);
    scraped[service] = exportedSeries(await res.text());
  }
  exported = new Set(Object.values(scraped).flatMap((s) => [...s]));
}, 240_000);

afterAll(async () => {
  await platform?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}, 120_000);

describe('metric drift', () => {
  it('every service exports Herald metrics on /metrics', () => {
    for (const [service, names] of Object.entries(scraped)) {
      expect([...names].filter((n) => n.startsWith('herald_')).length, service).toBeGreaterThan(10);
    }
  });

  it('no rule or dashboard panel names a metric that no service exports', () => {
    expect(panelQueries().length).toBeGreaterThan(40);
    expect(metricDrift(references(), exported)).toEqual([]);
  });

  it('a made-up metric is caught (so the check above can fail)', () => {
    const refs = [...references(), { source: 'alert Invented', expr: 'sum(rate(herald_messages_invented_total[5m])) > 0' }];
    expect(metricDrift(refs, exported)).toEqual(['alert Invented: herald_messages_invented_total']);
  });

  it('a made-up metric in a dashboard panel is caught', () => {
    const boards = structuredClone(dashboards());
    const panel = boards['herald-queue']!.panels!.find((p) => 'targets' in p && p.targets?.length) as unknown as { title: string; targets: { expr: string }[] };
    panel.targets[0]!.expr = 'max(herald_queue_depht)';
    expect(metricDrift(panelQueries(boards), exported)).toEqual([`dashboard herald-queue panel "${panel.title}": herald_queue_depht`]);
  });

  it('the pinned cluster series are not Herald names (a Herald metric cannot hide there)', () => {
    expect([...EXTERNAL_SERIES].filter((n) => n.startsWith('herald_'))).toEqual([]);
  });
});
