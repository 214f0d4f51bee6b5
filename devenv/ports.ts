import { createServer } from 'node:net';

/** A loopback port nobody listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether nothing listens on this loopback port now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** What a port should be: `exact` (taken as given), else `preferred` if free, else any free port. */
export interface PortWish {
  exact?: number;
  preferred?: number;
}

/** One distinct port per key, as wished. */
export async function choosePorts<K extends string>(wishes: Record<K, PortWish>): Promise<Record<K, number>> {
  const taken = new Set<number>();
  const out = {} as Record<K, number>;
  for (const key of Object.keys(wishes) as K[]) {
    const { exact, preferred } = wishes[key];
    let port: number;
    if (exact !== undefined) port = exact;
    else if (preferred !== undefined && !taken.has(preferred) && (await isPortFree(preferred))) port = preferred;
    else do port = await freePort(); while (taken.has(port));
    taken.add(port);
    out[key] = port;
  }
  return out;
}
