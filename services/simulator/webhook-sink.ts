import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CapturedWebhook {
  headers: Record<string, string>;
  body: string;
  json: { data: { event_type: string; id: string; payload: Record<string, unknown> }; meta: { attempt: number; delivered_to: string } };
}

export interface WebhookSink {
  url: string;
  received: CapturedWebhook[];
  /** Answer with this status (default 200). */
  respondWith(status: number): void;
  /** Hold each answer this long (default 0). */
  respondAfter(ms: number): void;
  /** TCP connections accepted, and the most requests it was answering at once. */
  connections(): number;
  maxInFlight(): number;
  /** Resolves once `n` webhooks matching the filter have arrived. */
  waitFor(n: number, filter?: (w: CapturedWebhook) => boolean): Promise<CapturedWebhook[]>;
  close(): Promise<void>;
}

/** A tiny HTTP endpoint that records what is posted to it: stands in for the api in simulator tests. */
export async function startWebhookSink(): Promise<WebhookSink> {
  const received: CapturedWebhook[] = [];
  let status = 200;
  let delayMs = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let connections = 0;
  let waiters: { n: number; filter: (w: CapturedWebhook) => boolean; resolve: (w: CapturedWebhook[]) => void }[] = [];
  const check = () => {
    waiters = waiters.filter((w) => {
      const hits = received.filter(w.filter);
      if (hits.length < w.n) return true;
      w.resolve(hits);
      return false;
    });
  };
  const server = createServer((req, res) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    res.on('close', () => inFlight--);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      let json: CapturedWebhook['json'];
      try {
        json = JSON.parse(body) as CapturedWebhook['json'];
      } catch {
        json = { data: { event_type: 'unparseable', id: '', payload: {} }, meta: { attempt: 0, delivered_to: '' } };
      }
      received.push({ headers, body, json });
      const answer = () => {
        res.statusCode = status;
        res.end();
        check();
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks/telnyx`,
    received,
    respondWith: (s) => {
      status = s;
    },
    respondAfter: (ms) => {
      delayMs = ms;
    },
    connections: () => connections,
    maxInFlight: () => maxInFlight,
    waitFor: (n, filter = () => true) =>
      new Promise((resolve) => {
        waiters.push({ n, filter, resolve });
        check();
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
