/**
 * The two-version migration rule (devenv/migration-safety.ts): every migration in
 * lib/db/migrations keeps the previous release working, and the check refuses the
 * statements that would not, unless the file declares itself a contract step.
 */
import { describe, expect, it } from 'vitest';
import { checkMigration, checkMigrations } from './migration-safety.js';

describe('migrations are safe for two versions at once', () => {
  it('every migration in lib/db/migrations only expands the schema (or is a declared contract step)', async () => {
    expect(await checkMigrations()).toEqual([]);
  });

  it('refuses each destructive statement, naming the line and the object', async () => {
    const sql = [
      '-- a release that forgot the previous version',
      'CREATE TABLE new_things (id bigint PRIMARY KEY);',
      'ALTER TABLE deliveries ADD COLUMN note text;',
      'ALTER TABLE deliveries DROP COLUMN lane;',
      'ALTER TABLE deliveries RENAME COLUMN status TO state;',
      'ALTER TABLE broadcasts RENAME TO campaigns;',
      'ALTER TABLE deliveries ALTER COLUMN attempts TYPE bigint;',
      'ALTER TABLE contacts ALTER COLUMN phone SET NOT NULL;',
      'ALTER TABLE contacts ADD COLUMN region text NOT NULL;',
      'ALTER TABLE contacts ADD COLUMN plan text NOT NULL DEFAULT \'free\';',
      'DROP TABLE old_things;',
      'DROP INDEX IF EXISTS deliveries_due_idx;',
      'DROP FUNCTION herald_take_tokens(text, int);',
      'TRUNCATE receipts;',
    ].join('\n');
    const found = await checkMigration('900_sample.sql', sql);
    expect(found.map((f) => `${f.line}: ${f.what}`)).toEqual([
      '4: drops column deliveries.lane',
      '5: renames column deliveries.status to state',
      '6: renames table broadcasts to campaigns',
      '7: changes the type of column deliveries.attempts',
      '8: makes column contacts.phone NOT NULL',
      "9: adds column contacts.region NOT NULL without a default (the previous release's inserts fail)",
      '11: drops table old_things',
      '13: drops function herald_take_tokens',
      '14: truncates receipts',
    ]);
  });

  it('accepts the same statements in a migration marked as a contract step, and not with an empty reason', async () => {
    const body = 'ALTER TABLE deliveries DROP COLUMN legacy_status;\n';
    expect(await checkMigration('901_contract.sql', `-- herald:contract: release 0.9 stopped reading legacy_status\n${body}`)).toEqual([]);
    expect(await checkMigration('902_unmarked.sql', `-- herald:contract:\n${body}`)).toHaveLength(1);
  });
});
