import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTs } from '../devenv/processes.js';
import { connectToSimulator, SIMULATOR_TELNYX_API_KEY } from '../services/simulator/client.js';
import { pushTokenOk, smsNumberOk } from '../services/simulator/behaviours.js';
import { createTelnyxProvider } from '../services/providers/telnyx.js';
import { createFcmProvider } from '../services/providers/fcm.js';
import { rawPushLoop, rawSmsLoop } from './raw-loop.js';

/**
 * Raw SDK rates against the simulator running in its own process:
 *   tsx bench/raw-bench.ts [smsCount] [pushCount] [concurrency] [pushBatchSize] [latencies]
 * (pushBatchSize defaults to min(500, concurrency); latencies e.g. "0,20")
 * Prints one JSON line per scenario.
 */
const smsCount = Number(process.argv[2] ?? 20_000);
const pushCount = Number(process.argv[3] ?? 100_000);
const concurrency = Number(process.argv[4] ?? 100);
const batchSize = process.argv[5] ? Number(process.argv[5]) : undefined;
const latencies = (process.argv[6] ?? '0,20').split(',').map(Number);

let announce: (url: string) => void = () => {};
const child = startTs('services/simulator/main.ts', {
  name: 'simulator',
  env: { ...process.env, HERALD_SIMULATOR_PORT: '0', HERALD_SIMULATOR_FCM_PORT: '0', HERALD_DATA_DIR: mkdtempSync(join(tmpdir(), 'herald-sim-')), LOG_LEVEL: 'info' },
  onLine: (line) => {
    try {
      const rec = JSON.parse(line) as { url?: string };
      if (rec.url) announce(rec.url);
    } catch {
      /* not a log line */
    }
  },
});
const url = await new Promise<string>((resolve, reject) => {
  announce = resolve;
  void child.exited.then((exit) => reject(new Error(`simulator exited with ${exit.code}:\n${child.tail()}`)));
});
const sim = await connectToSimulator(url);
const admin = async (path: string, body?: unknown) => {
  const res = await fetch(new URL(path, url), body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  return res.json() as Promise<Record<string, any>>;
};

const telnyx = createTelnyxProvider({ apiKey: SIMULATOR_TELNYX_API_KEY, baseURL: sim.telnyxBaseURL });
const fcm = createFcmProvider({ projectId: 'herald-bench', simulator: sim.fcm, maxSockets: Math.max(256, concurrency) });

try {
  for (const latencyMs of latencies) {
    await admin('/_sim/config', { latencyMs, receipts: 'none' });
    // Warm-up: connections and JIT.
    await rawSmsLoop({ provider: telnyx, count: 500, concurrency, makeMessage: (i) => ({ from: '+13125550100', to: smsNumberOk(7_000_000 + i), text: 'warm-up' }) });
    await rawPushLoop({ provider: fcm, count: 1000, concurrency, makeMessage: (i) => ({ token: pushTokenOk(9_000_000 + i), body: 'warm-up' }) });
    await admin('/_sim/reset', {});

    const sms = await rawSmsLoop({
      provider: telnyx, count: smsCount, concurrency,
      makeMessage: (i) => ({ from: '+13125550100', to: smsNumberOk(i), text: 'Service starts at 10am. Reply STOP to opt out.' }),
    });
    const push = await rawPushLoop({
      provider: fcm, count: pushCount, concurrency, batchSize,
      makeMessage: (i) => ({ token: pushTokenOk(i), title: 'CS101', body: 'Class moved to room 4' }),
    });
    const received = await admin('/_sim/received');
    for (const [name, r, ch] of [['raw_telnyx_sdk', sms, received.sms], ['raw_firebase_admin_sendEach', push, received.push]] as const) {
      console.log(JSON.stringify({
        scenario: name, latency_ms: latencyMs, concurrency, ...(name.includes('sendEach') ? { batch_size: batchSize ?? Math.min(500, concurrency) } : {}), count: r.count,
        seconds: Number(r.seconds.toFixed(2)), per_second: Math.round(r.perSecond),
        outcomes: r.outcomes, simulator_accepted: ch.accepted, simulator_duplicates: ch.duplicates.count,
      }));
    }
    await admin('/_sim/reset', {});
  }
} finally {
  await fcm.close();
  telnyx.close();
  await child.stop();
}
