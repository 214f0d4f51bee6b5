import { describe, expect, it } from 'vitest';
import { describeStack, ofType, one, T } from './testing/stack-assertions.js';

const stack = describeStack('production');

describe('production specifics', () => {
  it('protects every database from deletion and takes a final snapshot of the primary', () => {
    for (const db of ofType(stack.run(), T.rds)) expect(db.inputs['deletionProtection']).toBe(true);
    const primary = one(stack.run(), T.rds, (i) => !i.inputs['replicateSourceDb']);
    expect(primary.inputs['skipFinalSnapshot']).toBe(false);
    expect(primary.inputs['finalSnapshotIdentifier']).toBe('herald-production-us-east-1-db-final');
    expect(primary.inputs['deleteAutomatedBackups']).toBe(false);
  });

  it('keeps 30 days of backups (the requirement) and a NAT gateway per zone', () => {
    expect(stack.cfg().database.backupRetentionDays).toBeGreaterThanOrEqual(30);
    expect(ofType(stack.run(), T.nat)).toHaveLength(6);
  });
});
