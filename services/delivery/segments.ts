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
  const m = new SegmentedMessage(text, 'auto');
  const count: SegmentCount = {
    encoding: m.encodingName === 'UCS-2' ? 'UCS-2' : 'GSM-7',
    segments: m.segmentsCount,
    characters: m.numberOfCharacters,
  };
  // Grapheme splitting costs ~0.5 ms a message and the same few texts are counted on
  // every batch and every reconcile: remember the latest ones.
  if (recent.size >= 1_000) recent.delete(recent.keys().next().value!);
  recent.set(text, Object.freeze(count));
  return count;
}

const recent = new Map<string, SegmentCount>();
