/**
 * A delivery as data: waves of steps, run by one interpreter
 * (workflows/interpreter.ts). A strategy is a plan builder, not a loop of its
 * own. Cluster steps run on every cluster of a wave, each cluster through its
 * own sequence, in parallel; wave steps (gates, analyses, to come) run once
 * and wait for every cluster to reach them.
 */
import type { ClusterInfo } from './inventory.ts';
import type { DeployRequest } from './delivery.ts';
import type { Analysis } from './analysis.ts';
import { BlueGreenSchema, type Approval, type BlueGreen, type Canary } from './strategy.ts';
import { durationMs } from './names.ts';
import { inlineApp } from './app.ts';
import { customizeForCluster, imagesIn, mainImage, markBundle, pinBundle, planBundleReplicas, REPLICATED_KINDS, toPrune, type ReplicaPlan } from './bundle.ts';
import { refOf, applyOrder, needsWait, type KubeObject, type ObjectRef } from './objects.ts';
import { planDeploy, planPlacement, type ImageDigests, type Placed } from './plan.ts';
import { renderApp } from './render.ts';
import type { ReplicateStep } from './replication.ts';

export const StepKind = {
  /** Server-side apply of the cluster's rendered objects, after recording what stood there. */
  apply: 'apply',
  /** Wait until the applied workloads are ready. */
  wait: 'wait',
  /** Delete what an earlier delivery of the application left there and this one no longer has. */
  prune: 'prune',
  /** A canary's start: everything but the canaried Deployment applied, the canary objects added at weight 0. */
  canary: 'canary',
  setWeight: 'setWeight',
  setCanaryScale: 'setCanaryScale',
  /** Waits a duration, or for `promote`. */
  pause: 'pause',
  /** A gate: waits for its quorum of approvals, a rejection, or its deadline. */
  approval: 'approval',
  analysis: 'analysis',
  /** The new version becomes the stable one (full replicas, ready), then the canary objects go. */
  promote: 'promote',
  /** Waits after a promoted wave before the next one starts. */
  bake: 'bake',
  /** Blue-green: the new version beside the old as a preview (its own Service), waited ready. */
  preview: 'preview',
  /** Blue-green: the active Service switched to the preview's pods. */
  switch: 'switch',
  /** Blue-green: after scaleDownDelay, the Deployment itself runs the new version, the active Service back on it, the preview gone. */
  finish: 'finish',
  /** Wave step, first in each wave: copy the images its clusters pull from their regional registry there, by digest. */
  replicate: 'replicate',
} as const;
export type StepKind = (typeof StepKind)[keyof typeof StepKind];

export type PlanStep =
  | { kind: typeof StepKind.apply }
  | { kind: typeof StepKind.wait }
  | { kind: typeof StepKind.prune }
  | { kind: typeof StepKind.canary }
  | { kind: typeof StepKind.setWeight; weight: number }
  | { kind: typeof StepKind.setCanaryScale; replicas?: number; weight?: number; matchTrafficWeight?: true }
  | { kind: typeof StepKind.pause; durationMs?: number }
  | { kind: typeof StepKind.approval; approval: Approval }
  | { kind: typeof StepKind.analysis; analyses: Analysis[] }
  | { kind: typeof StepKind.promote }
  | { kind: typeof StepKind.bake; durationMs: number }
  | { kind: typeof StepKind.preview }
  | { kind: typeof StepKind.switch }
  | { kind: typeof StepKind.finish; scaleDownDelayMs: number }
  | ReplicateStep;

export type StepScope = 'cluster' | 'wave';
const scopes: Record<StepKind, StepScope> = {
  apply: 'cluster',
  wait: 'cluster',
  prune: 'cluster',
  canary: 'cluster',
  setWeight: 'cluster',
  setCanaryScale: 'cluster',
  pause: 'wave',
  approval: 'wave',
  analysis: 'wave',
  promote: 'cluster',
  bake: 'wave',
  preview: 'cluster',
  switch: 'cluster',
  finish: 'cluster',
  replicate: 'wave',
};
export const scopeOf = (s: PlanStep): StepScope => scopes[s.kind];

/** How the status names a step: its kind and what sets it apart (`setWeight 20`, `approval prod`, `pause 30s`). */
export function stepLabel(s: PlanStep): string {
  switch (s.kind) {
    case 'setWeight':
      return `setWeight ${s.weight}`;
    case 'setCanaryScale':
      return `setCanaryScale ${s.replicas !== undefined ? `${s.replicas} replicas` : s.weight !== undefined ? `${s.weight}%` : 'matchTrafficWeight'}`;
    case 'pause':
      return s.durationMs === undefined ? 'pause' : `pause ${s.durationMs / 1000}s`;
    case 'approval':
      return `approval ${s.approval.name}`;
    case 'analysis':
      return `analysis ${s.analyses.map((a) => a.name).join('+')}`;
    case 'bake':
      return `bake ${s.durationMs / 1000}s`;
    case 'finish':
      return `finish after ${s.scaleDownDelayMs / 1000}s`;
    default:
      return s.kind;
  }
}

/**
 * A canary's steps in every wave: the canary beside the stable version, the user's steps, the promotion,
 * the pruning, and a bake before the next wave when asked.
 */
export function canarySteps(c: Canary): PlanStep[] {
  const out: PlanStep[] = [{ kind: StepKind.canary }];
  for (const s of c.steps) {
    if (s.setWeight !== undefined) out.push({ kind: StepKind.setWeight, weight: s.setWeight });
    else if (s.pause) out.push({ kind: StepKind.pause, ...(s.pause.duration ? { durationMs: durationMs(s.pause.duration) } : {}) });
    else if (s.approval) out.push({ kind: StepKind.approval, approval: s.approval });
    else if (s.analysis) out.push({ kind: StepKind.analysis, analyses: s.analysis });
    else if (s.setCanaryScale) out.push({ kind: StepKind.setCanaryScale, ...s.setCanaryScale });
  }
  out.push({ kind: StepKind.promote }, { kind: StepKind.prune });
  if (c.bake) out.push({ kind: StepKind.bake, durationMs: durationMs(c.bake) });
  return out;
}

/**
 * A blue-green's steps in every wave: the preview beside the active version, the pre-promotion analysis, the
 * wait for promotion (a gate, a delay, or `promote`), the switch, the post-promotion analysis, and the finish.
 */
export function blueGreenSteps(b: BlueGreen): PlanStep[] {
  const out: PlanStep[] = [{ kind: StepKind.preview }];
  if (b.prePromotionAnalysis) out.push({ kind: StepKind.analysis, analyses: b.prePromotionAnalysis });
  if (b.approval) out.push({ kind: StepKind.approval, approval: b.approval });
  if (!b.autoPromotion) out.push({ kind: StepKind.pause });
  else if (b.autoPromotionSeconds) out.push({ kind: StepKind.pause, durationMs: b.autoPromotionSeconds * 1000 });
  out.push({ kind: StepKind.switch });
  if (b.postPromotionAnalysis) out.push({ kind: StepKind.analysis, analyses: b.postPromotionAnalysis });
  out.push({ kind: StepKind.finish, scaleDownDelayMs: durationMs(b.scaleDownDelay) }, { kind: StepKind.prune });
  return out;
}

/** The steps of every wave of a request. */
export const stepsFor = (request: Pick<DeployRequest, 'type' | 'canary' | 'blueGreen'>): PlanStep[] =>
  request.type === 'canary' && request.canary ? canarySteps(request.canary) : request.type === 'blueGreen' ? blueGreenSteps(request.blueGreen ?? BlueGreenSchema.parse({})) : deploySteps();

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
  /** Objects an earlier delivery of the application left there that this one no longer has. */
  prune: ObjectRef[];
}

/** What the hub prepares once per delivery: everything each cluster will apply, as data. */
export interface PreparedDelivery {
  /** Digest of every image, resolved once (`ref -> sha256:...`). */
  digests: ImageDigests;
  waves: PlanWave[];
  clusters: Record<string, PreparedCluster>;
}

/** The deploy strategy: every wave applies, waits, then prunes what the new version no longer has. */
export function deploySteps(): PlanStep[] {
  return [{ kind: StepKind.apply }, { kind: StepKind.wait }, { kind: StepKind.prune }];
}

/** What each cluster held of the application after the last delivery (its objects), for pruning. */
export type ObjectInventory = Record<string, ObjectRef[]>;

/**
 * Plans and renders a delivery of the inline spec (pure): the PlanError of
 * planDeploy passes through. Then the same overrides as any bundle: patches.
 */
export function prepareDeploy(request: DeployRequest, fleet: readonly ClusterInfo[], digests: ImageDigests, deliveryId: string, previous: ObjectInventory = {}): PreparedDelivery {
  const plan = planDeploy(request.app, fleet, request.waves, digests);
  const app = inlineApp(request.app);
  const progressDeadlineSeconds = Math.ceil(durationMs(request.rolloutTimeout) / 1000);
  const placed = planPlacement(request.app, fleet, request.waves);
  const clusters: Record<string, PreparedCluster> = {};
  for (const t of Object.values(plan.targets)) {
    const rendered = renderApp(app, t, { deliveryId, progressDeadlineSeconds });
    const patched = customizeForCluster(rendered, t.cluster, { patches: placed.overrides[t.cluster]?.patches ?? [] }, { workloads: {}, autoscalers: {} });
    const objects = applyOrder(patched);
    clusters[t.cluster] = {
      cluster: t.cluster,
      wave: t.wave,
      taskQueue: t.taskQueue,
      replicas: t.replicas,
      image: t.image,
      objects,
      workloads: objects.map(refOf).filter(needsWait),
      prune: toPrune(previous[t.cluster], objects),
    };
  }
  return { digests, waves: plan.waves.map((clusters) => ({ clusters, steps: stepsFor(request) })), clusters };
}

/**
 * Prepares a delivery of rendered objects (a source's): `bases` holds each
 * placed cluster's rendering (the same objects for most sources; per cluster
 * where Helm values differ), already normalized. `digests` must cover
 * imagesOfBundles(...) of the customized bundles.
 */
export function prepareBundle(
  request: DeployRequest,
  placed: Placed,
  bases: Record<string, KubeObject[]>,
  digests: ImageDigests,
  deliveryId: string,
  previous: ObjectInventory = {},
  totals: KubeObject[] = Object.values(bases)[0] ?? [],
): PreparedDelivery {
  const replicaPlan = planBundleReplicas(totals, request.app, placed.clusters, placed.overrides);
  const waveOf = new Map<string, number>();
  placed.waves.forEach((w, i) => w.forEach((n) => waveOf.set(n, i)));
  const clusters: Record<string, PreparedCluster> = {};
  for (const c of placed.clusters) {
    const o = placed.overrides[c.name] ?? {};
    const objects = customizeForCluster(bases[c.name] ?? [], c.name, o, replicaPlan);
    pinBundle(objects, digests, o.registry, c.name);
    markBundle(objects, { namespace: request.app.namespace, name: request.app.name }, deliveryId, c.name);
    const ordered = applyOrder(objects);
    const replicas = Object.values(replicaPlan.workloads).reduce((a, byCluster) => a + (byCluster[c.name] ?? 0), 0);
    clusters[c.name] = {
      cluster: c.name,
      wave: waveOf.get(c.name)!,
      taskQueue: c.taskQueue,
      replicas,
      image: mainImage(ordered),
      objects: ordered,
      workloads: ordered.map(refOf).filter(needsWait),
      prune: toPrune(previous[c.name], ordered),
    };
  }
  return { digests, waves: placed.waves.map((cl) => ({ clusters: cl, steps: stepsFor(request) })), clusters };
}

/** The images the customized bundles will run (to resolve before prepareBundle). */
export function imagesOfBundles(request: DeployRequest, placed: Placed, bases: Record<string, KubeObject[]>): string[] {
  const noReplicas: ReplicaPlan = { workloads: {}, autoscalers: {} };
  return [...new Set(placed.clusters.flatMap((c) => imagesIn(customizeForCluster(bases[c.name] ?? [], c.name, { ...(placed.overrides[c.name]?.images ? { images: placed.overrides[c.name]!.images! } : {}) }, noReplicas))))];
}

/**
 * Prepares a rollback to a version: each cluster gets back exactly the objects
 * that version rendered there (read from the cluster), marked as applied by
 * this delivery; what the application has there now and the version did not
 * is pruned.
 */
export function prepareVersion(request: DeployRequest, placed: Placed, objects: Record<string, KubeObject[]>, deliveryId: string, previous: ObjectInventory = {}): PreparedDelivery {
  const waveOf = new Map<string, number>();
  placed.waves.forEach((w, i) => w.forEach((n) => waveOf.set(n, i)));
  const clusters: Record<string, PreparedCluster> = {};
  const digests: ImageDigests = {};
  for (const c of placed.clusters) {
    const bundle = (objects[c.name] ?? []).map((o) => JSON.parse(JSON.stringify(o)) as KubeObject);
    markBundle(bundle, { namespace: request.app.namespace, name: request.app.name }, deliveryId, c.name);
    const ordered = applyOrder(bundle);
    for (const img of imagesIn(ordered)) {
      const at = img.indexOf('@');
      if (at > 0) digests[img] = img.slice(at + 1);
    }
    const replicas = ordered.reduce((a, o) => a + (REPLICATED_KINDS.has(o.kind) ? Number((o.spec as { replicas?: number } | undefined)?.replicas ?? 0) : 0), 0);
    clusters[c.name] = {
      cluster: c.name,
      wave: waveOf.get(c.name)!,
      taskQueue: c.taskQueue,
      replicas,
      image: mainImage(ordered),
      objects: ordered,
      workloads: ordered.map(refOf).filter(needsWait),
      prune: toPrune(previous[c.name], ordered),
    };
  }
  return { digests, waves: placed.waves.map((cl) => ({ clusters: cl, steps: stepsFor(request) })), clusters };
}
