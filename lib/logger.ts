import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Keys whose values are credentials, at any depth: their values never reach a log line. */
const SECRET_KEY = /^(api_?key|password|token|secret|private_?key|authorization|cookie|database_?url|admin_?token|service_?account(_?json)?)$/i;
/** A phone number inside any text: E.164 (+ and 7–15 digits) or a bare run of 10–15 digits. */
const NUMBER_IN_TEXT = /\+\d{7,15}\b|\b\d{10,15}\b/g;
const MAX_DEPTH = 8;

/**
 * One logger factory for every process. Every logged value passes through maskLogValue
 * before it is written: credentials by key at any depth, phone numbers wherever they
 * appear in text (messages, error messages and details, nested fields), and every Error
 * through loggableError. So a careless `log.info({ config })` or `log.warn({ err })` cannot
 * leak a secret or a whole number.
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    formatters: { log: (o: Record<string, unknown>) => maskLogValue(o) as Record<string, unknown> },
    // pino takes an error's message as the line's msg before the formatter sees it.
    serializers: { msg: (m: unknown) => (typeof m === 'string' ? maskNumbersIn(m) : m), err: loggableError },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** +15551234567 → +1555***4567: enough to correlate, not enough to text. */
export function maskPhone(phone: string | null | undefined): string {
  if (!phone) return '';
  if (phone.length <= 6) return '***';
  return `${phone.slice(0, 5)}***${phone.slice(-4)}`;
}

/** Every phone number in a text masked (provider and database errors quote them). */
export function maskNumbersIn(text: string): string {
  return text.replace(NUMBER_IN_TEXT, (m) => maskPhone(m));
}

/** A value as it may be logged: see createLogger. */
export function maskLogValue(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return maskNumbersIn(v);
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Error) return loggableError(v);
  if (v instanceof Date || Buffer.isBuffer(v)) return v;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(v)) return v.map((x) => maskLogValue(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEY.test(k) && x !== undefined && x !== null ? '[redacted]' : maskLogValue(x, depth + 1);
  return out;
}

/**
 * An error as it is logged, the one formatter for all of them: PostgreSQL puts row values
 * in its messages and details ("Key (tenant_id, phone)=(…, +1202…)") and providers quote
 * the number they refused, so numbers are masked; the cause is kept, formatted the same.
 */
export function loggableError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) {
    // Already formatted (the formatter ran first), or not an error at all.
    if (err !== null && typeof err === 'object' && 'message' in err) return err;
    return { message: maskNumbersIn(String(err)) };
  }
  const e = err as Error & { code?: unknown; detail?: unknown; constraint?: unknown; table?: unknown; status?: unknown };
  const text = (s: unknown) => (typeof s === 'string' ? maskNumbersIn(s) : undefined);
  return {
    type: e.name,
    message: maskNumbersIn(e.message),
    code: e.code,
    status: e.status,
    detail: text(e.detail),
    constraint: e.constraint,
    table: e.table,
    stack: text(e.stack),
    ...(e.cause !== undefined && depth < 3 ? { cause: e.cause instanceof Error ? loggableError(e.cause, depth + 1) : maskLogValue(e.cause, depth + 1) } : {}),
  };
}

/** Strip credentials from a postgres URL before it is printed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
