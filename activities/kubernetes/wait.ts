/**
 * Waiting for workloads to be ready, by watches: the Deployment, its
 * ReplicaSets and its pods are watched, every change is judged at once
 * (rollout.ts), and a one-second tick heartbeats the progress and lets the
 * graces run out. A cancelled activity stops its watches and returns.
 */
import type { CoreV1Event, V1Deployment, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { ANNOTATION_DELIVERY, describeObject, type ObjectRef, type KubeObject } from '../../model/objects.ts';
import { FailureType } from '../../model/reasons.ts';
import type { WorkloadState } from '../types.ts';
import type { ClusterClients } from './clients.ts';
import { appContainer, labelSelector, LABEL_POD_TEMPLATE_HASH, ownedBy, revisionOf } from './deployment.ts';
import { kube } from './errors.ts';
import { objectPath, readObject } from './objects.ts';
import { assessRollout, progressOf, type Graces, type RolloutProgress } from './rollout.ts';
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

/** Reads each workload as it stands (kinds without a notion of replicas report only whether they exist). */
export async function readWorkloads(c: ClusterClients, refs: ObjectRef[]): Promise<WorkloadState[]> {
  const out: WorkloadState[] = [];
  for (const ref of refs) {
    const o = await readObject(c, ref);
    if (ref.kind === 'Deployment') out.push(deploymentState(ref, o as unknown as V1Deployment | undefined));
    else out.push({ ref, exists: Boolean(o) });
  }
  return out;
}

/** Waits until one Deployment has rolled out `generation` with every replica ready. */
export async function waitDeployment(c: ClusterClients, ref: ObjectRef, opts: WaitOptions, ctx: WaitContext, log: Logger): Promise<WorkloadState> {
  const namespace = ref.namespace ?? 'default';
  const what = describeObject(ref);
  const started = Date.now();
  const first = (await readObject(c, ref)) as unknown as V1Deployment | undefined;
  if (!first) {
    throw ApplicationFailure.create({
      type: FailureType.NotFound,
      nonRetryable: true,
      message: `cluster "${c.cluster}": ${what} does not exist (deleted while waiting for its rollout?)`,
    });
  }
  const selector = labelSelector(first.spec?.selector);
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
    const d = deployments.items.get(ref.name) as V1Deployment | undefined;
    if (!d) {
      if (deployments.lastContact === 0) return;
      finish(ApplicationFailure.create({ type: FailureType.NotFound, nonRetryable: true, message: `cluster "${c.cluster}": ${what} was deleted while waiting for its rollout` }));
      return;
    }
    const revision = revisionOf(d);
    const current = [...sets.items.values()].find((rs) => ownedBy(rs as V1ReplicaSet, d) && revisionOf(rs as V1ReplicaSet) === revision) as V1ReplicaSet | undefined;
    const hash = current?.metadata?.labels?.[LABEL_POD_TEMPLATE_HASH];
    const newPods = hash ? ([...pods.items.values()] as V1Pod[]).filter((p) => p.metadata?.labels?.[LABEL_POD_TEMPLATE_HASH] === hash) : [];
    const verdict = assessRollout({ deployment: d, generation: opts.generation, newPods, now: Date.now(), firstSeen, graces: opts.graces, ...(opts.notBefore !== undefined ? { notBefore: opts.notBefore } : {}) });
    lastProgress = verdict.progress;
    if (verdict.kind === 'done') {
      const state = deploymentState(ref, d);
      log.info({ ref: what, ...verdict.progress, elapsedMs: Date.now() - started }, 'rollout complete');
      finish(undefined, state);
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
  const deployments = new Reflector<KubeObject>(c, base, { fieldSelector: `metadata.name=${ref.name}` }, judge, stop.signal);
  const setsPath = `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/replicasets`;
  const sets = new Reflector<KubeObject>(c, setsPath, { labelSelector: selector }, judge, stop.signal);
  const podsPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
  const pods = new Reflector<KubeObject>(c, podsPath, { labelSelector: selector }, judge, stop.signal);

  const silenceMs = opts.silenceMs ?? 15_000;
  const tick = setInterval(() => {
    if (done) return;
    const now = Date.now();
    judge(); // graces run out with time, not only with events
    ctx.heartbeat({ cluster: c.cluster, ref: what, ...(lastProgress ?? {}), elapsedMs: now - started, startedAt: started });
    const contact = Math.min(deployments.lastContact, sets.lastContact, pods.lastContact);
    if (contact > 0 && now - Math.max(contact, started) > silenceMs) {
      // No event and no answer for a while: the watches may hang on a dead connection. One read tells.
      void readObject(c, ref).then(
        () => {
          for (const r of [deployments, sets, pods]) r.lastContact = Date.now();
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
    await Promise.all([deployments.start(), sets.start(), pods.start()]);
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

/** Waits for every workload (in parallel); kinds without a notion of readiness count once they exist. */
export async function waitReady(
  c: ClusterClients,
  workloads: { ref: ObjectRef; generation: number }[],
  opts: Omit<WaitOptions, 'generation'>,
  ctx: WaitContext,
  log: Logger,
): Promise<WorkloadState[]> {
  return Promise.all(
    workloads.map(async (w) =>
      w.ref.kind === 'Deployment' ? waitDeployment(c, w.ref, { ...opts, generation: w.generation }, ctx, log) : (await readWorkloads(c, [w.ref]))[0]!,
    ),
  );
}
