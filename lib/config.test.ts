import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('loadConfig: the admin token', () => {
  it('refuses one shorter than 32 bytes, from the environment or a file, without printing it', () => {
    const short = 'a'.repeat(31);
    expect(() => loadConfig({ HERALD_ADMIN_TOKEN: short })).toThrow(/^invalid configuration: HERALD_ADMIN_TOKEN: must be at least 32 bytes \(it is 31\)/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'herald-config-'));
    try {
      const file = path.join(dir, 'admin-token');
      writeFileSync(file, `${short}\n`);
      let message = '';
      try {
        loadConfig({ HERALD_ADMIN_TOKEN_FILE: file });
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/HERALD_ADMIN_TOKEN_FILE: must be at least 32 bytes \(it is 31\)/);
      expect(message).not.toContain(short);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes one of 32 bytes or more, and none at all (the admin routes then answer 503)', () => {
    expect(loadConfig({ HERALD_ADMIN_TOKEN: 'a'.repeat(32) }).adminToken).toBe('a'.repeat(32));
    expect(loadConfig({}).adminToken).toBeUndefined();
  });
});
