import { afterAll, beforeAll, inject } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../../../devenv/test-database.js';
import { startBoss } from '../../../lib/queue.js';

export interface DeliveryTestContext {
  db: TestDatabase;
  boss: PgBoss;
}

/**
 * A test file's own migrated database and a pg-boss on it, for the life of the
 * file; `seed` runs once after both are up.
 */
export function useDeliveryDatabase(seed?: (ctx: DeliveryTestContext) => Promise<void>): DeliveryTestContext {
  // Filled by beforeAll; afterAll also runs when beforeAll failed part-way, so it cannot assume either.
  const ctx: Partial<DeliveryTestContext> = {};
  beforeAll(async () => {
    const db = (ctx.db = await createTestDatabase(inject('databaseUrl')));
    ctx.boss = await startBoss(db.url, { supervise: false });
    await seed?.(ctx as DeliveryTestContext);
  }, 180_000);
  afterAll(async () => {
    await ctx.boss?.stop({ graceful: false });
    await ctx.db?.drop();
  });
  return ctx as DeliveryTestContext;
}
