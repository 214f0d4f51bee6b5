import { AsyncLocalStorage } from 'node:async_hooks';
import CircuitBreaker from 'opossum';
import { metrics } from '../../lib/metrics.js';
import { CircuitOpenError, type Outcome, type PushProvider, type SmsProvider } from './types.js';

/**
 * A per-provider circuit breaker on top of opossum.
 *
 * opossum keeps the rolling window, the error-percentage and volume thresholds, the
 * open → half-open timer and the single half-open probe. What it cannot do on its own
 * is see failures *inside* one SDK call: one FCM sendEach is many HTTP exchanges, one
 * per message. So the unit the breaker counts is one *provider exchange*, reported
 * through `record()`:
 *   - Telnyx: one send = one exchange (retries are off in the SDK);
 *   - FCM: every HTTP request firebase-admin makes, reported by the https agent
 *     (see fcm.ts; its own retries are off too).
 * Only provider-level trouble counts as a failure: 5xx, 429, refused credentials (401), timeouts, connection
 * errors (retryable outcomes). A per-recipient answer (bad number, dead token) is a
 * working provider and counts as a success.
 *
 * Each exchange is fed to opossum as a call that settles at once, so opossum's
 * statistics and state machine stay the source of truth; admission (`admit()`) is
 * checked before the SDK is called so an open circuit fails fast with
 * CircuitOpenError, which the worker turns into "wait", not "fail".
 */

export interface BreakerOptions {
  /** Failure percentage within the window above which the circuit opens. */
  errorThresholdPercentage: number;
  /** Exchanges needed in the window before the percentage can open the circuit. */
  volumeThreshold: number;
  /** Length of the rolling window. */
  rollingWindowMs: number;
  rollingBuckets: number;
  /** How long the circuit stays open before letting one probe through (half-open). */
  resetTimeoutMs: number;
}

export const DEFAULT_BREAKER_OPTIONS: BreakerOptions = {
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  rollingWindowMs: 10_000,
  rollingBuckets: 10,
  resetTimeoutMs: 30_000,
};

export type CircuitState = 'closed' | 'half_open' | 'open';
const STATE_VALUE: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

// The failed exchange's rejection reason: opossum counts it, record() swallows it.
const FAILED = new Error('provider exchange failed');

export interface Admission {
  /** Whether this call is the half-open probe. */
  readonly probe: boolean;
  /** Must be called when the call is over, whatever happened. */
  done(): void;
}

export class ProviderCircuit {
  readonly options: BreakerOptions;
  private readonly breaker: CircuitBreaker<[boolean], void>;
  private openedAt = 0;
  private probeInFlight = false;
  private readonly context = new AsyncLocalStorage<Admission>();

  constructor(
    readonly provider: string,
    options: Partial<BreakerOptions> = {},
  ) {
    this.options = { ...DEFAULT_BREAKER_OPTIONS, ...options };
    this.breaker = new CircuitBreaker<[boolean], void>((ok: boolean) => (ok ? Promise.resolve() : Promise.reject(FAILED)), {
      name: provider,
      timeout: false,
      errorThresholdPercentage: this.options.errorThresholdPercentage,
      volumeThreshold: this.options.volumeThreshold,
      rollingCountTimeout: this.options.rollingWindowMs,
      rollingCountBuckets: this.options.rollingBuckets,
      resetTimeout: this.options.resetTimeoutMs,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    });
    const labels = { provider };
    metrics.circuitState.set(labels, 0);
    this.breaker.on('success', () => metrics.circuitSuccesses.inc(labels));
    this.breaker.on('failure', () => metrics.circuitFailures.inc(labels));
    this.breaker.on('open', () => {
      this.openedAt = Date.now();
      this.probeInFlight = false;
      metrics.circuitState.set(labels, STATE_VALUE.open);
    });
    this.breaker.on('halfOpen', () => metrics.circuitState.set(labels, STATE_VALUE.half_open));
    this.breaker.on('close', () => {
      this.probeInFlight = false;
      metrics.circuitState.set(labels, STATE_VALUE.closed);
    });
  }

  get state(): CircuitState {
    if (this.breaker.closed) return 'closed';
    return this.breaker.halfOpen ? 'half_open' : 'open';
  }

  /** Exchanges counted in the current window (for tests and debugging). */
  get stats(): { fires: number; failures: number; successes: number; rejects: number } {
    const s = this.breaker.stats;
    return { fires: s.fires, failures: s.failures, successes: s.successes, rejects: s.rejects };
  }

  /** How long until the circuit lets a probe through. */
  retryAfterMs(): number {
    if (this.state === 'half_open') return Math.min(this.options.resetTimeoutMs, 1000);
    return Math.max(0, this.openedAt + this.options.resetTimeoutMs - Date.now());
  }

  /** The error a call gets while the circuit is open. */
  openError(): CircuitOpenError {
    return new CircuitOpenError(this.provider, Math.max(1, this.retryAfterMs()));
  }

  /**
   * Let a call through, or throw CircuitOpenError: always when open; when half-open,
   * only one probe at a time.
   */
  admit(): Admission {
    const state = this.state;
    if (state === 'closed') return NOT_A_PROBE;
    if (state === 'half_open' && !this.probeInFlight && this.breaker.pendingClose) {
      this.probeInFlight = true;
      let released = false;
      return {
        probe: true,
        done: () => {
          if (released) return;
          released = true;
          this.probeInFlight = false;
        },
      };
    }
    throw this.openError();
  }

  /**
   * Run one admitted call. Transports that make several HTTP attempts inside it (an
   * SDK's own retries) ask `mayProceed()` before each: the admission travels with the
   * call's async context, so a half-open circuit lets the probe's attempts through
   * and nothing else.
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const admission = this.admit();
    try {
      return await this.context.run(admission, fn);
    } finally {
      admission.done();
    }
  }

  /** Whether an HTTP attempt may go out now (for transports; see run()). */
  mayProceed(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    return state === 'half_open' && this.context.getStore()?.probe === true;
  }

  /**
   * Count one provider exchange. The promise settles once the circuit has taken it
   * into account (opossum settles on a later tick), so a caller that awaits it sees
   * the resulting state.
   */
  record(ok: boolean): Promise<void> {
    // While open, opossum rejects the call without counting it: exchanges that were
    // already in flight when the circuit opened do not extend the outage.
    return this.breaker.fire(ok).catch(() => undefined);
  }

  shutdown(): void {
    this.breaker.shutdown();
  }
}

const NOT_A_PROBE: Admission = { probe: false, done: () => undefined };

/** Provider-level trouble, as opposed to an answer about this one recipient (the classifier's fault). */
export function isProviderFailure(outcome: Outcome): boolean {
  return outcome.kind === 'retryable' && outcome.fault === 'provider';
}

/** Wrap an SMS provider: one send is one exchange. */
export function withSmsCircuit(inner: SmsProvider, circuit: ProviderCircuit): SmsProvider {
  return {
    name: inner.name,
    send: (message) =>
      circuit.run(async () => {
        let outcome: Outcome;
        try {
          outcome = await inner.send(message);
        } catch (err) {
          await circuit.record(false);
          throw err;
        }
        await circuit.record(!isProviderFailure(outcome));
        return outcome;
      }),
  };
}

/**
 * Wrap a push provider whose transport reports every HTTP exchange to the circuit
 * itself (createFcmProvider's `observer` option): the wrapper admits calls and runs
 * them in the circuit's context. With `recordOutcomes`, each message's outcome is
 * recorded instead (for a provider that cannot observe its transport).
 */
export function withPushCircuit(inner: PushProvider, circuit: ProviderCircuit, opts: { recordOutcomes?: boolean } = {}): PushProvider {
  return {
    name: inner.name,
    async sendEach(messages) {
      const outcomes = await circuit.run(async () => {
        try {
          const result = await inner.sendEach(messages);
          if (opts.recordOutcomes) await Promise.all(result.map((o) => circuit.record(!isProviderFailure(o))));
          return result;
        } catch (err) {
          if (opts.recordOutcomes) await circuit.record(false);
          throw err;
        }
      });
      // The circuit opened under this call and cut every message short: nothing went
      // out, so the whole batch waits (no attempt spent) like a call refused up front.
      if (outcomes.length > 0 && outcomes.every((o) => o.kind === 'retryable' && o.code === 'circuit_open')) {
        throw circuit.openError();
      }
      return outcomes;
    },
  };
}
