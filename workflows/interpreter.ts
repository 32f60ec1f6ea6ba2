/**
 * The one interpreter that runs any delivery plan: wave by wave; inside a wave,
 * runs of cluster steps go on every cluster in parallel, each cluster through
 * its own sequence (a failure stops that cluster at its step), and wave steps
 * run once. A wave starts only when the one before it has every cluster done
 * or skipped. What happens on a failure is the delivery's `onFailure`; a retry
 * resumes each failed cluster at the step where it stopped.
 */
import { condition, isCancellation } from '@temporalio/workflow';
import { Reason, segmentsOf, stepLabel, type PlanStep, type ResumePoint, type StepKind } from '../model/index.ts';
import type { RunContext } from './context.ts';
import { summarizeFailure } from './failures.ts';
import type { ActionInput } from './messages.ts';
import { applyStep } from './steps/apply.ts';
import { pruneStep } from './steps/prune.ts';
import { replicateStep } from './steps/replicate.ts';
import { waitStep } from './steps/wait.ts';
import { analysisStep } from './steps/analysis.ts';
import { finishStep, previewStep, switchStep } from './steps/bluegreen.ts';
import { canaryStartStep, promoteStep, setCanaryScaleStep, setWeightStep } from './steps/canary.ts';
import { approvalStep, bakeStep, pauseStep } from './steps/gates.ts';
import { StopDelivery } from './stop.ts';
import { guardCluster } from './clusterVerdict.ts';

/** A step each cluster of the wave goes through on its own. */
export type ClusterStepModule = (x: RunContext, cluster: string, step: PlanStep) => Promise<void>;
/**
 * A step that runs once for its wave (a gate, an analysis, a replication) once every cluster of the wave
 * has reached it; `clusters` are those still in the running. A failure fails each of them at this step, so
 * the delivery's onFailure applies and a retry runs the step again.
 */
export type WaveStepModule = (x: RunContext, wave: number, clusters: string[], step: PlanStep) => Promise<void>;

/** One module per step kind. */
const clusterSteps: Partial<Record<StepKind, ClusterStepModule>> = {
  apply: applyStep,
  wait: waitStep,
  prune: pruneStep,
  canary: canaryStartStep,
  setWeight: setWeightStep,
  setCanaryScale: setCanaryScaleStep,
  promote: promoteStep,
  preview: previewStep,
  switch: switchStep,
  finish: finishStep,
};
const waveSteps: Partial<Record<StepKind, WaveStepModule>> = {
  replicate: replicateStep,
  pause: pauseStep,
  approval: approvalStep,
  analysis: analysisStep,
  bake: bakeStep,
};

/**
 * Steps that put the version in place (rather than decide whether to go on): a retry of an Aborted delivery
 * runs them again in the waves before its stop, whose abort undid them, and skips the rest there.
 */
const STRUCTURAL: ReadonlySet<StepKind> = new Set<StepKind>(['replicate', 'apply', 'wait', 'prune', 'canary', 'promote', 'preview', 'switch', 'finish']);
/** Steps whose last one before the stop is run again in the resumed wave: the canary's weight and scale as they stood. */
const RESTORED: ReadonlySet<StepKind> = new Set<StepKind>(['setWeight', 'setCanaryScale']);

/**
 * Which steps of a wave a retry skips (indices), resuming at `at`: before the stopped wave, every step but the
 * structural ones (its gates, analyses and weights were passed before); in it, the same before the stop, except the
 * last weight and scale steps, which put the canary back where it stood.
 */
export function resumeSkips(steps: readonly PlanStep[], wave: number, at: ResumePoint | undefined): Set<number> {
  const skip = new Set<number>();
  if (!at || wave > at.wave) return skip;
  const end = wave < at.wave ? steps.length : Math.min(at.step, steps.length);
  const lastOf = new Map<StepKind, number>();
  if (wave === at.wave) for (let i = 0; i < end; i++) if (RESTORED.has(steps[i]!.kind)) lastOf.set(steps[i]!.kind, i);
  for (let i = 0; i < end; i++) {
    const k = steps[i]!.kind;
    if (STRUCTURAL.has(k) || lastOf.get(k) === i) continue;
    skip.add(i);
  }
  return skip;
}

/** How a run ended, before the delivery concludes it (outside the cancellable scope). */
export type Outcome =
  | { kind: 'healthy' }
  | { kind: 'failed'; message: string }
  | { kind: 'planFailed'; message: string }
  | { kind: 'rollback'; reason: string }
  | { kind: 'abort'; reason: string };

/** Decisions an SRE takes while a delivery waits (rollback and abort cancel the run instead). */
export interface Decisions {
  pending: ActionInput | undefined;
}

export class Interpreter {
  readonly #x: RunContext;
  readonly #decisions: Decisions;
  readonly #resume: ResumePoint | undefined;
  /** Step indices the current wave skips (a retry's resumption). */
  #skip = new Set<number>();

  constructor(x: RunContext, decisions: Decisions, resume?: ResumePoint) {
    this.#x = x;
    this.#decisions = decisions;
    this.#resume = resume;
  }

  async run(steps: readonly PlanStep[], wave: number): Promise<void> {
    const { state } = this.#x;
    const clusters = this.#x.plan().waves[wave]!.clusters;
    for (const seg of segmentsOf(steps)) {
      if (seg.scope === 'wave') {
        if (this.#skip.has(seg.at)) {
          for (const n of clusters) if (state.cluster(n).step <= seg.at) state.cluster(n).step = seg.at + 1;
          state.refreshStep();
          continue;
        }
        await this.#runWave(steps[seg.at]!, wave, clusters, seg.at);
        if (state.failedIn(clusters).length > 0) return;
        continue;
      }
      const todo = clusters.filter((n) => {
        const c = state.cluster(n);
        return c.phase !== 'Skipped' && c.phase !== 'Failed' && c.phase !== 'Unreachable' && c.step < seg.to;
      });
      await Promise.all(todo.map((n) => this.#runCluster(steps, n, seg.from, seg.to)));
      // A cluster that failed in this run of steps holds the wave here.
      if (state.failedIn(clusters).length > 0) return;
    }
  }

  async #runWave(step: PlanStep, wave: number, clusters: readonly string[], at: number): Promise<void> {
    const { state } = this.#x;
    const todo = clusters.filter((n) => {
      const c = state.cluster(n);
      return c.phase !== 'Skipped' && c.phase !== 'Failed' && c.phase !== 'Unreachable' && c.step <= at;
    });
    if (todo.length === 0) return;
    const module = waveSteps[step.kind];
    if (!module) throw new Error(`wave step ${step.kind} has no module`);
    try {
      await module(this.#x, wave, todo, step);
    } catch (err) {
      if (isCancellation(err) || err instanceof StopDelivery) throw err;
      const f = summarizeFailure(err);
      for (const n of todo) state.setCluster(n, f.unreachable ? 'Unreachable' : 'Failed', f.message, { failureType: f.type });
      return;
    }
    for (const n of todo) state.cluster(n).step = at + 1;
    state.refreshStep();
  }

  async #runCluster(steps: readonly PlanStep[], cluster: string, from: number, to: number): Promise<void> {
    const { state } = this.#x;
    const cs = state.cluster(cluster);
    cs.attempts += 1;
    for (let i = Math.max(cs.step, from); i < to; i++) {
      if (this.#skip.has(i)) {
        cs.step = i + 1;
        continue;
      }
      const module = clusterSteps[steps[i]!.kind];
      if (!module) throw new Error(`cluster step ${steps[i]!.kind} has no module`);
      try {
        await guardCluster(this.#x, cluster, () => module(this.#x, cluster, steps[i]!));
      } catch (err) {
        if (isCancellation(err)) throw err;
        const f = summarizeFailure(err);
        state.setCluster(cluster, f.unreachable ? 'Unreachable' : 'Failed', f.message, { failureType: f.type });
        return;
      }
      cs.step = i + 1;
      state.refreshStep();
    }
  }

  /** Every wave, in order. Resolves with how the run ended; rejects only with a cancellation. */
  async all(): Promise<Outcome> {
    const { state, request } = this.#x;
    const s = state.status;
    const plan = this.#x.plan();
    for (let w = 0; w < plan.waves.length; w++) {
      s.currentWave = w;
      state.refreshStep();
      const wave = plan.waves[w]!;
      state.condition('Progressing', 'True', Reason.WaveStarted, `wave ${w + 1} of ${plan.waves.length}: ${wave.clusters.join(', ')}`);
      this.#skip = resumeSkips(wave.steps, w, this.#resume);
      if (this.#skip.size > 0) {
        const skipped = [...this.#skip].map((i) => stepLabel(wave.steps[i]!)).join(', ');
        const r = this.#resume!;
        state.condition('Resumed', 'True', Reason.Resumed, w < r.wave
          ? `wave ${w + 1}: passed before the abort; put back without ${skipped}`
          : `wave ${w + 1}: resumed at step ${r.step + 1} (${r.label}), without ${skipped}`);
      }
      for (;;) {
        try {
          await this.run(wave.steps, w);
        } catch (err) {
          if (err instanceof StopDelivery) return { kind: err.outcome, reason: err.reason };
          throw err;
        }
        const failed = state.failedIn(wave.clusters);
        if (failed.length === 0) break;
        const summary = failed.map((n) => `${n}: ${state.cluster(n).message}`).join('; ');
        state.condition('Progressing', 'False', Reason.WaveFailed, `wave ${w + 1}: ${summary}`);
        if (request.onFailure === 'rollback') return { kind: 'rollback', reason: `wave ${w + 1} failed: ${summary}` };
        if (request.onFailure === 'fail') return { kind: 'failed', message: `wave ${w + 1} failed: ${summary}` };
        state.setPhase('NeedsAttention', `wave ${w + 1} failed: ${summary}`);
        state.condition('Paused', 'True', Reason.WaitingForAction, 'waiting for an SRE: retry, skip, rollback or abort');
        await condition(() => this.#decisions.pending !== undefined);
        const a = this.#decisions.pending!;
        this.#decisions.pending = undefined;
        state.condition('Paused', 'False', Reason.WaitingForAction, `${a.who} chose ${a.action}`);
        state.setPhase('Progressing', `${a.action} by ${a.who}`);
      }
      state.condition('Progressing', 'True', Reason.WaveHealthy, `wave ${w + 1} healthy: ${wave.clusters.join(', ')}`);
    }
    return { kind: 'healthy' };
  }
}
