import { parsePhoneNumberFromString, isSupportedCountry, type CountryCode } from 'libphonenumber-js';
import { z } from 'zod';

/**
 * The canonical IANA name of a zone ("us/eastern" → "America/New_York"), or null.
 * Intl also accepts UTC offsets like "+01:00"; those are not zones (no DST rules,
 * and quiet hours need a place), so they are refused.
 */
export function canonicalTimeZone(tz: string): string | null {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(tz)) return null;
  const known = zoneCache.get(tz);
  if (known !== undefined) return known;
  let canonical: string | null;
  try {
    canonical = new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    canonical = null;
  }
  // Building a DateTimeFormat costs tens of microseconds, and an import names the same few zones on every row.
  if (zoneCache.size >= 2000) zoneCache.clear();
  zoneCache.set(tz, canonical);
  return canonical;
}
const zoneCache = new Map<string, string | null>();

export const timeZoneSchema = z
  .string()
  .trim()
  .transform((tz, ctx) => {
    const canonical = canonicalTimeZone(tz);
    if (!canonical) {
      ctx.addIssue({ code: 'custom', message: `not an IANA time zone: ${tz.slice(0, 64)}` });
      return z.NEVER;
    }
    return canonical;
  });

/** Local wall-clock time, 24-hour HH:MM. */
export const hhmmSchema = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (00:00–23:59)');

export const countrySchema = z
  .string()
  .trim()
  .transform((c) => c.toUpperCase())
  .refine((c): c is CountryCode => isSupportedCountry(c), 'not a supported ISO 3166-1 alpha-2 country code');

export type PhoneResult = { ok: true; e164: string } | { ok: false; reason: string };

/**
 * Normalise a number as people type it ("(202) 555-0143", "+44 20 7183 8750") to
 * E.164 with libphonenumber-js, reading national numbers in `defaultCountry`, and
 * keep only numbers that are valid for their country (length and prefixes).
 */
export function normalizePhone(raw: string, defaultCountry: CountryCode): PhoneResult {
  const text = raw.trim();
  if (text === '') return { ok: false, reason: 'required' };
  if (text.length > 40) return { ok: false, reason: 'too long to be a phone number' };
  const parsed = parsePhoneNumberFromString(text, defaultCountry);
  if (!parsed) return { ok: false, reason: 'not a phone number' };
  if (!parsed.isValid()) return { ok: false, reason: `not a valid ${parsed.country ?? defaultCountry} number` };
  return { ok: true, e164: parsed.number };
}

/** A zod schema that normalises a phone number to E.164. */
export function phoneSchema(defaultCountry: CountryCode) {
  return z.string().transform((raw, ctx) => {
    const r = normalizePhone(raw, defaultCountry);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.reason });
      return z.NEVER;
    }
    return r.e164;
  });
}

/** Tags as people write them: an array, or one string separated by semicolons. Trimmed, empty ones dropped, deduplicated. */
export const tagsSchema = z
  .union([z.array(z.string()), z.string()])
  .transform((v) => (typeof v === 'string' ? v.split(';') : v))
  .transform((list) => [...new Set(list.map((t) => t.trim()).filter((t) => t !== ''))])
  .pipe(z.array(z.string().max(64, 'a tag is at most 64 characters')).max(100, 'at most 100 tags'));

/** A positive per-second rate. */
export const rateSchema = z.number().positive().max(100_000);
