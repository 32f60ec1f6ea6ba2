/**
 * Rollout status, judged one observation at a time (pure, unit tested): done,
 * still going, or clearly failed: a progress deadline, a crash loop, or pod
 * trouble (unschedulable, image pull, never ready) that outlasted the
 * delivery's grace for it. The waiting itself is in wait.ts.
 */
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';

/** Container waiting reasons that never fix themselves without a new release: fatal at once. */
export const FATAL_WAITING_REASONS = new Set(['CrashLoopBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'CreateContainerConfigError']);
/** Image-pull errors: a registry may catch up (replication, a restart), so they are fatal only after the grace. */
export const PULL_WAITING_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff']);

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

/** How long each kind of pod trouble may last before the rollout counts as failed (ms). */
export interface Graces {
  unschedulableMs: number;
  imagePullMs: number;
  unreadyMs: number;
}

export interface Observation {
  deployment: V1Deployment;
  /** The wanted generation (from the apply). */
  generation: number;
  /** Pods of the new ReplicaSet (empty when not looked up yet). */
  newPods: V1Pod[];
  now: number;
  /** When this wait first saw each pod's trouble (ms), by "pod/kind"; updated in place. */
  firstSeen: Map<string, number>;
  graces: Graces;
  /**
   * No grace clock starts before this (ms): the start of this step as the workflow
   * saw it. A retry asked for by an SRE gets a fresh grace; a retry of the same
   * attempt after a worker crash keeps the clock the pods have been running.
   */
  notBefore?: number;
}

function ms(t: Date | string | undefined): number | undefined {
  if (t === undefined || t === null) return undefined;
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

type Clock = Pick<Observation, 'now' | 'firstSeen' | 'graces' | 'notBefore'>;

/** How long a trouble of `kind` has lasted: since the pod says, or since first seen, never before notBefore. */
function lasted(o: Clock, pod: string, kind: string, podSince: number | undefined): number {
  const key = `${pod}/${kind}`;
  const seen = o.firstSeen.get(key) ?? o.now;
  o.firstSeen.set(key, seen);
  const since = Math.max(o.notBefore ?? -Infinity, Math.min(seen, podSince ?? seen));
  return o.now - since;
}

const secs = (x: number) => `${Math.round(x / 1000)}s`;

/** What is wrong with one new pod, if something clearly is (a trouble that outlasted its grace). */
export function podProblem(pod: V1Pod, o: Clock): string | undefined {
  if (pod.metadata?.deletionTimestamp) return undefined;
  const name = pod.metadata?.name ?? '';
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const cs of statuses) {
    const w = cs.state?.waiting;
    if (!w?.reason) continue;
    if (FATAL_WAITING_REASONS.has(w.reason)) {
      return `container ${cs.name} is ${w.reason} (restarts: ${cs.restartCount ?? 0})${w.message ? `: ${w.message}` : ''}`;
    }
    if (PULL_WAITING_REASONS.has(w.reason)) {
      const forMs = lasted(o, name, 'pull', ms(pod.metadata?.creationTimestamp));
      if (forMs < o.graces.imagePullMs) return undefined;
      return `container ${cs.name} cannot pull its image for ${secs(forMs)} (grace ${secs(o.graces.imagePullMs)}): ${w.reason}${w.message ? `: ${w.message}` : ''}`;
    }
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (pod.status?.phase === 'Pending' && scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    // No node will take it (cordoned, full, tainted); a cluster autoscaler may still add one.
    const forMs = lasted(o, name, 'unschedulable', ms(scheduled.lastTransitionTime));
    if (forMs < o.graces.unschedulableMs) return undefined;
    return `Pending, unschedulable for ${secs(forMs)} (grace ${secs(o.graces.unschedulableMs)}): ${scheduled.message ?? 'no node fits'}`;
  }
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
  if (pod.status?.phase !== 'Running' || ready?.status === 'True') {
    o.firstSeen.delete(`${name}/unready`);
    return undefined;
  }
  const podSince = Math.min(ms(ready?.lastTransitionTime) ?? Infinity, ms(pod.status?.startTime) ?? Infinity);
  const forMs = lasted(o, name, 'unready', Number.isFinite(podSince) ? podSince : undefined);
  if (forMs < o.graces.unreadyMs) return undefined;
  const restarts = statuses.reduce((a, cs) => a + (cs.restartCount ?? 0), 0);
  const notReady = statuses.filter((cs) => !cs.ready).map((cs) => cs.name);
  return `Running but not Ready for ${secs(forMs)} (grace ${secs(o.graces.unreadyMs)}; not ready: ${notReady.join(', ') || 'unknown'}; restarts: ${restarts})${ready?.message ? `: ${ready.message}` : ''}`;
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

/** Any object a rollout waits for, as read (exact JSON). */
interface Obj {
  metadata?: { generation?: number; uid?: string; name?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const num = (v: unknown, d = 0): number => (typeof v === 'number' ? v : d);
const conditionOf = (o: Obj, type: string) =>
  ((o.status?.conditions as { type: string; status: string; reason?: string; message?: string }[] | undefined) ?? []).find((c) => c.type === type);

/** Pod-level trouble (crash loops, image pulls past the grace, ...) of the pods of the current revision. */
function podTrouble(pods: V1Pod[], o: Clock): PodProblem[] {
  return pods.flatMap((p) => {
    const problem = podProblem(p, o);
    return problem ? [{ pod: p.metadata?.name ?? '?', problem }] : [];
  });
}

const verdict = (done: boolean, progress: RolloutProgress, pods: PodProblem[], reason = 'new pods are failing'): Verdict =>
  done ? { kind: 'done', progress } : pods.length ? { kind: 'failed', progress, reason, pods } : { kind: 'waiting', progress };

/**
 * A StatefulSet is rolled out when the controller has seen its generation,
 * every replica is ready, and the pods above the partition run the update
 * revision (all of them, without a partition: currentRevision == updateRevision).
 */
export function assessStatefulSet(s: Obj, pods: V1Pod[], o: Clock): Verdict {
  const generation = num(s.metadata?.generation);
  const replicas = num(s.spec?.replicas, 1);
  const st = s.status ?? {};
  const strategy = s.spec?.updateStrategy as { type?: string; rollingUpdate?: { partition?: number } } | undefined;
  const partition = strategy?.type === 'OnDelete' ? replicas : num(strategy?.rollingUpdate?.partition);
  const p: RolloutProgress = {
    observedGeneration: num(st.observedGeneration),
    generation,
    replicas,
    updatedReplicas: num(st.updatedReplicas),
    readyReplicas: num(st.readyReplicas),
    availableReplicas: num(st.availableReplicas),
    oldReplicas: Math.max(0, num(st.replicas) - num(st.updatedReplicas)),
    message: '',
  };
  const wantUpdated = Math.max(0, replicas - partition);
  p.message = p.observedGeneration < generation ? `waiting for the controller to see generation ${generation}` : `${p.updatedReplicas}/${wantUpdated} updated (partition ${partition}), ${p.readyReplicas}/${replicas} ready`;
  const current = pods.filter((pod) => pod.metadata?.labels?.['controller-revision-hash'] === st.updateRevision);
  const done = p.observedGeneration >= generation && p.readyReplicas >= replicas && p.updatedReplicas >= wantUpdated && (partition > 0 || st.currentRevision === st.updateRevision);
  return verdict(done, p, podTrouble(current, o));
}

/** A DaemonSet is rolled out when every node that should run it runs the updated pod, ready and available. */
export function assessDaemonSet(d: Obj, pods: V1Pod[], o: Clock): Verdict {
  const generation = num(d.metadata?.generation);
  const st = d.status ?? {};
  const desired = num(st.desiredNumberScheduled);
  const p: RolloutProgress = {
    observedGeneration: num(st.observedGeneration),
    generation,
    replicas: desired,
    updatedReplicas: num(st.updatedNumberScheduled),
    readyReplicas: num(st.numberReady),
    availableReplicas: num(st.numberAvailable),
    oldReplicas: Math.max(0, num(st.currentNumberScheduled) - num(st.updatedNumberScheduled)),
    message: '',
  };
  p.message = p.observedGeneration < generation ? `waiting for the controller to see generation ${generation}` : `${p.updatedReplicas}/${desired} nodes updated, ${p.readyReplicas} ready`;
  const current = pods.filter((pod) => pod.metadata?.labels?.['pod-template-generation'] === String(generation));
  const done = p.observedGeneration >= generation && p.updatedReplicas >= desired && p.readyReplicas >= desired && p.availableReplicas >= desired;
  return verdict(done, p, podTrouble(current, o));
}

/** A Job is done when it completed (its completions succeeded); it failed when the controller says Failed. */
export function assessJob(j: Obj, pods: V1Pod[], o: Clock): Verdict {
  const st = j.status ?? {};
  const completions = num(j.spec?.completions, 1);
  const succeeded = num(st.succeeded);
  const p: RolloutProgress = { observedGeneration: 0, generation: 0, replicas: completions, updatedReplicas: succeeded, readyReplicas: num(st.ready), availableReplicas: succeeded, oldReplicas: 0, message: `${succeeded}/${completions} completions, ${num(st.active)} active, ${num(st.failed)} failed` };
  const failed = conditionOf(j, 'Failed');
  if (failed?.status === 'True') return { kind: 'failed', progress: p, reason: `the job failed: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim(), pods: [] };
  const done = conditionOf(j, 'Complete')?.status === 'True' || succeeded >= completions;
  return verdict(done, p, podTrouble(pods, o));
}

/** A ReplicaSet is rolled out when every replica of its generation is ready. */
export function assessReplicaSet(r: Obj, pods: V1Pod[], o: Clock): Verdict {
  const generation = num(r.metadata?.generation);
  const replicas = num(r.spec?.replicas, 1);
  const st = r.status ?? {};
  const p: RolloutProgress = { observedGeneration: num(st.observedGeneration), generation, replicas, updatedReplicas: num(st.replicas), readyReplicas: num(st.readyReplicas), availableReplicas: num(st.availableReplicas), oldReplicas: 0, message: '' };
  p.message = `${p.readyReplicas}/${replicas} ready`;
  return verdict(p.observedGeneration >= generation && p.readyReplicas >= replicas && p.availableReplicas >= replicas, p, podTrouble(pods, o));
}

/**
 * Any other object: when it carries a Ready condition (most custom resources
 * do), rolled out once that is True; with none, it counts once applied.
 */
export function assessReadyCondition(x: Obj): Verdict {
  const ready = conditionOf(x, 'Ready');
  const p: RolloutProgress = { observedGeneration: 0, generation: 0, replicas: 0, updatedReplicas: 0, readyReplicas: 0, availableReplicas: 0, oldReplicas: 0, message: ready ? `Ready ${ready.status}${ready.reason ? ` (${ready.reason})` : ''}${ready.message ? `: ${ready.message}` : ''}` : 'no Ready condition: counts once applied' };
  return ready && ready.status !== 'True' ? { kind: 'waiting', progress: p } : { kind: 'done', progress: p };
}
