import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiApp } from './app.js';

export interface RunningServer {
  server: Server;
  port: number;
  /**
   * Graceful stop: /readyz turns 503, the listener closes (no new connections), idle
   * keep-alive connections close, requests in flight finish; after graceMs whatever is
   * left is cut. Then background replies are awaited (within the same grace).
   */
  stop(graceMs?: number): Promise<{ drained: boolean }>;
}

export async function startHttpServer(app: ApiApp, port: number, host = '0.0.0.0'): Promise<RunningServer> {
  const server = app.listen(port, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  // Slightly above typical load-balancer idle timeouts, so the balancer closes first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const actualPort = (server.address() as AddressInfo).port;
  let stopping: Promise<{ drained: boolean }> | undefined;

  return {
    server,
    port: actualPort,
    stop(graceMs = 25_000) {
      stopping ??= (async () => {
        app.draining = true;
        const deadline = Date.now() + graceMs;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Keep-alive connections that turn idle later (a response finished) close too.
        server.closeIdleConnections();
        const sweeper = setInterval(() => server.closeIdleConnections(), 100);
        void closed.finally(() => clearInterval(sweeper));
        const timedOut = await Promise.race([
          closed.then(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref()),
        ]);
        if (timedOut) {
          server.closeAllConnections();
          clearInterval(sweeper);
        }
        // An import stops after its current batch; the job is taken over by another process.
        await app.imports.stop();
        const left = Math.max(0, deadline - Date.now());
        const bgDone = await Promise.race([
          app.background.drain().then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), left).unref()),
        ]);
        return { drained: !timedOut && bgDone };
      })();
      return stopping;
    },
  };
}
