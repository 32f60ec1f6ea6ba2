/**
 * A delivery as data: waves of steps, run by one interpreter
 * (workflows/interpreter.ts). A strategy is a plan builder, not a loop of its
 * own. Cluster steps run on every cluster of a wave, each cluster through its
 * own sequence, in parallel; wave steps (gates, analyses, to come) run once
 * and wait for every cluster to reach them.
 */
import type { ClusterInfo } from './inventory.ts';
import type { DeployRequest } from './delivery.ts';
import { durationMs } from './names.ts';
import { refOf, applyOrder, isWorkload, type KubeObject, type ObjectRef } from './objects.ts';
import { planDeploy, type ImageDigests } from './plan.ts';
import { renderApp } from './render.ts';

export const StepKind = {
  /** Server-side apply of the cluster's rendered objects, after recording what stood there. */
  apply: 'apply',
  /** Wait until the applied workloads are ready. */
  wait: 'wait',
} as const;
export type StepKind = (typeof StepKind)[keyof typeof StepKind];

export type PlanStep = { kind: typeof StepKind.apply } | { kind: typeof StepKind.wait };

export type StepScope = 'cluster' | 'wave';
const scopes: Record<StepKind, StepScope> = { apply: 'cluster', wait: 'cluster' };
export const scopeOf = (s: PlanStep): StepScope => scopes[s.kind];

export interface PlanWave {
  clusters: string[];
  steps: PlanStep[];
}

/** A run of steps: consecutive cluster steps [from, to) that each cluster goes through alone, or one wave step. */
export type Segment = { scope: 'cluster'; from: number; to: number } | { scope: 'wave'; at: number };

export function segmentsOf(steps: readonly PlanStep[]): Segment[] {
  const out: Segment[] = [];
  steps.forEach((s, i) => {
    if (scopeOf(s) === 'wave') out.push({ scope: 'wave', at: i });
    else {
      const last = out[out.length - 1];
      if (last?.scope === 'cluster' && last.to === i) last.to = i + 1;
      else out.push({ scope: 'cluster', from: i, to: i + 1 });
    }
  });
  return out;
}

/** The step a wave is at: the lowest step of its clusters still in the running (skipped ones do not hold it back). */
export function waveStep(stepOfCluster: readonly { step: number; skipped: boolean }[], stepCount: number): number {
  const active = stepOfCluster.filter((c) => !c.skipped).map((c) => c.step);
  return active.length ? Math.min(...active) : stepCount;
}

export interface PreparedCluster {
  cluster: string;
  wave: number;
  taskQueue: string;
  replicas: number;
  /** The application's image there, pinned by digest. */
  image: string;
  /** Rendered, in apply order. */
  objects: KubeObject[];
  /** Objects whose readiness the wait step waits for. */
  workloads: ObjectRef[];
}

/** What the hub prepares once per delivery: everything each cluster will apply, as data. */
export interface PreparedDelivery {
  /** Digest of every image, resolved once (`ref -> sha256:...`). */
  digests: ImageDigests;
  waves: PlanWave[];
  clusters: Record<string, PreparedCluster>;
}

/** The deploy strategy: every wave applies, then waits. */
export function deploySteps(): PlanStep[] {
  return [{ kind: StepKind.apply }, { kind: StepKind.wait }];
}

/** Plans and renders a deploy request (pure): the PlanError of planDeploy passes through. */
export function prepareDeploy(request: DeployRequest, fleet: readonly ClusterInfo[], digests: ImageDigests, deliveryId: string): PreparedDelivery {
  const plan = planDeploy(request.app, fleet, request.waves, digests);
  const progressDeadlineSeconds = Math.ceil(durationMs(request.rolloutTimeout) / 1000);
  const clusters: Record<string, PreparedCluster> = {};
  for (const t of Object.values(plan.targets)) {
    const objects = applyOrder(renderApp(request.app, t, { deliveryId, progressDeadlineSeconds }));
    clusters[t.cluster] = {
      cluster: t.cluster,
      wave: t.wave,
      taskQueue: t.taskQueue,
      replicas: t.replicas,
      image: t.image,
      objects,
      workloads: objects.map(refOf).filter(isWorkload),
    };
  }
  return { digests, waves: plan.waves.map((clusters) => ({ clusters, steps: deploySteps() })), clusters };
}
