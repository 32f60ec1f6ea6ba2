/**
 * Waiting for workloads to be ready, by watches: the Deployment, its
 * ReplicaSets and its pods are watched, every change is judged at once
 * (rollout.ts), and a one-second tick heartbeats the progress and lets the
 * graces run out. A cancelled activity stops its watches and returns.
 */
import type { CoreV1Event, V1Deployment, V1LabelSelector, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { ANNOTATION_DELIVERY, describeObject, type ObjectRef, type KubeObject } from '../../model/objects.ts';
import { FailureType } from '../../model/reasons.ts';
import type { WorkloadState } from '../types.ts';
import type { ClusterClients } from './clients.ts';
import { appContainer, labelSelector, LABEL_POD_TEMPLATE_HASH, ownedBy, revisionOf } from './deployment.ts';
import { kube } from './errors.ts';
import { objectPath, readObject } from './objects.ts';
import {
  assessDaemonSet,
  assessJob,
  assessReadyCondition,
  assessReplicaSet,
  assessRollout,
  assessStatefulSet,
  progressOf,
  type Graces,
  type RolloutProgress,
  type Verdict,
} from './rollout.ts';
import { Reflector } from './watch.ts';

export interface WaitContext {
  heartbeat(details: unknown): void;
  /** Aborted when the activity is cancelled. */
  signal: AbortSignal;
}

export interface WaitOptions {
  generation: number;
  timeoutMs: number;
  graces: Graces;
  /** No grace clock starts before this (ms since the epoch). */
  notBefore?: number;
  /** How often progress is heartbeated and graces re-judged. */
  tickMs?: number;
  /** An API server silent for this long (no event, no answer) counts as unreachable. */
  silenceMs?: number;
  /** At most this many pods are described (with their events) in a failure. */
  maxPodsInMessage?: number;
}

/** The latest few events of each pod, oldest first, one line each. */
export async function podEvents(c: ClusterClients, namespace: string, pods: string[], perPod = 5): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  const ms = (t: Date | string | undefined) => (t ? new Date(t).getTime() : 0);
  for (const pod of pods) {
    try {
      const list = await kube(c.cluster, `list events of pod ${namespace}/${pod}`, () =>
        c.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod}` }),
      );
      const at = (e: CoreV1Event) => ms(e.lastTimestamp) || ms(e.eventTime) || ms(e.firstTimestamp);
      out[pod] = [...list.items]
        .sort((a, b) => at(a) - at(b))
        .slice(-perPod)
        .map((e) => `${e.type ?? ''} ${e.reason ?? ''}${(e.count ?? 1) > 1 ? ` (x${e.count})` : ''}: ${e.message ?? ''}`.trim());
    } catch {
      out[pod] = ['(events could not be read)'];
    }
  }
  return out;
}

/** What a workload runs, from its object (Deployments by their app container; others by their first). */
export function workloadState(ref: ObjectRef, o: KubeObject | undefined): WorkloadState {
  if (!o) return { ref, exists: false };
  if (ref.kind === 'Deployment') return deploymentState(ref, o as unknown as V1Deployment);
  const spec = (o.spec ?? {}) as Record<string, unknown>;
  const st = (o.status ?? {}) as Record<string, number | undefined>;
  const template = (ref.kind === 'CronJob' ? (spec.jobTemplate as { spec?: { template?: unknown } } | undefined)?.spec?.template : spec.template) as { spec?: { containers?: { image?: string }[] } } | undefined;
  const image = template?.spec?.containers?.[0]?.image;
  const deliveryId = o.metadata.annotations?.[ANNOTATION_DELIVERY];
  const generation = o.metadata.generation as number | undefined;
  const replicas = ref.kind === 'DaemonSet' ? st.desiredNumberScheduled : ref.kind === 'Job' ? ((spec.completions as number | undefined) ?? 1) : (spec.replicas as number | undefined);
  const ready = ref.kind === 'DaemonSet' ? st.numberReady : ref.kind === 'Job' ? st.succeeded : st.readyReplicas;
  return {
    ref,
    exists: true,
    ...(image ? { image } : {}),
    ...(replicas !== undefined ? { replicas } : {}),
    ...(ready !== undefined ? { readyReplicas: ready } : {}),
    ...(generation !== undefined ? { generation } : {}),
    ...(deliveryId ? { deliveryId } : {}),
  };
}

/** What a Deployment runs, from its object. */
export function deploymentState(ref: ObjectRef, d: V1Deployment | undefined): WorkloadState {
  if (!d) return { ref, exists: false };
  const p = progressOf(d, d.metadata?.generation ?? 0);
  const image = appContainer(d.spec?.template, d.metadata?.name ?? '')?.image;
  const revision = revisionOf(d);
  const deliveryId = d.metadata?.annotations?.[ANNOTATION_DELIVERY];
  return {
    ref,
    exists: true,
    ...(image ? { image } : {}),
    replicas: p.replicas,
    readyReplicas: p.readyReplicas,
    updatedReplicas: p.updatedReplicas,
    availableReplicas: p.availableReplicas,
    ...(revision !== undefined ? { revision } : {}),
    ...(d.metadata?.generation !== undefined ? { generation: d.metadata.generation } : {}),
    ...(deliveryId ? { deliveryId } : {}),
  };
}

/** Reads each workload as it stands (a Deployment with the pod-template-hash of its current ReplicaSet). */
export async function readWorkloads(c: ClusterClients, refs: ObjectRef[]): Promise<WorkloadState[]> {
  const out: WorkloadState[] = [];
  for (const ref of refs) {
    const o = await readObject(c, ref);
    const state = workloadState(ref, o);
    if (o && ref.kind === 'Deployment' && state.revision !== undefined) {
      const hash = await templateHashOf(c, o as unknown as V1Deployment, state.revision);
      if (hash) state.podTemplateHash = hash;
    }
    out.push(state);
  }
  return out;
}

/** The pod-template-hash of the Deployment's ReplicaSet at `revision` (what a Service can pin its current pods by). */
async function templateHashOf(c: ClusterClients, d: V1Deployment, revision: number): Promise<string | undefined> {
  const match = d.spec?.selector?.matchLabels ?? {};
  const labelSelector = Object.entries(match).map(([k, v]) => `${k}=${v}`).join(',');
  const list = await c.rest<{ items: KubeObject[] }>('GET', `/apis/apps/v1/namespaces/${encodeURIComponent(d.metadata?.namespace ?? 'default')}/replicasets`, { query: { labelSelector } });
  const rs = list.items.find(
    (r) => r.metadata.annotations?.['deployment.kubernetes.io/revision'] === String(revision) && (r.metadata as { ownerReferences?: { uid?: string }[] }).ownerReferences?.some((o) => o.uid === d.metadata?.uid),
  );
  return rs?.metadata.labels?.['pod-template-hash'];
}

/** Kinds whose pods the waiter watches, to see pod trouble as it happens. */
const POD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet']);

/**
 * Waits until one object has rolled out: watched (the object, its pods, a
 * Deployment's ReplicaSets), judged at every change by its kind's rule
 * (rollout.ts), with a one-second tick for the graces and the heartbeat.
 */
export async function waitWorkload(c: ClusterClients, ref: ObjectRef, opts: WaitOptions, ctx: WaitContext, log: Logger): Promise<WorkloadState> {
  const namespace = ref.namespace ?? 'default';
  const what = describeObject(ref);
  const started = Date.now();
  const first = await readObject(c, ref);
  if (!first) {
    throw ApplicationFailure.create({
      type: FailureType.NotFound,
      nonRetryable: true,
      message: `cluster "${c.cluster}": ${what} does not exist (deleted while waiting for its rollout?)`,
    });
  }
  const selector = POD_KINDS.has(ref.kind) ? labelSelector((first.spec as { selector?: V1LabelSelector } | undefined)?.selector) : '';
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const firstSeen = new Map<string, number>();
  let settle!: { resolve: (s: WorkloadState) => void; reject: (e: unknown) => void };
  const outcome = new Promise<WorkloadState>((resolve, reject) => (settle = { resolve, reject }));
  let done = false;
  let failing = false;
  let lastProgress: RolloutProgress | undefined;

  const finish = (err: unknown, value?: WorkloadState) => {
    if (done) return;
    done = true;
    stop.abort();
    if (err) settle.reject(err);
    else settle.resolve(value!);
  };

  const judge = () => {
    if (done || failing) return;
    const o = objects.items.get(ref.name);
    if (!o) {
      if (objects.lastContact === 0) return;
      finish(ApplicationFailure.create({ type: FailureType.NotFound, nonRetryable: true, message: `cluster "${c.cluster}": ${what} was deleted while waiting for its rollout` }));
      return;
    }
    const clock = { now: Date.now(), firstSeen, graces: opts.graces, ...(opts.notBefore !== undefined ? { notBefore: opts.notBefore } : {}) };
    const allPods = pods ? ([...pods.items.values()] as unknown as V1Pod[]) : [];
    let verdict: Verdict;
    switch (ref.kind) {
      case 'Deployment': {
        const d = o as unknown as V1Deployment;
        const revision = revisionOf(d);
        const current = sets ? ([...sets.items.values()] as unknown as V1ReplicaSet[]).find((rs) => ownedBy(rs, d) && revisionOf(rs) === revision) : undefined;
        const hash = current?.metadata?.labels?.[LABEL_POD_TEMPLATE_HASH];
        const newPods = hash ? allPods.filter((p) => p.metadata?.labels?.[LABEL_POD_TEMPLATE_HASH] === hash) : [];
        verdict = assessRollout({ deployment: d, generation: opts.generation, newPods, ...clock });
        break;
      }
      case 'StatefulSet':
        verdict = assessStatefulSet(o, allPods, clock);
        break;
      case 'DaemonSet':
        verdict = assessDaemonSet(o, allPods, clock);
        break;
      case 'Job':
        verdict = assessJob(o, allPods.filter((p) => (p.metadata?.labels?.['batch.kubernetes.io/controller-uid'] ?? p.metadata?.labels?.['controller-uid']) === o.metadata.uid), clock);
        break;
      case 'ReplicaSet':
        verdict = assessReplicaSet(o, allPods, clock);
        break;
      default:
        verdict = assessReadyCondition(o);
    }
    lastProgress = verdict.progress;
    if (verdict.kind === 'done') {
      log.info({ ref: what, ...verdict.progress, elapsedMs: Date.now() - started }, 'rollout complete');
      finish(undefined, workloadState(ref, o));
    } else if (verdict.kind === 'failed') {
      failing = true;
      void (async () => {
        const shown = verdict.pods.slice(0, opts.maxPodsInMessage ?? 3);
        const events = await podEvents(c, namespace, shown.map((p) => p.pod));
        const podText = shown.map((p) => `pod ${p.pod}: ${p.problem}${events[p.pod]?.length ? `; events: ${events[p.pod]!.join(' | ')}` : '; no events'}`).join('; ');
        const more = verdict.pods.length > shown.length ? ` (and ${verdict.pods.length - shown.length} more pods)` : '';
        log.warn({ ref: what, pods: verdict.pods }, 'rollout failed');
        finish(
          ApplicationFailure.create({
            type: FailureType.RolloutFailed,
            nonRetryable: true,
            message: `cluster "${c.cluster}": rollout of ${what} failed: ${verdict.reason} (${verdict.progress.message})${podText ? `; ${podText}` : ''}${more}`,
            details: [{ cluster: c.cluster, reason: verdict.reason, pods: shown, events, progress: verdict.progress }],
          }),
        );
      })();
    }
  };

  const base = await objectPath(c, { ...ref, name: '' }, true);
  const objects = new Reflector<KubeObject>(c, base, { fieldSelector: `metadata.name=${ref.name}` }, judge, stop.signal);
  const sets = ref.kind === 'Deployment' ? new Reflector<KubeObject>(c, `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/replicasets`, { labelSelector: selector }, judge, stop.signal) : undefined;
  const pods = POD_KINDS.has(ref.kind) && selector ? new Reflector<KubeObject>(c, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, { labelSelector: selector }, judge, stop.signal) : undefined;
  const reflectors = [objects, ...(sets ? [sets] : []), ...(pods ? [pods] : [])];

  const silenceMs = opts.silenceMs ?? 15_000;
  const tick = setInterval(() => {
    if (done) return;
    const now = Date.now();
    judge(); // graces run out with time, not only with events
    ctx.heartbeat({ cluster: c.cluster, ref: what, ...(lastProgress ?? {}), elapsedMs: now - started, startedAt: started });
    const contact = Math.min(...reflectors.map((r) => r.lastContact));
    if (contact > 0 && now - Math.max(contact, started) > silenceMs) {
      // No event and no answer for a while: the watches may hang on a dead connection. One read tells.
      void readObject(c, ref).then(
        () => {
          for (const r of reflectors) r.lastContact = Date.now();
        },
        (err) => finish(err),
      );
    }
    if (now - started >= opts.timeoutMs && !failing) {
      finish(
        ApplicationFailure.create({
          type: FailureType.RolloutTimeout,
          nonRetryable: true,
          message: `cluster "${c.cluster}": rollout of ${what} not complete after ${Math.round((now - started) / 1000)}s: ${lastProgress?.message ?? 'no progress seen'}`,
          details: [{ cluster: c.cluster, progress: lastProgress }],
        }),
      );
    }
  }, opts.tickMs ?? 1000);
  stop.signal.addEventListener('abort', () => {
    if (!done) finish(ctx.signal.reason ?? new Error('cancelled'));
  });

  try {
    await Promise.all(reflectors.map((r) => r.start()));
    judge();
    return await outcome;
  } catch (err) {
    finish(err);
    throw err;
  } finally {
    clearInterval(tick);
    stop.abort();
    ctx.signal.removeEventListener('abort', onAbort);
  }
}

/** Waits for every workload (in parallel), each by its kind's rule. */
export async function waitReady(
  c: ClusterClients,
  workloads: { ref: ObjectRef; generation: number }[],
  opts: Omit<WaitOptions, 'generation'>,
  ctx: WaitContext,
  log: Logger,
): Promise<WorkloadState[]> {
  return Promise.all(workloads.map((w) => waitWorkload(c, w.ref, { ...opts, generation: w.generation }, ctx, log)));
}
