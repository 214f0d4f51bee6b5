import { describe, expect, it } from 'vitest';
import { describeStack, ofType, T } from './testing/stack-assertions.js';

const stack = describeStack('staging');

describe('staging specifics', () => {
  it('can be torn down: no deletion protection, no final snapshot', () => {
    for (const db of ofType(stack.run(), T.rds)) {
      expect(db.inputs['deletionProtection']).toBe(false);
      expect(db.inputs['skipFinalSnapshot']).toBe(true);
      expect(db.inputs['finalSnapshotIdentifier']).toBeUndefined();
    }
  });
});
