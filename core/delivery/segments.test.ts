import { describe, expect, it } from 'vitest';
import { SegmentedMessage } from 'sms-segments-calculator';
import { smsParts } from '../../services/simulator/sms-parts.js';
import { countSegments } from './segments.js';

describe('countSegments', () => {
  it('agrees with the parts and encoding Telnyx answers (the simulator counts them on its own)', () => {
    const alphabet = ['a', 'Z', '7', ' ', '\n', 'é', 'Ä', '€', '{', '^', '~', 'ç', 'д', 'ß', '🎉', '’', '@', '£'];
    const texts = ['a'.repeat(155), 'a'.repeat(159) + '€a', 'Служба в 10 утра', '🎉'.repeat(36), 'Reply STOP to opt out'];
    // Deterministic pseudo-random texts around the part boundaries, mixing every kind of character.
    let seed = 13;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 400; i++) {
      const len = [60, 70, 71, 134, 135, 150, 153, 160, 161, 306, 307][i % 11]! + rand(5) - 2;
      const mix = alphabet.slice(0, 1 + rand(alphabet.length));
      texts.push(Array.from({ length: len }, () => mix[rand(mix.length)]).join(''));
    }
    for (const text of texts) {
      const ours = countSegments(text);
      expect({ text, encoding: ours.encoding, parts: ours.segments }).toEqual({ text, ...smsParts(text) });
    }
  });

  it('fits 160 GSM-7 characters in one part and splits at 153 after that', () => {
    expect(countSegments('a'.repeat(160))).toMatchObject({ encoding: 'GSM-7', segments: 1 });
    expect(countSegments('a'.repeat(161)).segments).toBe(2);
    expect(countSegments('a'.repeat(306)).segments).toBe(2);
    expect(countSegments('a'.repeat(307)).segments).toBe(3);
  });

  it('counts GSM-7 extension characters twice', () => {
    expect(countSegments('€'.repeat(80)).segments).toBe(1);
    expect(countSegments('€'.repeat(81)).segments).toBe(2);
  });

  it('switches to UCS-2 for characters outside GSM-7: 70, then 67 per part', () => {
    expect(countSegments('é'.repeat(10)).encoding).toBe('GSM-7'); // é is in the GSM-7 table
    expect(countSegments('ç' + 'a'.repeat(69))).toMatchObject({ encoding: 'UCS-2', segments: 1 });
    expect(countSegments('ç' + 'a'.repeat(70)).segments).toBe(2);
    expect(countSegments('😀' + 'a'.repeat(132)).segments).toBe(2);
  });

  it('counts plain ASCII texts exactly as the calculator does', () => {
    const alphabet = 'AZaz09 \n!"#%&\'()*+,-./:;<=>?@$_' + 'bcdefghijklmnopqrstuvwxy';
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (let i = 0; i < 300; i++) {
      const length = 1 + Math.floor(random() * 480);
      const text = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('') + `#${i}`;
      const m = new SegmentedMessage(text, 'auto');
      expect(countSegments(text), text).toEqual({ encoding: m.encodingName, segments: m.segmentsCount, characters: m.numberOfCharacters });
    }
  });
});
