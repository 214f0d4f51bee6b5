import { parse } from 'csv-parse/sync';
import { badRequest } from './http.js';
import type { RowError } from './contacts-upsert.js';

/** The columns a contacts CSV may have; `phone` is required, the others optional and in any order. */
export const CSV_COLUMNS = ['phone', 'name', 'time_zone', 'tags', 'external_id', 'sms_consent', 'consent_source'] as const;

export interface CsvRows {
  /** Each data row as column → cell; empty cells are left out ("no change"). */
  rows: Array<{ row: number; values: Record<string, string> } | null>;
  /** Rows that could not be read as a record (wrong number of cells). */
  errors: RowError[];
}

/** How contact CSVs are read, whole (below) or streamed (an import job). */
export const CSV_OPTIONS = { bom: true, relax_column_count: true, skip_empty_lines: true, trim: true } as const;

/** The columns named by a header row; a 400 naming what is wrong with it. */
export function csvColumns(header: string[] | undefined): string[] {
  if (!header) throw badRequest('body', 'empty CSV: expected a header row naming the columns');
  const columns = header.map((h) => h.trim().toLowerCase());
  const unknown = columns.filter((c) => !(CSV_COLUMNS as readonly string[]).includes(c));
  if (unknown.length > 0) {
    throw badRequest('columns', `unknown column(s) ${unknown.join(', ')}; expected some of ${CSV_COLUMNS.join(', ')}`);
  }
  const dup = columns.find((c, i) => columns.indexOf(c) !== i);
  if (dup) throw badRequest('columns', `column ${dup} appears twice`);
  if (!columns.includes('phone')) throw badRequest('columns', 'a phone column is required');
  return columns;
}

/** Data row `row` (1-based) as column → cell, empty cells left out; or why it is not a record. */
export function csvRecord(columns: string[], cells: string[], row: number): { values: Record<string, string> } | { error: RowError } {
  if (cells.length !== columns.length) return { error: { row, field: 'row', reason: `expected ${columns.length} cells, got ${cells.length}` } };
  const values: Record<string, string> = {};
  columns.forEach((c, j) => {
    const v = cells[j]!;
    if (v !== '') values[c] = v;
  });
  return { values };
}

export const invalidCsv = (err: unknown) => badRequest('body', `not valid CSV: ${String((err as { message?: string }).message ?? err).slice(0, 300)}`);

/**
 * Read a contacts CSV: a header row naming the columns, then one contact per row.
 * Rows are numbered from 1 for the first data row (the header is row 0), the same
 * numbering as the index + 1 of a JSON upload. A row with the wrong number of cells
 * fails that row only; a file that is not CSV at all (an unterminated quote) is a 400
 * naming the line, since no row after it can be trusted.
 */
export function parseContactsCsv(text: string): CsvRows {
  let records: string[][];
  try {
    records = parse(text, CSV_OPTIONS);
  } catch (err) {
    throw invalidCsv(err);
  }
  const columns = csvColumns(records[0]);
  const rows: CsvRows['rows'] = [];
  const errors: RowError[] = [];
  for (let i = 1; i < records.length; i++) {
    const r = csvRecord(columns, records[i]!, i);
    if ('error' in r) {
      errors.push(r.error);
      rows.push(null);
    } else rows.push({ row: i, values: r.values });
  }
  return { rows, errors };
}
