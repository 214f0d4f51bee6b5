/**
 * npm run bench:apiserver — what the Kubernetes side of a Broadcast costs on this
 * machine, with nothing of Herald running: a fresh local control plane (the same
 * kube-apiserver and etcd as bench:operator, CRD installed, one watch open as the
 * operator's informer keeps), then for N Broadcasts of 20 recipients each:
 *
 *   create          POST, CREATE_CONCURRENCY in flight (bench:operator's burst)
 *   finalizer       merge PATCH of metadata.finalizers, 64 in flight (the operator's concurrency)
 *   status          PUT of the status subresource, 64 in flight
 *
 * Prints one JSON line: each phase's wall seconds and the API server's and etcd's CPU
 * seconds, per write in ms. Every Broadcast costs at least these three writes before
 * Herald's own work (planning, sending) is counted, which bounds what bench:operator can
 * reach on the same cores.
 *
 *   BENCH_BROADCASTS=1000 BENCH_CREATE_CONCURRENCY=200
 */
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FINALIZER } from '../operator/api/v1alpha1/broadcast.js';
import { startControlPlane } from '../devenv/control-plane.js';
import { REPO, runKubectl } from '../devenv/local-platform.js';
import { smsNumberOk } from '../services/simulator/behaviours.js';
import { kubeAdmin, processesUnder } from './kube.js';
import { cpuSeconds } from './processes.js';

const BROADCASTS = Number(process.env.BENCH_BROADCASTS ?? 1000);
const CREATE_CONCURRENCY = Number(process.env.BENCH_CREATE_CONCURRENCY ?? 200);
const OPERATOR_CONCURRENCY = 64;
const RECIPIENTS = 20;

const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-bench-apiserver-'));
const cp = await startControlPlane({ dir });
try {
  const must = async (args: string[]) => {
    const r = await runKubectl(cp.adminKubeconfig, args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  };
  await must(['apply', '-f', path.join(REPO, 'operator/config/crd/broadcasts.herald.dev.yaml')]);
  await must(['wait', '--for=condition=Established', '--timeout=60s', 'crd/broadcasts.herald.dev']);
  const { server, agent, request } = await kubeAdmin(dir, cp.server, CREATE_CONCURRENCY);
  const collection = '/apis/herald.dev/v1alpha1/namespaces/default/broadcasts';
  // Established is not served yet: the new resource's storage answers 429 for a moment.
  for (let i = 0; (await request('GET', collection)).status !== 200; i++) {
    if (i > 600) throw new Error('Broadcast storage never became ready');
    await new Promise((r) => setTimeout(r, 100));
  }

  // One watch, as the operator's informer holds: every write is also an event sent to it.
  const watch = https.request({ hostname: server.hostname, port: server.port, path: `${collection}?watch=1`, agent }, (res) => res.resume());
  watch.on('error', () => {});
  watch.end();

  const pids = processesUnder(dir);
  const controlPlaneCpu = () => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const clientCpu = () => (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
  const objects = new Array<{ metadata: { resourceVersion: string } } & Record<string, unknown>>(BROADCASTS);
  const phases: Record<string, { seconds: number; control_plane_cpu_seconds: number; cpu_ms_per_write: number; client_cpu_seconds: number }> = {};

  async function phase(name: string, inFlight: number, write: (i: number) => Promise<void>): Promise<void> {
    const [cpu0, client0, t0] = [controlPlaneCpu(), clientCpu(), Date.now()];
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < BROADCASTS) await write(next++);
    }));
    const cpu = controlPlaneCpu() - cpu0;
    phases[name] = {
      seconds: (Date.now() - t0) / 1000,
      control_plane_cpu_seconds: Number(cpu.toFixed(2)),
      cpu_ms_per_write: Number(((cpu / BROADCASTS) * 1000).toFixed(2)),
      client_cpu_seconds: Number((clientCpu() - client0).toFixed(2)),
    };
  }
  const expect = (r: { status: number; body: string }, status: number, what: string) => {
    if (r.status !== status) throw new Error(`${what}: ${r.status} ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body);
  };

  await phase('create', CREATE_CONCURRENCY, async (i) => {
    const spec = {
      tenant: 'grace-church',
      channel: 'sms',
      message: { text: `Bench ${i}: service at 10am. Reply STOP to opt out.` },
      audience: { contacts: Array.from({ length: RECIPIENTS }, (_, j) => smsNumberOk(100_000 + i * RECIPIENTS + j)) },
    };
    objects[i] = expect(await request('POST', collection, { apiVersion: 'herald.dev/v1alpha1', kind: 'Broadcast', metadata: { name: `bench-${i}` }, spec }), 201, 'create');
  });
  await phase('finalizer', OPERATOR_CONCURRENCY, async (i) => {
    const patch = { metadata: { finalizers: [FINALIZER], resourceVersion: objects[i]!.metadata.resourceVersion } };
    objects[i] = expect(await request('PATCH', `${collection}/bench-${i}`, patch, 'application/merge-patch+json'), 200, 'finalizer');
  });
  await phase('status', OPERATOR_CONCURRENCY, async (i) => {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      phase: 'Sending', observedGeneration: 1, audienceSize: RECIPIENTS,
      counts: { queued: RECIPIENTS, sent: 0, delivered: 0, failed: 0, skipped: 0, expired: 0, possibleDuplicates: 0 },
      conditions: ['Accepted', 'Scheduled', 'Progressing'].map((type) => ({ type, status: 'True', reason: 'Bench', message: 'bench', lastTransitionTime: now, observedGeneration: 1 })),
    };
    expect(await request('PUT', `${collection}/bench-${i}/status`, { ...objects[i], status }), 200, 'status');
  });
  watch.destroy();

  const perBroadcastMs = Object.values(phases).reduce((a, p) => a + p.cpu_ms_per_write, 0);
  process.stdout.write(JSON.stringify({
    bench: 'apiserver',
    broadcasts: BROADCASTS,
    phases,
    control_plane_cpu_ms_per_broadcast: Number(perBroadcastMs.toFixed(2)),
    // The same three writes for every Broadcast of a burst, spread over every core with nothing else running.
    control_plane_floor_seconds: Number(((perBroadcastMs * BROADCASTS) / 1000 / os.cpus().length).toFixed(2)),
    cores: os.cpus().length,
  }) + '\n');
} finally {
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
}
