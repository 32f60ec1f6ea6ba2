/**
 * One long-lived workflow per application (`app:<namespace>/<name>`): it owns
 * the application's lock and its durable record. A delivery starts only
 * through its `startDelivery` update, which takes the lock and starts the
 * delivery as a child workflow in one step (no window where one exists without
 * the other); the lock is freed when the child ends, however it ends (a
 * terminated child included), and the record is then taken from what the
 * delivery read back from each cluster at its end.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  type ChildWorkflowHandle,
  condition,
  continueAsNew,
  ParentClosePolicy,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { compactSpec, type DeliveryRequest, type DeliveryStatus, type Phase, type ResumeInput } from '../model/index.ts';
import type { delivery } from './delivery.ts';
import {
  appKey,
  appStateQuery,
  DELIVERY_WORKFLOW,
  phaseKey,
  retryDeliveryUpdate,
  startDeliveryUpdate,
  typeKey,
  type AppClusterRecord,
  type AppState,
  type RetryDeliveryInput,
  type StartDeliveryInput,
} from './messages.ts';

export interface ApplicationInput {
  namespace: string;
  name: string;
  /** Carried over by continue-as-new. */
  state?: AppState;
  /** How many versions are kept (here, as an index; in each cluster, as the rendered objects). */
  historyLimit?: number;
  /** Carried over by continue-as-new: the last delivery, Aborted, as a retry would resume it. */
  resumable?: Resumable;
}

/** What a retry of an Aborted delivery needs: its request (kept here, not in the queried state) and where it stopped. */
interface Resumable {
  request: DeliveryRequest;
  resume: ResumeInput;
}

const KEEP_DELIVERIES = 20;
const DEFAULT_HISTORY = 10;
const MAX_HISTORY = 2000;

export async function application(input: ApplicationInput): Promise<void> {
  const state: AppState = { versions: [], nextVersion: 1, inventory: {}, ...(input.state ?? { name: input.name, namespace: input.namespace, clusters: {}, deliveries: [] }) };
  let historyLimit = input.historyLimit ?? DEFAULT_HISTORY;
  let running: { handle: ChildWorkflowHandle<typeof delivery>; start: StartDeliveryInput } | undefined;
  let resumable: Resumable | undefined = input.resumable;

  // `resumable` is derived: the id of the aborted delivery a retry would resume (its request stays here).
  setHandler(appStateQuery, () => (resumable ? { ...state, resumable: resumable.resume.of } : state));

  /** Takes the lock (already checked free by the validator) and starts the delivery as a child. */
  const begin = async (s: StartDeliveryInput, resume?: ResumeInput) => {
    if (state.activeDelivery === s.deliveryId) return { deliveryId: s.deliveryId, created: false }; // the same request again
    state.activeDelivery = s.deliveryId; // taken before the first await: a second update finds it held
    if (s.historyLimit !== undefined) historyLimit = s.historyLimit;
    const type = s.rollbackOf ? 'rollback' : s.request.type;
    const startedAt = new Date().toISOString();
    const version = state.nextVersion;
    const image = s.request.app.image ?? (s.request.app.source ? Object.keys(s.request.app.source)[0]! : '');
    state.deliveries = [
      { id: s.deliveryId, type, image, version, phase: 'Pending' as Phase, startedAt, requestedBy: s.requestedBy, ...(s.rollbackOf ? { rollbackOf: s.rollbackOf } : {}), ...(resume ? { retryOf: resume.of } : {}) },
      ...state.deliveries,
    ].slice(0, KEEP_DELIVERIES);
    // Any delivery that starts ends what a retry could resume: it changes what the aborted one left.
    const kept = resumable;
    resumable = undefined;
    try {
      const handle = await startChild<typeof delivery>(DELIVERY_WORKFLOW, {
        workflowId: s.deliveryId,
        args: [{ request: s.request, requestedBy: s.requestedBy, version, previous: state.inventory, historyLimit, ...(s.rollbackOf ? { rollbackOf: s.rollbackOf } : {}), ...(resume ? { resume } : {}) }],
        // The delivery outlives a restart of this workflow; it reports to it by its result.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: appKey, value: `${state.namespace}/${state.name}` },
          { key: typeKey, value: type },
          { key: phaseKey, value: 'Pending' },
        ],
        memo: {
          requestHash: s.requestHash,
          requestedBy: s.requestedBy,
          image: s.request.app.image,
          ...(s.rollbackOf ? { rollbackOf: s.rollbackOf } : {}),
          ...(resume ? { retryOf: resume.of } : {}),
          ...(s.comment ? { comment: s.comment } : {}),
        },
      });
      running = { handle, start: s };
    } catch (err) {
      delete state.activeDelivery;
      state.deliveries = state.deliveries.filter((d) => d.id !== s.deliveryId);
      resumable = kept;
      throw ApplicationFailure.create({
        type: 'DeliveryNotStarted',
        nonRetryable: true,
        message: `delivery ${s.deliveryId} could not be started: ${(err as Error).message}`,
      });
    }
    return { deliveryId: s.deliveryId, created: true };
  };
  const lockFree = (deliveryId: string) => {
    if (state.activeDelivery !== undefined && state.activeDelivery !== deliveryId) {
      throw ApplicationFailure.create({
        type: 'DeliveryInProgress',
        message: `delivery ${state.activeDelivery} of ${state.namespace}/${state.name} is still running`,
        details: [{ activeDelivery: state.activeDelivery }],
        nonRetryable: true,
      });
    }
  };

  setHandler(startDeliveryUpdate, (s: StartDeliveryInput) => begin(s), { validator: (s: StartDeliveryInput) => lockFree(s.deliveryId) });
  setHandler(
    retryDeliveryUpdate,
    (r: RetryDeliveryInput) => {
      if (state.activeDelivery === r.deliveryId) return { deliveryId: r.deliveryId, created: false };
      const { request, resume } = resumable!;
      return begin({ ...r, request }, resume);
    },
    {
      validator: (r: RetryDeliveryInput) => {
        if (state.activeDelivery === r.deliveryId) return; // the same retry again
        // The aborted delivery itself, still being recorded: the caller waits for the lock as for any start.
        if (state.activeDelivery === r.retryOf) lockFree(r.deliveryId);
        if (resumable?.resume.of !== r.retryOf) {
          const last = state.deliveries[0];
          throw ApplicationFailure.create({
            type: 'NotResumable',
            nonRetryable: true,
            message: last && last.id !== r.retryOf
              ? `delivery ${last.id} of ${state.namespace}/${state.name} started after ${r.retryOf}: only the last delivery, Aborted, can be retried`
              : `delivery ${r.retryOf} cannot be resumed (only an Aborted delivery that is the application's last one can)`,
          });
        }
        lockFree(r.deliveryId);
      },
    },
  );

  for (;;) {
    await condition(() => running !== undefined || (state.activeDelivery === undefined && historyLong()));
    if (!running) break;
    const { handle, start } = running;
    let result: DeliveryStatus | undefined;
    let failure: string | undefined;
    try {
      result = await handle.result();
    } catch (err) {
      // Terminated, timed out, or failed before it could report (NotUnderLock cannot happen here).
      failure = (err as Error).message;
    }
    record(state, start, result, failure, historyLimit);
    if (result?.phase === 'Aborted' && result.resumeAt) {
      resumable = { request: start.request, resume: { of: result.id, ...result.resumeAt, ...(result.digests ? { digests: result.digests } : {}) } };
    }
    running = undefined;
    delete state.activeDelivery;
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof application>({ namespace: input.namespace, name: input.name, state, historyLimit, ...(resumable ? { resumable } : {}) });
}

function historyLong(): boolean {
  const i = workflowInfo();
  return i.continueAsNewSuggested || i.historyLength > MAX_HISTORY;
}

/** The record after a delivery: each cluster as the delivery read it back at its end. */
function record(state: AppState, start: StartDeliveryInput, s: DeliveryStatus | undefined, failure: string | undefined, historyLimit: number): void {
  const rec = state.deliveries.find((d) => d.id === start.deliveryId);
  const finishedAt = s?.finishedAt ?? new Date().toISOString();
  if (rec) Object.assign(rec, { phase: s?.phase ?? 'Degraded', finishedAt });
  if (!s) {
    // The delivery ended without a status (terminated by hand): what it did is unknown, say so.
    for (const c of Object.values(state.clusters)) c.verified = false;
    if (rec && failure) rec.phase = 'Degraded';
    return;
  }
  if (s.phase === 'Healthy') {
    const src = start.request.app.source;
    // A restore puts back the spec of the version it restored; any other delivery's own spec becomes the application's.
    const spec = src && 'version' in src ? state.versions.find((v) => v.number === src.version)?.spec : s.version !== undefined ? compactSpec(start.request.app, s.version) : start.request.app;
    if (spec) {
      if (state.spec) state.previousSpec = state.spec;
      state.spec = spec;
    }
    if (s.version !== undefined) {
      const clusters = Object.values(s.clusters).filter((c) => c.phase === 'Healthy').map((c) => c.cluster);
      const image = s.digest ? `${s.image.replace(/@sha256:.*$/, '').replace(/:[^:/]+$/, '')}@${s.digest}` : s.image;
      state.versions = [{ number: s.version, deliveryId: s.id, at: finishedAt, source: s.source, image, clusters, ...(spec ? { spec } : {}) }, ...state.versions].slice(0, historyLimit);
      state.nextVersion = s.version + 1;
    }
  }
  // What each cluster holds of the application now: exactly the new objects where the delivery went through;
  // where it stopped or was undone, anything either version may have left (pruning a missing object is harmless).
  for (const c of Object.values(s.clusters)) {
    if (c.phase === 'Pending' || c.phase === 'Skipped' || !c.objects) continue;
    const before = state.inventory[c.cluster] ?? [];
    const key = (r: { apiVersion: string; kind: string; namespace?: string; name: string }) => `${r.apiVersion}/${r.kind}/${r.namespace ?? ''}/${r.name}`;
    const merged = new Map([...before, ...c.objects].map((r) => [key(r), r]));
    state.inventory[c.cluster] = c.phase === 'Healthy' ? c.objects : [...merged.values()];
  }
  for (const c of Object.values(s.clusters)) {
    const o = c.observed;
    if (o && !o.exists) {
      delete state.clusters[c.cluster];
      continue;
    }
    if (!o) {
      // Not read back (unreachable at the end, or skipped): keep what was known, marked as not verified.
      const old = state.clusters[c.cluster];
      if (old) old.verified = false;
      continue;
    }
    const r: AppClusterRecord = {
      ...(o.image !== undefined ? { image: o.image } : {}),
      ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
      ...(o.readyReplicas !== undefined ? { readyReplicas: o.readyReplicas } : {}),
      ...(o.revision !== undefined ? { revision: o.revision } : {}),
      deliveryId: s.id,
      phase: c.phase,
      verified: true,
      at: o.at,
    };
    state.clusters[c.cluster] = r;
  }
}
