import { describe, expect, it } from 'vitest';
import { quietUntil } from './quiet-hours.js';

const q = { start: '21:00', end: '08:00' };

describe('quietUntil', () => {
  it('is null outside the window', () => {
    // 15:00 in Chicago (CST, UTC-6)
    expect(quietUntil(new Date('2026-01-10T21:00:00Z'), 'America/Chicago', q)).toBeNull();
  });

  it('defers to 08:00 local the next morning when the window wraps midnight', () => {
    // 22:30 in Chicago on Jan 10 → 08:00 CST Jan 11 = 14:00Z
    expect(quietUntil(new Date('2026-01-11T04:30:00Z'), 'America/Chicago', q)?.toISOString()).toBe('2026-01-11T14:00:00.000Z');
    // 02:00 local → same morning 08:00
    expect(quietUntil(new Date('2026-01-11T08:00:00Z'), 'America/Chicago', q)?.toISOString()).toBe('2026-01-11T14:00:00.000Z');
  });

  it('uses the recipient zone: the same instant is quiet in Berlin and not in Chicago', () => {
    const at = new Date('2026-01-10T22:00:00Z'); // 23:00 Berlin, 16:00 Chicago
    expect(quietUntil(at, 'Europe/Berlin', q)?.toISOString()).toBe('2026-01-11T07:00:00.000Z');
    expect(quietUntil(at, 'America/Chicago', q)).toBeNull();
  });

  it('ends at local 08:00 across a DST change', () => {
    // Night of 2026-03-07/08: Chicago springs forward at 02:00; 08:00 CDT = 13:00Z
    expect(quietUntil(new Date('2026-03-08T05:00:00Z'), 'America/Chicago', q)?.toISOString()).toBe('2026-03-08T13:00:00.000Z');
  });
});
