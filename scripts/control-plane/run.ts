/**
 * Runs the local control plane until Ctrl-C / SIGTERM.
 *   tsx scripts/control-plane/run.ts [--dir .herald/control-plane] [--port N] [--etcd-port N] [--no-audit]
 * The directory is reused across restarts: etcd data persists, certs are generated only once.
 */
import { parseArgs } from 'node:util';
import { startControlPlane } from '../../devenv/control-plane.ts';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '.herald/control-plane' },
    port: { type: 'string' },
    'etcd-port': { type: 'string' },
    'no-audit': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log('usage: tsx scripts/control-plane/run.ts [--dir DIR] [--port N] [--etcd-port N] [--no-audit]');
  process.exit(0);
}

const num = (v: string | undefined, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new Error(`${flag}: not a port: ${v}`);
  return n;
};

const cp = await startControlPlane({
  dir: values.dir,
  port: num(values.port, '--port'),
  etcdPort: num(values['etcd-port'], '--etcd-port'),
  auditLog: !values['no-audit'],
});

console.log(`control plane up: ${cp.server}`);
console.log(`audit log: ${cp.auditLogPath}`);
console.log(`KUBECONFIG=${cp.adminKubeconfig}`);

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping control plane...`);
  cp.stop().then(
    () => {
      console.log('stopped');
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
// Keep the event loop alive (the children's stdio pipes do too, but do not rely on it).
setInterval(() => {}, 1 << 30);
