/**
 * Delay before attempt `attempt + 1`: exponential with full jitter (AWS's
 * "exponential backoff and jitter"), so a provider recovering from an outage is
 * not hit by every waiting delivery at the same instant. A provider's own
 * Retry-After wins when it asks for longer.
 */
export function retryDelayMs(attempt: number, opts: { baseMs?: number; capMs?: number; retryAfterMs?: number; random?: () => number } = {}): number {
  const base = opts.baseMs ?? Number(process.env.HERALD_RETRY_BASE_MS ?? 2_000);
  const cap = opts.capMs ?? Number(process.env.HERALD_RETRY_CAP_MS ?? 15 * 60_000);
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round((opts.random ?? Math.random)() * ceiling);
  return Math.max(jittered, opts.retryAfterMs ?? 0, 1);
}
