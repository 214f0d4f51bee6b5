import { SegmentedMessage } from 'sms-segments-calculator';

/** Carriers and Telnyx refuse a message longer than this many parts. */
export const MAX_SEGMENTS = 10;

export interface SegmentCount {
  encoding: 'GSM-7' | 'UCS-2';
  segments: number;
  characters: number;
}

/**
 * SMS parts as carriers bill them: GSM-7 fits 160 characters (153 per part when
 * split, extension characters such as € count twice), anything else is UCS-2 at
 * 70 (67 per part). Twilio's calculator implements exactly these rules.
 */
export function countSegments(text: string): SegmentCount {
  const known = recent.get(text);
  if (known) return known;
  let count: SegmentCount;
  if (PLAIN_GSM7.test(text)) {
    // Most messages: every character one 7-bit GSM-7 unit. The calculator's grapheme
    // splitting costs ~1 ms a text, and in a burst every Broadcast has a text of its own.
    count = { encoding: 'GSM-7', segments: text.length <= 160 ? 1 : Math.ceil(text.length / 153), characters: text.length };
  } else {
    const m = new SegmentedMessage(text, 'auto');
    count = { encoding: m.encodingName === 'UCS-2' ? 'UCS-2' : 'GSM-7', segments: m.segmentsCount, characters: m.numberOfCharacters };
  }
  // The same few texts are counted on every batch and every reconcile: remember the latest ones.
  if (recent.size >= 1_000) recent.delete(recent.keys().next().value!);
  recent.set(text, Object.freeze(count));
  return count;
}

const recent = new Map<string, SegmentCount>();

/** ASCII letters, digits and punctuation in GSM-7's basic table (no extension characters, no \r). */
const PLAIN_GSM7 = /^[A-Za-z0-9 \n!"#%&'()*+,\-./:;<=>?@$_]+$/;
