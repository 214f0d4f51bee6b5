import http from 'node:http';
import https from 'node:https';

/**
 * A small `fetch` over node:http(s) with a keep-alive agent, for SDKs that take a
 * `fetch` option (the telnyx SDK does). The SDK itself runs unchanged — request
 * building, error mapping, timeouts — only the transport is swapped: Node's built-in
 * fetch (undici with WHATWG streams) costs about twice the CPU per small JSON request,
 * which on a 2-core box is the difference between the SDK and the rest of the worker
 * fighting for the CPU or not.
 *
 * Scope: what a JSON API client needs — string/Buffer/URLSearchParams bodies, abort
 * signals (rejects with an AbortError, which the SDK reports as a timeout), buffered
 * responses. Streaming request bodies are not supported.
 */
export function createHttpFetch(opts: { maxSockets?: number } = {}): typeof fetch & { destroy(): void } {
  const maxSockets = opts.maxSockets ?? 256;
  // maxFreeSockets defaults to 256: with more sockets than that, the surplus would be closed
  // whenever a burst ends and connected again at the next one.
  const agentOptions = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' as const };
  const httpAgent = new http.Agent(agentOptions);
  const httpsAgent = new https.Agent(agentOptions);

  const f = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? new URL(input) : input instanceof URL ? input : new URL(input.url);
    const method = (init?.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => {
      headers[k] = v;
    });
    let body: string | Buffer | undefined;
    const b = init?.body;
    if (typeof b === 'string') body = b;
    else if (b instanceof URLSearchParams) body = b.toString();
    else if (b instanceof ArrayBuffer) body = Buffer.from(b);
    else if (ArrayBuffer.isView(b)) body = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    else if (b != null) return Promise.reject(new TypeError('http-fetch supports string, URLSearchParams and buffer bodies only'));
    if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const signal = init?.signal ?? undefined;
    const secure = url.protocol === 'https:';

    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const req = (secure ? https : http).request(url, { method, headers, agent: secure ? httpsAgent : httpAgent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(err));
        res.on('end', () => {
          signal?.removeEventListener('abort', onAbort);
          const status = res.statusCode ?? 0;
          const outHeaders = new Headers();
          for (let i = 0; i < res.rawHeaders.length; i += 2) outHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          const nullBody = status === 204 || status === 205 || status === 304 || method === 'HEAD';
          const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          resolve(new Response(nullBody ? null : buf, { status, statusText: res.statusMessage ?? '', headers: outHeaders }));
        });
      });
      const onAbort = () => {
        const err = abortError(signal!);
        req.destroy(err);
        reject(err);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => {
        signal?.removeEventListener('abort', onAbort);
        // Whether the whole request had been written when the connection failed: if so the
        // server may have acted on it (classify-telnyx reads this as an unknown outcome).
        reject(Object.assign(err, { requestSent: req.writableFinished }));
      });
      req.end(body);
    });
  };
  return Object.assign(f, {
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  });
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return new DOMException('This operation was aborted', 'AbortError');
}
