import { DateTime } from 'luxon';

export interface QuietHours {
  /** Local wall-clock "HH:MM" or "HH:MM:SS" when quiet starts (e.g. 21:00) ... */
  start: string;
  /** ... and when it ends (e.g. 08:00). A window may wrap past midnight. */
  end: string;
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

/**
 * If `at` falls inside the quiet window in `timeZone`, the instant the window ends
 * (DST-correct, through luxon's IANA zone arithmetic); otherwise null.
 */
export function quietUntil(at: Date, timeZone: string, quiet: QuietHours | null): Date | null {
  if (!quiet) return null;
  const start = minutesOf(quiet.start);
  const end = minutesOf(quiet.end);
  if (start === end) return null;
  const local = DateTime.fromJSDate(at, { zone: timeZone });
  if (!local.isValid) return null;
  const now = local.hour * 60 + local.minute;
  const inside = start < end ? now >= start && now < end : now >= start || now < end;
  if (!inside) return null;
  let until = local.set({ hour: Math.floor(end / 60), minute: end % 60, second: 0, millisecond: 0 });
  if (until <= local) until = until.plus({ days: 1 });
  return until.toJSDate();
}
