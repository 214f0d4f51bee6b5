import { describe, expect, it } from 'vitest';
import type { BroadcastStatus } from './api/v1alpha1/broadcast.js';
import { getCondition, setCondition } from './conditions.js';
import { canonicalJson, sameStatus } from './status.js';

const t1 = { generation: 1, now: new Date('2027-03-01T10:00:00.123Z') };
const t2 = { generation: 2, now: new Date('2027-03-01T11:00:00Z') };

describe('setCondition', () => {
  it('moves lastTransitionTime only when the status flips; reason, message and generation always follow', () => {
    const s: BroadcastStatus = {};
    setCondition(s, 'Progressing', 'True', 'Sending', '10 of 100 sent', t1);
    setCondition(s, 'Progressing', 'True', 'Sending', '50 of 100 sent', t2);
    expect(getCondition(s, 'Progressing')).toEqual({
      type: 'Progressing', status: 'True', reason: 'Sending', message: '50 of 100 sent', observedGeneration: 2, lastTransitionTime: '2027-03-01T10:00:00Z',
    });
    setCondition(s, 'Progressing', 'False', 'Completed', 'done', t2);
    expect(getCondition(s, 'Progressing')?.lastTransitionTime).toBe('2027-03-01T11:00:00Z');
  });

  it('keeps conditions in one order whatever order they are set in', () => {
    const s: BroadcastStatus = {};
    for (const type of ['Degraded', 'Complete', 'Accepted', 'Progressing', 'Scheduled'] as const) setCondition(s, type, 'False', 'X', 'x', t1);
    expect(s.conditions!.map((c) => c.type)).toEqual(['Accepted', 'Scheduled', 'Progressing', 'Complete', 'Degraded']);
  });
});

describe('status comparison', () => {
  it('compares by content, not key order', () => {
    expect(canonicalJson({ b: 1, a: { d: 2, c: 3 } })).toBe(canonicalJson({ a: { c: 3, d: 2 }, b: 1 }));
    expect(sameStatus({ phase: 'Sending', counts: { sent: 1, queued: 2 } }, { counts: { queued: 2, sent: 1 }, phase: 'Sending' })).toBe(true);
    expect(sameStatus({ phase: 'Sending' }, { phase: 'Completed' })).toBe(false);
    expect(sameStatus(undefined, {})).toBe(true);
  });
});
