import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One logger factory for every process. Secrets and phone numbers are redacted
 * by path so that a careless `log.info({ config })` cannot leak them.
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        '*.apiKey', '*.api_key', '*.password', '*.token', '*.secret', '*.privateKey', '*.private_key',
        'apiKey', 'password', 'token', 'secret', 'authorization', '*.authorization', '*.headers.authorization',
        'config.databaseUrl', 'databaseUrl', '*.to', 'to', 'phone', '*.phone',
      ],
      censor: '[redacted]',
    },
  });
}

/** +15551234567 → +1555***4567: enough to correlate, not enough to text. */
export function maskPhone(phone: string | null | undefined): string {
  if (!phone) return '';
  if (phone.length <= 6) return '***';
  return `${phone.slice(0, 5)}***${phone.slice(-4)}`;
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
