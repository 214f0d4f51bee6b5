import type { Supervised } from './processes.js';

export interface WaitOptions {
  /** Default 120 s. */
  timeoutMs?: number;
  /** Default 200 ms. */
  everyMs?: number;
  /** Give up at once if this process exits meanwhile (its last lines go in the error). */
  process?: Pick<Supervised, 'running' | 'tail' | 'name'>;
  /** More to say when it fails (e.g. the logs of processes that are not children). */
  explain?: () => Promise<string>;
}

/**
 * Poll until `check` returns something truthy and return it; a check that throws counts
 * as not yet. Fails after the deadline with what was waited for and the last value or error.
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | null | false>, o: WaitOptions = {}): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    if (o.process && !o.process.running()) {
      throw new Error(`${what}: ${o.process.name} exited meanwhile:\n${o.process.tail()}${o.explain ? `\n${await o.explain()}` : ''}`);
    }
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const lastText = last instanceof Error ? last.message : JSON.stringify(last);
      const tail = o.process ? `\n${o.process.tail()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${lastText}${tail}${o.explain ? `\n${await o.explain()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, o.everyMs ?? 200));
  }
}

/** A GET that answers 2xx (and, with `body`, whose JSON body passes it). */
export async function httpOk(url: string, body?: (json: unknown) => boolean): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  if (!res.ok || !body) {
    await res.body?.cancel();
    return res.ok;
  }
  return body(await res.json());
}
