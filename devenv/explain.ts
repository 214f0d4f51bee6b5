import type pg from 'pg';
import type { Pool } from '../lib/db/postgres.js';

/**
 * EXPLAIN (never ANALYZE: nothing runs) of a statement exactly as the code sends it,
 * with these values, printed so a reader of the test output sees the plan. A named
 * prepared statement switches to its generic plan only when that is estimated no
 * dearer than this one, so this is the plan to hold to its index.
 */
export async function explain(pool: Pool, statement: string | pg.QueryConfig, values: unknown[] = []): Promise<string> {
  const sql = typeof statement === 'string' ? statement : statement.text;
  const params = typeof statement === 'string' ? values : (statement.values ?? []);
  const { rows } = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
  const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
  console.log(`\n${sql.trim().split('\n')[0]}\n${plan}`);
  return plan;
}
