/**
 * How Telnyx splits a text into parts, written from the GSM 03.38 tables and the
 * concatenation rules (not from Herald's calculator, so a test can hold one to the other):
 *   - GSM-7 when every character is in the basic table or its extension table; an
 *     extension character (€ [ ] { } \ ^ ~ | and form feed) takes two septets (escape + char);
 *     160 septets in one part, 153 per part once split (the rest is the UDH), and an
 *     escape pair is never split across parts;
 *   - otherwise UCS-2 in UTF-16 code units: 70 in one part, 67 per part once split,
 *     and a surrogate pair (an emoji) is never split.
 */

const GSM7_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM7_EXTENSION = '\f^{}\\[~]|€';
const BASIC = new Set(GSM7_BASIC);
const EXTENSION = new Set(GSM7_EXTENSION);

export interface SmsParts {
  encoding: 'GSM-7' | 'UCS-2';
  parts: number;
}

/** Split units (each an unsplittable cost) into parts of `single` (one part) or `multi` (each part when split). */
function partsOf(costs: number[], single: number, multi: number): number {
  const total = costs.reduce((a, c) => a + c, 0);
  if (total <= single) return 1;
  let parts = 1;
  let used = 0;
  for (const c of costs) {
    if (used + c > multi) {
      parts++;
      used = 0;
    }
    used += c;
  }
  return parts;
}

export function smsParts(text: string): SmsParts {
  const chars = [...text]; // code points: a surrogate pair stays together
  if (chars.every((c) => BASIC.has(c) || EXTENSION.has(c))) {
    return { encoding: 'GSM-7', parts: Math.max(1, partsOf(chars.map((c) => (EXTENSION.has(c) ? 2 : 1)), 160, 153)) };
  }
  return { encoding: 'UCS-2', parts: Math.max(1, partsOf(chars.map((c) => c.length), 70, 67)) };
}
