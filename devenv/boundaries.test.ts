/**
 * The tree's boundaries, checked on the sources so they stay true:
 *  - only the delivery core (core/delivery/) writes SQL against the delivery tables;
 *  - production code never imports, at run time, scripts/ (entry points), devenv/ or
 *    bench/ (development tools), or the provider simulator's server (its client,
 *    services/simulator/client.ts, is what a worker uses);
 *  - production code reads no environment: lib/config.ts does, once per process, and
 *    each entry point (main.ts, scripts/) hands the values on as options.
 * Production code is lib/, core/, services/, operator/, platform/ and scripts/ without
 * tests (*.test.ts, testing/ folders, services/api/test-support.ts). devenv/, bench/ and
 * loadtests/ are the development environment: they start processes and inspect rows.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './processes.js';

const PRODUCTION_DIRS = ['lib', 'core', 'services', 'operator', 'platform', 'scripts'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...tsFiles(rel));
    } else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

const isTest = (f: string) => f.endsWith('.test.ts') || f.split(path.sep).includes('testing') || f === path.join('services', 'api', 'test-support.ts');
const production = PRODUCTION_DIRS.flatMap(tsFiles).filter((f) => !isTest(f));
const read = (f: string) => readFileSync(path.join(REPO, f), 'utf8');

/** Lines of `text` matching `re`, as "file:line: text". */
function hits(files: string[], re: RegExp, skip: (line: string) => boolean = () => false): string[] {
  const out: string[] = [];
  for (const f of files) {
    read(f).split('\n').forEach((line, i) => {
      if (re.test(line) && !skip(line)) out.push(`${f}:${i + 1}: ${line.trim()}`);
    });
  }
  return out;
}

describe('boundaries', () => {
  it('finds the production sources it checks', () => {
    expect(production).toContain(path.join('services', 'worker', 'deliver-batch.ts'));
    expect(production).toContain(path.join('core', 'delivery', 'claims.ts'));
    expect(production).not.toContain(path.join('services', 'worker', 'deliver-batch.test.ts'));
  });

  it('only core/delivery/ writes SQL on the delivery tables', () => {
    const table = /\b(FROM|JOIN|UPDATE|INTO|TABLE)\s+(deliveries|occurrences|broadcasts|attempts|lanes|batches)\b/;
    const outside = production.filter((f) => !f.startsWith(path.join('core', 'delivery') + path.sep));
    expect(hits(outside, table)).toEqual([]);
    // The rule sees the core's own statements (so a typo in the pattern cannot pass it).
    expect(hits([path.join('core', 'delivery', 'claims.ts')], table).length).toBeGreaterThan(0);
  });

  /** Relative imports that run (not `import type`), as [file, line number, line, target path]. */
  function runtimeImports(files: string[]): [string, number, string, string][] {
    const re = /^\s*(?:import|export)\s+(?!type\b)[^'"]*\bfrom\s+['"](\.[^'"]+)['"]|\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/;
    const out: [string, number, string, string][] = [];
    for (const f of files) {
      for (const [i, line] of read(f).split('\n').entries()) {
        const m = re.exec(line);
        const spec = m?.[1] ?? m?.[2];
        if (spec) out.push([f, i + 1, line.trim(), path.relative(REPO, path.resolve(REPO, path.dirname(f), spec))]);
      }
    }
    return out;
  }
  const under = (p: string, dir: string) => p.startsWith(dir + path.sep);

  it('nothing but a test imports scripts/ (entry points only)', () => {
    const all = [...PRODUCTION_DIRS, 'devenv', 'bench', 'loadtests'].flatMap(tsFiles).filter((f) => !under(f, 'scripts') && !isTest(f));
    expect(runtimeImports(all).filter(([, , , t]) => under(t, 'scripts')).map(([f, n, l]) => `${f}:${n}: ${l}`)).toEqual([]);
  });

  it('production code imports neither devenv/, bench/ nor the simulator server at run time', () => {
    // scripts/ are entry points: `npm start` runs the development environment.
    const checked = production.filter((f) => !under(f, 'scripts') && !under(f, path.join('services', 'simulator')));
    const simulatorServer = (t: string) => under(t, path.join('services', 'simulator')) && t !== path.join('services', 'simulator', 'client.js');
    const bad = runtimeImports(checked).filter(([, , , t]) => under(t, 'devenv') || under(t, 'bench') || simulatorServer(t));
    expect(bad.map(([f, n, l]) => `${f}:${n}: ${l}`)).toEqual([]);
    // The rule sees the worker's import of the simulator's client.
    expect(runtimeImports([path.join('services', 'worker', 'main.ts')]).some(([, , , t]) => t === path.join('services', 'simulator', 'client.js'))).toBe(true);
  });
});
