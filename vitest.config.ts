import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{lib,core,services,operator,platform,scripts,loadtests,devenv,bench,runbooks}/**/*.test.ts'],
    globalSetup: ['devenv/vitest-global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run two at a time; each gets its own database.
    maxWorkers: 2,
    // Any unhandled rejection or uncaught exception fails the run, even when every test
    // passed (lib/crash.test.ts holds this); the services' processes exit on one (lib/crash.ts).
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
