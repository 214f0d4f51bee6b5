/**
 * schemathesis (PyPI) for the api's contract test, in a virtualenv in the tool cache:
 * <tool cache>/schemathesis-<version>/bin/st. Installed on first use with python3's
 * venv and pip, so `npm test` needs nothing beyond python3 on the machine.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { toolCacheDir } from './control-plane.js';

const execFileP = promisify(execFile);

export const SCHEMATHESIS_VERSION = '4.32.5';

/** The `st` binary, installing it when missing (a few minutes the first time). */
export async function ensureSchemathesis(log: (line: string) => void = () => {}): Promise<string> {
  const dir = path.join(toolCacheDir(), `schemathesis-${SCHEMATHESIS_VERSION}`);
  const st = path.join(dir, 'bin', 'st');
  // Written last: a venv without it is a half-finished install (interrupted), redone.
  const done = path.join(dir, '.installed');
  if (existsSync(st) && existsSync(done)) return st;
  log(`installing schemathesis ${SCHEMATHESIS_VERSION} into ${dir}`);
  await rm(dir, { recursive: true, force: true });
  await execFileP('python3', ['-m', 'venv', dir]);
  await execFileP(path.join(dir, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `schemathesis==${SCHEMATHESIS_VERSION}`], {
    maxBuffer: 16 * 1024 * 1024,
  });
  await writeFile(done, `${new Date().toISOString()}\n`);
  return st;
}
