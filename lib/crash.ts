import type { Logger } from './logger.js';

/**
 * Every service installs this first: an unhandled rejection or an uncaught exception is
 * logged at fatal level with its error (one JSON line a person and a log search can find)
 * and ends the process with code 1. Failing loudly is the point: a process that carried
 * on after one would hold work it no longer tracks, and the orchestrator (the kubelet, or
 * the local platform's supervisor) restarts a process that exited. Tests see the exit.
 */
export function exitOnUnhandled(log: Logger): void {
  const die = (what: string) => (err: unknown) => {
    try {
      log.fatal({ err }, `${what}: exiting`);
    } finally {
      process.exit(1);
    }
  };
  process.on('unhandledRejection', die('unhandled rejection'));
  process.on('uncaughtException', die('uncaught exception'));
}
