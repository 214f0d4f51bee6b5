import type { Pool } from '../lib/db/postgres.js';
import type { Logger } from '../lib/logger.js';
import { laneReadiness, readLanes, updateLanes, type Lane, type LaneChange } from '../core/delivery/lanes.js';
import { judge, laneFigures } from '../core/delivery/analysis.js';
import { API_VERSION, GROUP, VERSION } from './api/v1alpha1/broadcast.js';
import { PROMOTE_ANNOTATION, RELEASE_PLURAL, type AnalysisSpec, type CanaryStep, type Release, type ReleasePhase, type ReleaseStatus } from './api/v1alpha1/release.js';
import { rfc3339, setCondition } from './conditions.js';
import { durationSeconds } from './delivery-record.js';
import type { ColorWorkloads } from './color-workloads.js';
import { isConflict, isNotFound, type KubeClient } from './kube-client.js';
import { metrics } from '../lib/metrics.js';

const RELEASE_CONDITIONS = ['Progressing', 'Paused', 'Healthy', 'Degraded', 'Aborted'] as const;

/** A step of the rollout: a canary step, or one of the steps a blue-green strategy stands for. */
type Step = CanaryStep & { name: string };

/**
 * Blue-green is canary steps too: preview (the synthetic tenants only), the
 * pre-promotion analysis, a pause (autoPromotionSeconds, or until promoted), all the
 * work at once, the post-promotion analysis (failing it rolls back).
 */
export function stepsOf(spec: Release['spec']): Step[] {
  const bg = spec.strategy.blueGreen;
  const named = (s: CanaryStep): Step => ({
    ...s,
    name: s.preview ? 'preview' : s.setWeight !== undefined ? `setWeight ${s.setWeight}` : s.pause ? `pause${s.pause.duration ? ` ${s.pause.duration}` : ''}` : 'analysis',
  });
  if (!bg) return (spec.strategy.canary?.steps ?? []).map(named);
  const steps: CanaryStep[] = [{ preview: { tenants: bg.previewTenants } }];
  if (bg.prePromotionAnalysis) steps.push({ analysis: {} });
  steps.push({ pause: bg.autoPromotionSeconds !== undefined ? { duration: `${Math.max(1, bg.autoPromotionSeconds)}s` } : {} });
  steps.push({ setWeight: 100 });
  if (bg.postPromotionAnalysis) steps.push({ analysis: {} });
  return steps.map(named);
}

export interface ReleaseControllerOptions {
  kube: KubeClient;
  pool: Pool;
  workloads: ColorWorkloads;
  log: Logger;
  namespace?: string;
  name?: string;
  /** Workers heart-beating within this many seconds count as live (the workers' lease). */
  leaseSeconds?: number;
}

/**
 * Reconciles the workers' Release, level-triggered: what it has done lives in the
 * lanes table (weights) and in the Release's status (the step, when it started, the
 * evaluations), so an operator killed at any point resumes at the same step. Time is
 * the database's: steps, pauses and analysis windows share one clock with the attempts.
 * It moves weights; judging them is the delivery core's (core/delivery/analysis.ts).
 */
export class ReleaseController {
  readonly namespace: string;
  readonly name: string;

  constructor(private readonly o: ReleaseControllerOptions) {
    this.namespace = o.namespace ?? 'herald-system';
    this.name = o.name ?? 'workers';
  }

  private path = (sub = '') => `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${RELEASE_PLURAL}/${this.name}${sub}`;

  async reconcile(): Promise<Release | undefined> {
    let rel: Release;
    try {
      rel = await this.o.kube.request<Release>('GET', this.path());
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    const before = JSON.stringify(rel.status ?? {});
    const status = await this.step(rel);
    if (JSON.stringify(status) === before) return rel;
    try {
      return await this.o.kube.request<Release>('PUT', this.path('/status'), {
        body: { apiVersion: API_VERSION, kind: rel.kind, metadata: rel.metadata, spec: rel.spec, status },
      });
    } catch (e) {
      if (isConflict(e)) return undefined; // changed meanwhile: the next pass reads it again
      throw e;
    }
  }

  /** One pass: act on the lanes and the workloads, and return the status to write. */
  private async step(rel: Release): Promise<ReleaseStatus> {
    const spec = rel.spec;
    const generation = rel.metadata.generation;
    const now = (await this.o.pool.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
    const st: ReleaseStatus = structuredClone(rel.status ?? {});
    let lanes = await readLanes(this.o.pool);
    const stable = lanes.find((l) => l.role === 'stable')!;
    const idle = lanes.find((l) => l.color !== stable.color && (l.color === st.canaryColor || !st.canaryColor)) ?? lanes.find((l) => l.color !== stable.color)!;
    const setLanes = async (changes: LaneChange[]) => {
      lanes = await updateLanes(this.o.pool, changes);
    };
    const finish = (phase: ReleasePhase, reason: string, message: string): ReleaseStatus => {
      st.phase = phase;
      st.message = message;
      st.observedGeneration = generation;
      st.weights = Object.fromEntries(lanes.map((l) => [l.color, l.weight]));
      st.weightsSummary = lanes.map((l) => `${l.color}=${l.weight}${l.role === 'preview' ? '(preview)' : ''}`).join(' ');
      for (const type of RELEASE_CONDITIONS) {
        setCondition(st, type, type === phase ? 'True' : 'False', type === phase ? reason : 'NotInPhase', type === phase ? message : `the Release is ${phase}`, { generation, now }, RELEASE_CONDITIONS);
        // HeraldReleaseAborted (platform/monitoring/alerts.ts) fires on Aborted or Degraded.
        metrics.releasePhase.set({ release: this.name, phase: type }, type === phase ? 1 : 0);
      }
      return st;
    };
    const abortCanary = async (phase: 'Aborted' | 'Degraded', reason: string, message: string) => {
      const canary = lanes.find((l) => l.color === st.canaryColor);
      // One transaction: every claim sees the canary at 0 and the stable lane at 100 together.
      if (canary && canary.role !== 'stable') await setLanes([{ color: canary.color, weight: 0, role: 'canary', tenants: [] }, { color: stable.color, weight: 100 }]);
      st.abortReason = message;
      st.scaleDownColor = st.canaryColor;
      st.scaleDownAt = rfc3339(new Date(now.getTime() + durationSeconds(spec.scaleDownDelay) * 1000));
      this.o.log.warn({ release: this.name, version: st.canaryVersion, reason }, message);
      return finish(phase, reason, message);
    };
    await this.scaleDownIfDue(st, lanes, now);

    // First adoption: the stable color runs the Release's version.
    if (!stable.version) {
      await setLanes([{ color: stable.color, version: spec.version }]);
      await this.o.workloads.run(stable.color, { image: spec.image, version: spec.version, minReplicas: spec.replicas, maxReplicas: spec.maxReplicas });
      Object.assign(st, { stableVersion: spec.version, stableColor: stable.color, canaryVersion: undefined, canaryColor: undefined });
      return finish('Healthy', 'Adopted', `${stable.color} runs ${spec.version}`);
    }
    st.stableVersion = stable.version;
    st.stableColor = stable.color;
    if (spec.version === stable.version && (st.canaryVersion === undefined || st.canaryVersion === spec.version)) {
      if (st.phase === 'Healthy' || st.canaryVersion === undefined) return finish('Healthy', 'Stable', `${stable.color} runs ${spec.version} with all the work`);
    }

    const promoteValue = rel.metadata.annotations?.[PROMOTE_ANNOTATION];
    // A new version (or another one than the one under trial): start over on the idle color.
    if (st.canaryVersion !== spec.version) {
      const trial = lanes.find((l) => l.color === st.canaryColor);
      if (trial && trial.role !== 'stable' && (trial.weight > 0 || trial.role === 'preview')) {
        await setLanes([{ color: trial.color, weight: 0, role: 'canary', tenants: [] }, { color: stable.color, weight: 100 }]);
      }
      await setLanes([{ color: idle.color, version: spec.version, weight: 0, role: 'canary', tenants: [] }]);
      await this.o.workloads.run(idle.color, { image: spec.image, version: spec.version, minReplicas: spec.replicas, maxReplicas: spec.maxReplicas });
      Object.assign(st, {
        phase: 'Progressing', canaryVersion: spec.version, canaryColor: idle.color, currentStep: 0, stepStartedAt: rfc3339(now), rolloutStartedAt: undefined,
        failedEvaluations: 0, passedEvaluations: 0, analysis: undefined, abortReason: undefined, lastEvaluatedAt: undefined,
        promoteHandled: promoteValue, scaleDownAt: undefined, scaleDownColor: undefined,
      });
      if (st.scaleDownColor === idle.color) st.scaleDownAt = undefined;
    }
    if (st.phase === 'Aborted' || st.phase === 'Degraded') return finish(st.phase, st.phase === 'Aborted' ? 'Aborted' : 'Degraded', st.abortReason ?? st.message ?? '');
    if (spec.abort) return abortCanary('Aborted', 'AbortedBySpec', `aborted by spec.abort: ${st.canaryVersion} on ${st.canaryColor} is at weight 0`);
    if (spec.paused) return finish('Paused', 'PausedBySpec', `paused by spec.paused at step ${st.currentStep} (${st.currentStepName ?? ''})`);

    const canaryColor = st.canaryColor!;
    const steps = stepsOf(spec);
    const canaryLane = () => lanes.find((l) => l.color === canaryColor)!;
    const ready = await laneReadiness(this.o.pool, canaryColor, spec.version, spec.replicas, this.o.leaseSeconds ?? 15);
    st.ready = { wanted: ready.wanted, ready: ready.ready };
    const started = new Date(st.stepStartedAt ?? rfc3339(now));
    // No weight (not even a preview) before the new color is ready.
    if (!ready.isReady && (st.currentStep ?? 0) === 0 && canaryLane().weight === 0 && canaryLane().role !== 'preview') {
      const deadline = durationSeconds(spec.progressDeadline);
      if (now.getTime() - started.getTime() > deadline * 1000) {
        return abortCanary('Degraded', 'ProgressDeadlineExceeded', `${ready.ready} of ${ready.wanted} ${canaryColor} workers of ${spec.version} ready within ${spec.progressDeadline}; it never got any work`);
      }
      st.currentStepName = steps[0]?.name;
      return finish('Progressing', 'WaitingForReady', `${ready.ready} of ${ready.wanted} ${canaryColor} workers of ${spec.version} ready (${ready.live} live)`);
    }

    for (let guard = 0; guard < steps.length + 1; guard++) {
      const i = st.currentStep ?? 0;
      const promoted = promoteValue !== undefined && promoteValue !== st.promoteHandled;
      if (promoted && promoteValue === 'full') {
        st.promoteHandled = promoteValue;
        st.currentStep = steps.length;
      }
      if ((st.currentStep ?? 0) >= steps.length) {
        // Promotion: the new color is stable with all the work; the old one idles, then scales down.
        await setLanes([{ color: canaryColor, weight: 100, role: 'stable', tenants: [] }, { color: stable.color, weight: 0, role: 'canary', tenants: [] }]);
        Object.assign(st, {
          stableVersion: spec.version, stableColor: canaryColor, currentStepName: 'promoted',
          scaleDownColor: stable.color, scaleDownAt: rfc3339(new Date(now.getTime() + durationSeconds(spec.scaleDownDelay) * 1000)),
        });
        return finish('Healthy', 'Promoted', `${canaryColor} runs ${spec.version} with all the work; ${stable.color} scales down after ${spec.scaleDownDelay}`);
      }
      const step = steps[i]!;
      st.currentStepName = step.name;
      const next = () => {
        st.currentStep = i + 1;
        st.stepStartedAt = rfc3339(now);
        st.passedEvaluations = 0;
        st.lastEvaluatedAt = undefined;
      };
      const elapsedMs = now.getTime() - new Date(st.stepStartedAt ?? rfc3339(now)).getTime();
      if (step.preview) {
        await setLanes([{ color: canaryColor, weight: 0, role: 'preview', tenants: step.preview.tenants }, { color: stable.color, weight: 100 }]);
        // Blue-green waits for its pause step instead; a canary's preview waits for a promote.
        if (spec.strategy.blueGreen || promoted) {
          if (promoted) st.promoteHandled = promoteValue;
          next();
          continue;
        }
        return finish('Paused', 'WaitingForPromote', `${canaryColor} (${spec.version}) serves only ${step.preview.tenants.join(', ')}; promote to go on`);
      }
      if (step.setWeight !== undefined) {
        await setLanes([{ color: canaryColor, weight: step.setWeight, role: 'canary', tenants: [] }, { color: stable.color, weight: 100 - step.setWeight }]);
        next();
        continue;
      }
      if (step.pause) {
        const d = step.pause.duration ? durationSeconds(step.pause.duration) * 1000 : undefined;
        if (promoted || (d !== undefined && elapsedMs >= d)) {
          if (promoted) st.promoteHandled = promoteValue;
          next();
          continue;
        }
        return d === undefined
          ? finish('Paused', 'WaitingForPromote', `paused at step ${i} until promoted`)
          : finish('Paused', 'PauseDuration', `paused at step ${i} for ${step.pause.duration} (${Math.ceil((d - elapsedMs) / 1000)} s left)`);
      }
      // Analysis.
      const a: AnalysisSpec = { ...spec.analysis, ...step.analysis };
      const last = st.lastEvaluatedAt ? now.getTime() - new Date(st.lastEvaluatedAt).getTime() : Infinity;
      if (last < durationSeconds(a.interval) * 1000) return finish('Progressing', 'Analysing', st.message ?? `analysing ${spec.version}`);
      const current = canaryLane();
      // From this step's start, not the pass's first step: a step entered in this same pass
      // (a preview promoted, a setWeight) must not be judged on the attempts made before it.
      const stepStart = new Date(st.stepStartedAt ?? rfc3339(now));
      const figures = await laneFigures(this.o.pool, [{ color: current.color, version: spec.version }, { color: stable.color, version: stable.version }], durationSeconds(a.window), stepStart);
      const [mine, theirs] = figures.lanes;
      const verdict = judge(mine!, theirs, a);
      st.lastEvaluatedAt = rfc3339(now);
      st.analysis = {
        windowStart: figures.start.toISOString(), windowEnd: figures.end.toISOString(), verdict: verdict.verdict, failedChecks: verdict.failedChecks,
        lanes: figures.lanes.map((f) => ({ ...f, weight: lanes.find((l) => l.color === f.color)?.weight ?? 0 })),
      };
      if (verdict.verdict === 'Inconclusive') {
        if (elapsedMs > durationSeconds(a.sampleTimeout) * 1000) {
          return abortCanary('Degraded', 'SampleTimeout', `analysis at step ${i} found ${mine!.attempts} attempts of ${spec.version} within ${a.sampleTimeout}; ${a.minSample} needed, so it is not passed`);
        }
        return finish('Progressing', 'WaitingForSample', verdict.reason);
      }
      if (verdict.verdict === 'Failed') {
        st.failedEvaluations = (st.failedEvaluations ?? 0) + 1;
        if (st.failedEvaluations >= a.threshold) {
          return abortCanary('Aborted', 'AnalysisFailed', `analysis at step ${i} failed ${st.failedEvaluations} time(s): ${verdict.failedChecks.join('; ')}`);
        }
        return finish('Progressing', 'AnalysisFailedOnce', `analysis failed (${st.failedEvaluations} of ${a.threshold}): ${verdict.failedChecks.join('; ')}`);
      }
      st.passedEvaluations = (st.passedEvaluations ?? 0) + 1;
      if (st.passedEvaluations < a.successfulEvaluations) return finish('Progressing', 'Analysing', `analysis passed ${st.passedEvaluations} of ${a.successfulEvaluations}`);
      next();
    }
    return finish('Progressing', 'Progressing', `step ${st.currentStep} of ${steps.length}`);
  }

  /** A color left at weight 0 keeps its workers for scaleDownDelay (in-flight rows finish), then has none. */
  private async scaleDownIfDue(st: ReleaseStatus, lanes: Lane[], now: Date): Promise<void> {
    if (!st.scaleDownAt || !st.scaleDownColor || now < new Date(st.scaleDownAt)) return;
    const lane = lanes.find((l) => l.color === st.scaleDownColor);
    if (lane && lane.weight === 0 && lane.role !== 'preview') await this.o.workloads.scaleToZero(lane.color);
    st.scaleDownAt = undefined;
    st.scaleDownColor = undefined;
  }
}
