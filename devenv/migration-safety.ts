/**
 * Migrations must keep the previous release working: during a rollout blue and green share
 * one database, and the migration Job runs before the new color starts, so the old code
 * meets the new schema. A migration may add (tables, nullable or defaulted columns,
 * indexes, functions); anything that breaks a query the previous release still sends
 * (DROP or RENAME of a table or column, a column type change, SET NOT NULL, a NOT NULL
 * column without a default, TRUNCATE, dropping a function, type, view or sequence) is a
 * contract step: it ships in a later release, once no running version uses the object, and
 * says so in its first lines:
 *
 *   -- herald:contract: <why nothing running uses it any more>
 *
 * Statements are read by PostgreSQL's own parser (libpg-query), not by patterns.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'libpg-query';

export const MIGRATIONS_DIR = path.resolve(import.meta.dirname, '..', 'lib', 'db', 'migrations');
const CONTRACT_MARK = /^[ \t]*--[ \t]*herald:contract:[ \t]*\S[^\n]*$/m;

export interface Finding {
  file: string;
  line: number;
  /** What the statement does, for a person: "drops column deliveries.lane". */
  what: string;
}

type Node = Record<string, unknown>;
const DROPPED_KINDS: Record<string, string> = {
  OBJECT_TABLE: 'table',
  OBJECT_VIEW: 'view',
  OBJECT_MATVIEW: 'materialized view',
  OBJECT_SCHEMA: 'schema',
  OBJECT_TYPE: 'type',
  OBJECT_DOMAIN: 'domain',
  OBJECT_FUNCTION: 'function',
  OBJECT_PROCEDURE: 'procedure',
  OBJECT_SEQUENCE: 'sequence',
};

const names = (list: unknown): string =>
  ((list as { String?: { sval: string } }[] | undefined) ?? []).map((n) => n.String?.sval ?? '?').join('.');

function objectName(o: unknown): string {
  const n = o as Node;
  if (n['List']) return names((n['List'] as { items: unknown[] }).items);
  if (n['ObjectWithArgs']) return names((n['ObjectWithArgs'] as { objname: unknown }).objname);
  if (n['TypeName']) return names((n['TypeName'] as { names: unknown }).names);
  if (n['String']) return (n['String'] as { sval: string }).sval;
  return '?';
}

/** What breaks the previous release in one parsed statement (empty: an expand step). */
function destructive(stmt: Node): string[] {
  const [kind, body] = Object.entries(stmt)[0] as [string, Node];
  const rel = (body['relation'] as { relname?: string } | undefined)?.relname ?? '?';
  switch (kind) {
    case 'DropStmt': {
      const what = DROPPED_KINDS[body['removeType'] as string];
      return what ? ((body['objects'] as unknown[] | undefined) ?? []).map((o) => `drops ${what} ${objectName(o)}`) : [];
    }
    case 'RenameStmt': {
      const type = String(body['renameType']).replace(/^OBJECT_/, '').toLowerCase();
      const subname = body['subname'] as string | undefined;
      const from = subname ? `${rel}.${subname}` : body['relation'] ? rel : objectName(body['object']);
      return [`renames ${type} ${from} to ${String(body['newname'])}`];
    }
    case 'TruncateStmt':
      return [`truncates ${((body['relations'] as { RangeVar: { relname: string } }[] | undefined) ?? []).map((r) => r.RangeVar.relname).join(', ')}`];
    case 'AlterTableStmt': {
      const out: string[] = [];
      for (const c of (body['cmds'] as { AlterTableCmd: Node }[] | undefined) ?? []) {
        const cmd = c.AlterTableCmd;
        const col = `${rel}.${(cmd['name'] as string | undefined) ?? ''}`;
        switch (cmd['subtype']) {
          case 'AT_DropColumn':
            out.push(`drops column ${col}`);
            break;
          case 'AT_AlterColumnType':
            out.push(`changes the type of column ${col}`);
            break;
          case 'AT_SetNotNull':
            out.push(`makes column ${col} NOT NULL`);
            break;
          case 'AT_AddColumn': {
            const def = (cmd['def'] as { ColumnDef: { colname: string; constraints?: { Constraint: { contype: string } }[] } }).ColumnDef;
            const types = (def.constraints ?? []).map((k) => k.Constraint.contype);
            const filled = types.some((t) => t === 'CONSTR_DEFAULT' || t === 'CONSTR_IDENTITY' || t === 'CONSTR_GENERATED');
            if (types.includes('CONSTR_NOTNULL') && !filled) out.push(`adds column ${rel}.${def.colname} NOT NULL without a default (the previous release's inserts fail)`);
            break;
          }
        }
      }
      return out;
    }
    default:
      return [];
  }
}

const lineOf = (sql: string, offset: number) => sql.slice(0, offset).split('\n').length;

/** The destructive statements of one migration's SQL that it does not declare as a contract step. */
export async function checkMigration(file: string, sql: string): Promise<Finding[]> {
  if (CONTRACT_MARK.test(sql.split('\n').slice(0, 10).join('\n'))) return [];
  const parsed = (await parse(sql)) as { stmts: { stmt: Node; stmt_location?: number }[] };
  const findings: Finding[] = [];
  for (const s of parsed.stmts) {
    // a statement starts after the whitespace and comments that precede it
    const at = s.stmt_location ?? 0;
    const start = at + (/^(\s|--[^\n]*\n)*/.exec(sql.slice(at))?.[0].length ?? 0);
    for (const what of destructive(s.stmt)) findings.push({ file, line: lineOf(sql, start), what });
  }
  return findings;
}

/** Every migration in `dir` checked; each finding as "file:line: what (rule)". */
export async function checkMigrations(dir = MIGRATIONS_DIR): Promise<string[]> {
  const out: string[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.sql')).sort()) {
    for (const x of await checkMigration(f, readFileSync(path.join(dir, f), 'utf8'))) {
      out.push(`${x.file}:${x.line}: ${x.what}, which the previous release may still use; ship it in a later release as a contract step (first lines: "-- herald:contract: <why nothing uses it>")`);
    }
  }
  return out;
}
