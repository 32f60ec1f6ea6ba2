/**
 * Rollout status: a pure judgement of one observation (assessRollout, unit
 * tested) and the activity loop around it (waitForRollout), which polls about
 * once a second, heartbeats each time with the progress, stops when the
 * activity is cancelled, and fails at the first clear sign that the new pods
 * will not come up.
 */
import type { CoreV1Event, V1Deployment, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { FailureType } from '../../model/reasons.ts';
import type { AppClusterState, AppRef, RolloutResult, WaitForRolloutInput } from '../types.ts';
import type { ClusterClients } from './clients.ts';
import { readDeployment } from './apply.ts';
import {
  describeRef,
  imageOf,
  labelSelector,
  LABEL_POD_TEMPLATE_HASH,
  ownedBy,
  revisionOf,
} from './deployment.ts';
import { kube } from './errors.ts';

/** Container waiting reasons that will not fix themselves without a new release. */
export const FATAL_WAITING_REASONS = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'ErrImageNeverPull',
]);

export interface RolloutProgress {
  observedGeneration: number;
  generation: number;
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  /** Pods of older revisions still around. */
  oldReplicas: number;
  message: string;
}

export interface PodProblem {
  pod: string;
  problem: string;
}

export type Verdict =
  | { kind: 'done'; progress: RolloutProgress }
  | { kind: 'waiting'; progress: RolloutProgress }
  | { kind: 'failed'; progress: RolloutProgress; reason: string; pods: PodProblem[] };

export interface Observation {
  deployment: V1Deployment;
  /** The wanted generation (from the apply). */
  generation: number;
  /** Pods of the new ReplicaSet (empty when not looked up yet). */
  newPods: V1Pod[];
  now: number;
  /** When this activity first saw each pod Running but not Ready (ms), by pod name; updated in place. */
  unreadySeen: Map<string, number>;
  unreadyGraceMs: number;
}

function ms(t: Date | string | undefined): number | undefined {
  if (t === undefined) return undefined;
  const v = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isFinite(v) ? v : undefined;
}

export function progressOf(d: V1Deployment, generation: number): RolloutProgress {
  const s = d.status ?? {};
  const replicas = d.spec?.replicas ?? 1;
  const updatedReplicas = s.updatedReplicas ?? 0;
  const p = {
    observedGeneration: s.observedGeneration ?? 0,
    generation,
    replicas,
    updatedReplicas,
    readyReplicas: s.readyReplicas ?? 0,
    availableReplicas: s.availableReplicas ?? 0,
    oldReplicas: Math.max(0, (s.replicas ?? 0) - updatedReplicas),
  };
  let message: string;
  if (p.observedGeneration < generation)
    message = `waiting for the controller to see generation ${generation} (at ${p.observedGeneration})`;
  else if (updatedReplicas < replicas) message = `${updatedReplicas} of ${replicas} new replicas updated`;
  else if (p.oldReplicas > 0) message = `${p.oldReplicas} old replicas pending termination`;
  else if (p.availableReplicas < updatedReplicas || p.readyReplicas < replicas)
    message = `${p.availableReplicas} of ${updatedReplicas} updated replicas available`;
  else message = `${replicas} of ${replicas} replicas ready`;
  return { ...p, message };
}

/** What is wrong with one new pod, if something clearly is. */
export function podProblem(
  pod: V1Pod,
  o: Pick<Observation, 'now' | 'unreadySeen' | 'unreadyGraceMs'>,
): string | undefined {
  if (pod.metadata?.deletionTimestamp) return undefined;
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const cs of statuses) {
    const w = cs.state?.waiting;
    if (w?.reason && FATAL_WAITING_REASONS.has(w.reason)) {
      return `container ${cs.name} is ${w.reason} (restarts: ${cs.restartCount ?? 0})${w.message ? `: ${w.message}` : ''}`;
    }
  }
  const name = pod.metadata?.name ?? '';
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (pod.status?.phase === 'Pending' && scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    // No node will take it (cordoned, full, tainted): as clear a failure as never-ready, after the same grace.
    const seen = o.unreadySeen.get(name) ?? o.now;
    o.unreadySeen.set(name, seen);
    const since = Math.min(seen, ms(scheduled.lastTransitionTime) ?? seen);
    if (o.now - since < o.unreadyGraceMs) return undefined;
    return `Pending, unschedulable for ${Math.round((o.now - since) / 1000)}s: ${scheduled.message ?? 'no node fits'}`;
  }
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
  if (pod.status?.phase !== 'Running' || ready?.status === 'True') {
    o.unreadySeen.delete(name);
    return undefined;
  }
  const seen = o.unreadySeen.get(name) ?? o.now;
  o.unreadySeen.set(name, seen);
  // Trust the pod's own clock when it says it has been unready longer (a retried activity starts afresh).
  const since = Math.min(seen, ms(ready?.lastTransitionTime) ?? seen, ms(pod.status?.startTime) ?? seen);
  const forMs = o.now - since;
  if (forMs < o.unreadyGraceMs) return undefined;
  const restarts = statuses.reduce((a, cs) => a + (cs.restartCount ?? 0), 0);
  const notReady = statuses.filter((cs) => !cs.ready).map((cs) => cs.name);
  return `Running but not Ready for ${Math.round(forMs / 1000)}s (grace ${Math.round(o.unreadyGraceMs / 1000)}s; not ready: ${notReady.join(', ') || 'unknown'}; restarts: ${restarts})${ready?.message ? `: ${ready.message}` : ''}`;
}

/** Judges one observation of a rollout. */
export function assessRollout(o: Observation): Verdict {
  const d = o.deployment;
  const progress = progressOf(d, o.generation);
  if (progress.observedGeneration < o.generation) return { kind: 'waiting', progress };
  const deadline = d.status?.conditions?.find(
    (c) => c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded',
  );
  const pods = o.newPods.flatMap((p) => {
    const problem = podProblem(p, o);
    return problem ? [{ pod: p.metadata?.name ?? '?', problem }] : [];
  });
  const complete =
    progress.updatedReplicas === progress.replicas &&
    progress.oldReplicas === 0 &&
    progress.availableReplicas >= progress.replicas &&
    progress.readyReplicas >= progress.replicas;
  if (complete) return { kind: 'done', progress };
  if (deadline) {
    return {
      kind: 'failed',
      progress,
      reason: `progress deadline exceeded: ${deadline.message ?? ''}`.trim(),
      pods,
    };
  }
  if (pods.length > 0) return { kind: 'failed', progress, reason: 'new pods are failing', pods };
  return { kind: 'waiting', progress };
}

/** The new ReplicaSet (the Deployment's current revision) and its pods. */
async function newPods(c: ClusterClients, d: V1Deployment): Promise<V1Pod[]> {
  const namespace = d.metadata!.namespace!;
  const ref = describeRef(namespace, d.metadata!.name!);
  const revision = revisionOf(d);
  if (revision === undefined) return [];
  const sets = await kube(c.cluster, `list ReplicaSets of ${ref}`, () =>
    c.apps.listNamespacedReplicaSet({ namespace, labelSelector: labelSelector(d.spec?.selector) }),
  );
  const current = sets.items.find((rs: V1ReplicaSet) => ownedBy(rs, d) && revisionOf(rs) === revision);
  const hash = current?.metadata?.labels?.[LABEL_POD_TEMPLATE_HASH];
  if (!hash) return [];
  const pods = await kube(c.cluster, `list pods of ${ref}`, () =>
    c.core.listNamespacedPod({
      namespace,
      labelSelector: labelSelector(d.spec?.selector, { [LABEL_POD_TEMPLATE_HASH]: hash }),
    }),
  );
  return pods.items;
}

/** The latest few events of each pod, oldest first, one line each. */
export async function podEvents(
  c: ClusterClients,
  namespace: string,
  pods: string[],
  perPod = 5,
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const pod of pods) {
    try {
      const list = await kube(c.cluster, `list events of pod ${namespace}/${pod}`, () =>
        c.core.listNamespacedEvent({
          namespace,
          fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod}`,
        }),
      );
      const at = (e: CoreV1Event) => ms(e.lastTimestamp) ?? ms(e.eventTime) ?? ms(e.firstTimestamp) ?? 0;
      out[pod] = [...list.items]
        .sort((a, b) => at(a) - at(b))
        .slice(-perPod)
        .map((e) =>
          `${e.type ?? ''} ${e.reason ?? ''}${(e.count ?? 1) > 1 ? ` (x${e.count})` : ''}: ${e.message ?? ''}`.trim(),
        );
    } catch {
      out[pod] = ['(events could not be read)'];
    }
  }
  return out;
}

function resultOf(d: V1Deployment): RolloutResult {
  const p = progressOf(d, d.metadata?.generation ?? 0);
  return {
    revision: revisionOf(d) ?? 0,
    image: imageOf(d) ?? '',
    replicas: p.replicas,
    updatedReplicas: p.updatedReplicas,
    readyReplicas: p.readyReplicas,
    availableReplicas: p.availableReplicas,
  };
}

/** What the activity needs of its Temporal context (Context.current() in production). */
export interface RolloutContext {
  heartbeat(details: unknown): void;
  /** Resolves after ms; rejects with CancelledFailure when the activity is cancelled. */
  sleep(ms: number): Promise<void>;
}

export interface RolloutTiming {
  pollMs: number;
  /** At most this many pods are described (with their events) in a failure. */
  maxPodsInMessage: number;
}

const defaultTiming: RolloutTiming = { pollMs: 1000, maxPodsInMessage: 3 };

export async function waitForRollout(
  c: ClusterClients,
  input: WaitForRolloutInput,
  ctx: RolloutContext,
  log: Logger,
  timing: RolloutTiming = defaultTiming,
): Promise<RolloutResult> {
  const { namespace, name } = input;
  const ref = describeRef(namespace, name);
  const started = Date.now();
  const unreadySeen = new Map<string, number>();
  for (;;) {
    const d = await readDeployment(c, namespace, name);
    if (!d) {
      throw ApplicationFailure.create({
        type: FailureType.NotFound,
        nonRetryable: true,
        message: `cluster "${c.cluster}": Deployment ${ref} does not exist (deleted while waiting for its rollout?)`,
      });
    }
    const first = assessRollout({
      deployment: d,
      generation: input.generation,
      newPods: [],
      now: Date.now(),
      unreadySeen,
      unreadyGraceMs: input.unreadyGraceMs,
    });
    // Look at the pods only while the rollout is under way and the controller has seen our generation.
    const verdict =
      first.kind === 'waiting' && first.progress.observedGeneration >= input.generation
        ? assessRollout({
            deployment: d,
            generation: input.generation,
            newPods: await newPods(c, d),
            now: Date.now(),
            unreadySeen,
            unreadyGraceMs: input.unreadyGraceMs,
          })
        : first;
    // The API shows this progress in the delivery's status while the step runs (api/deliveries.ts).
    ctx.heartbeat({ cluster: c.cluster, ...verdict.progress, elapsedMs: Date.now() - started });
    if (verdict.kind === 'done') {
      const r = resultOf(d);
      log.info({ namespace, name, ...r, elapsedMs: Date.now() - started }, 'rollout complete');
      return r;
    }
    if (verdict.kind === 'failed') {
      const shown = verdict.pods.slice(0, timing.maxPodsInMessage);
      const events = await podEvents(
        c,
        namespace,
        shown.map((p) => p.pod),
      );
      const podText = shown
        .map(
          (p) =>
            `pod ${p.pod}: ${p.problem}${events[p.pod]?.length ? `; events: ${events[p.pod]!.join(' | ')}` : '; no events'}`,
        )
        .join('; ');
      const more =
        verdict.pods.length > shown.length ? ` (and ${verdict.pods.length - shown.length} more pods)` : '';
      const message = `cluster "${c.cluster}": rollout of ${ref} failed: ${verdict.reason} (${verdict.progress.message})${podText ? `; ${podText}` : ''}${more}`;
      log.warn({ namespace, name, pods: verdict.pods }, 'rollout failed');
      throw ApplicationFailure.create({
        type: FailureType.RolloutFailed,
        nonRetryable: true,
        message,
        details: [
          { cluster: c.cluster, reason: verdict.reason, pods: shown, events, progress: verdict.progress },
        ],
      });
    }
    const elapsed = Date.now() - started;
    if (elapsed >= input.timeoutMs) {
      throw ApplicationFailure.create({
        type: FailureType.RolloutTimeout,
        nonRetryable: true,
        message: `cluster "${c.cluster}": rollout of ${ref} not complete after ${Math.round(elapsed / 1000)}s: ${verdict.progress.message}`,
        details: [{ cluster: c.cluster, progress: verdict.progress }],
      });
    }
    await ctx.sleep(Math.min(timing.pollMs, input.timeoutMs - elapsed));
  }
}

export async function readAppState(c: ClusterClients, ref: AppRef): Promise<AppClusterState> {
  const d = await readDeployment(c, ref.namespace, ref.name);
  if (!d) return { exists: false };
  const revision = revisionOf(d);
  const image = imageOf(d);
  return {
    exists: true,
    ...(revision !== undefined ? { revision } : {}),
    ...(image ? { image } : {}),
    ...(d.metadata?.generation !== undefined ? { generation: d.metadata.generation } : {}),
    replicas: d.spec?.replicas ?? 1,
    readyReplicas: d.status?.readyReplicas ?? 0,
    updatedReplicas: d.status?.updatedReplicas ?? 0,
  };
}
