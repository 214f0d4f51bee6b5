import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess, REPO } from '../devenv/processes.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herald-crash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A process that installs the services' handler, then leaks a rejection (or throws from a timer). */
async function leak(how: 'rejection' | 'exception'): Promise<{ code: number | null; lines: string[] }> {
  const file = path.join(dir, `${how}.ts`);
  await writeFile(
    file,
    [
      `import { createLogger } from ${JSON.stringify(path.join(REPO, 'lib/logger.ts'))};`,
      `import { exitOnUnhandled } from ${JSON.stringify(path.join(REPO, 'lib/crash.ts'))};`,
      `exitOnUnhandled(createLogger('crash-test', 'info'));`,
      how === 'rejection'
        ? `void Promise.reject(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));`
        : `setTimeout(() => { throw new Error('thrown from a timer'); }, 1);`,
      // Kept alive: only the handler can end it with code 1.
      `setInterval(() => {}, 1_000);`,
    ].join('\n'),
  );
  const lines: string[] = [];
  const p = startProcess(process.execPath, ['--import', 'tsx', file], { name: `crash-${how}`, onLine: (l) => lines.push(l) });
  const exit = await p.exited;
  await new Promise((r) => setTimeout(r, 50)); // the last lines
  return { code: exit.code, lines };
}

describe('exitOnUnhandled (every service installs it)', () => {
  it('an unhandled rejection is logged at fatal level with its error and ends the process with code 1', async () => {
    const { code, lines } = await leak('rejection');
    expect(code).toBe(1);
    const fatal = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message: string; code?: string } }).find((l) => l.level === 60);
    expect(fatal).toMatchObject({ msg: 'unhandled rejection: exiting', err: { message: 'terminating connection due to administrator command', code: '57P01' } });
  }, 60_000);

  it('an uncaught exception likewise', async () => {
    const { code, lines } = await leak('exception');
    expect(code).toBe(1);
    expect(lines.some((l) => l.includes('"level":60') && l.includes('uncaught exception: exiting') && l.includes('thrown from a timer'))).toBe(true);
  }, 60_000);
});

describe('unhandled rejections', () => {
  it('every service entry point installs exitOnUnhandled', async () => {
    for (const main of ['services/api/main.ts', 'services/worker/main.ts', 'operator/main.ts', 'services/simulator/main.ts']) {
      expect(await readFile(path.join(REPO, main), 'utf8'), main).toMatch(/^\s*exitOnUnhandled\(log\);$/m);
    }
  });

  it("a test run under this project's vitest configuration fails on an unhandled rejection, though every test passed", async () => {
    // Inside the repository (vitest resolves from its node_modules), under the git-ignored .herald/.
    const fixture = await mkdtemp(path.join(REPO, '.herald', 'unhandled-'));
    try {
      await writeFile(path.join(fixture, 'leaks.test.ts'), `import { it } from 'vitest';\nit('passes', async () => { void Promise.reject(new Error('leaked')); await new Promise((r) => setTimeout(r, 50)); });\n`);
      await writeFile(
        path.join(fixture, 'vitest.config.ts'),
        `import { defineConfig } from 'vitest/config';\nimport base from ${JSON.stringify(path.join(REPO, 'vitest.config.ts'))};\n` +
          `export default defineConfig({ test: { ...base.test, root: ${JSON.stringify(fixture)}, include: ['leaks.test.ts'], globalSetup: [] } });\n`,
      );
      const lines: string[] = [];
      const run = startProcess(process.execPath, [path.join(REPO, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', path.join(fixture, 'vitest.config.ts')], {
        name: 'vitest-fixture',
        cwd: fixture,
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
        onLine: (l) => lines.push(l),
      });
      const exit = await run.exited;
      const out = lines.join('\n');
      expect(out).toMatch(/1 passed/);
      expect(out).toMatch(/leaked/);
      expect(exit.code).toBe(1);
    } finally {
      await rm(fixture, { recursive: true, force: true });
    }
  }, 120_000);
});
