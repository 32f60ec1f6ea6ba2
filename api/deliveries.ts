/**
 * The API's side of the engine: start a delivery under the application's
 * lock, read its status, list deliveries through Temporal visibility, act on
 * a running delivery, and restore an earlier state after a finished one.
 * Everything durable lives in Temporal; this class holds only the client.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  ApplicationFailure,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type {
  ClusterInfo,
  DeliveryStatus,
  DeployRequest,
  DeployWorkflowInput,
  Phase,
} from '../model/index.ts';
import {
  acquireUpdate,
  actionUpdate,
  applicationWorkflowId,
  appKey,
  appStateQuery,
  deliveryWorkflowId,
  phaseKey,
  releaseSignal,
  SA_APP,
  SA_PHASE,
  statusQuery,
  typeKey,
  type AcquireInput,
  type AppState,
} from '../workflows/messages.ts';
import type { Caller } from './auth.ts';
import { HttpError, notFound } from './errors.ts';
import { restoreRequest } from './restore.ts';
import type { ActionBody, DeliveryListItem, ListQuery } from './schemas.ts';

/** Workflow ids the deliveries routes answer for; anything else (an application workflow) is a 404 there. */
export const deliveryIdRe = /^delivery-[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const DELIVERY_TYPE = 'deploy';
const APPLICATION_TYPE = 'application';
/** Queries need a worker to answer; do not hold an HTTP request longer than this for one. */
const QUERY_DEADLINE_MS = 10_000;
/** A lock taken this long ago by a delivery that never started is free again. */
const STALE_LOCK_MS = 60_000;

export const statusUrl = (id: string): string => `/v1/deliveries/${id}`;

/** A delivery id derived from the caller and its Idempotency-Key, or a fresh one. */
export function deliveryIdFor(caller: string, idempotencyKey?: string, scope = 'start'): string {
  if (idempotencyKey === undefined) return deliveryWorkflowId(randomUUID());
  const h = createHash('sha256').update(`${scope}\n${caller}\n${idempotencyKey}`).digest('hex');
  return deliveryWorkflowId(h.slice(0, 40));
}

/** JSON with sorted keys, so equal requests hash equally whatever order their fields came in. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
export const requestHash = (v: unknown): string => createHash('sha256').update(stableJson(v)).digest('hex');

export interface StartInput {
  request: DeployRequest;
  caller: Caller;
  idempotencyKey?: string;
  /** A restore after the finished delivery with this id. */
  rollbackOf?: string;
  /** Why (an SRE's comment on a rollback); kept in the delivery's memo. */
  comment?: string;
}
export interface Started {
  id: string;
  /** False when an Idempotency-Key found the delivery an earlier request started. */
  created: boolean;
}
export type ActionOutcome =
  { kind: 'status'; status: DeliveryStatus } | { kind: 'started'; started: Started; rollbackOf: string };

export interface DeliveriesDeps {
  temporal: Client;
  fleet: readonly ClusterInfo[];
  /** Task queue of the workflows (HUB_TASK_QUEUE in production; tests run their own). */
  taskQueue: string;
  /** Told when a lock whose holder cannot give it back is released (for the log). */
  onStaleLock?: (holder: string, app: string) => void;
}

export class Deliveries {
  readonly #d: DeliveriesDeps;
  constructor(deps: DeliveriesDeps) {
    this.#d = deps;
  }

  /**
   * Takes the application's lock, then starts the deploy workflow. An Idempotency-Key that
   * already named a delivery returns it, whatever the lock's state; reused with another body it is a 422.
   */
  async start(input: StartInput): Promise<Started> {
    const { request, caller, idempotencyKey, rollbackOf, comment } = input;
    const { temporal, taskQueue } = this.#d;
    const id = deliveryIdFor(caller.name, idempotencyKey, rollbackOf ? `rollback ${rollbackOf}` : 'start');
    const hash = requestHash({ request, rollbackOf });
    if (idempotencyKey !== undefined) {
      const existing = await this.#describe(id);
      if (existing) return this.#repeat(id, existing, hash);
    }

    const { namespace, name } = request.app;
    const type = rollbackOf ? 'rollback' : request.type;
    const acquire: AcquireInput = {
      deliveryId: id,
      type,
      image: request.app.image,
      startedAt: new Date().toISOString(),
    };
    const takeLock = () =>
      temporal.workflow.executeUpdateWithStart(acquireUpdate, {
        args: [acquire],
        startWorkflowOperation: new WithStartWorkflowOperation(APPLICATION_TYPE, {
          workflowId: applicationWorkflowId(namespace, name),
          taskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
          args: [{ namespace, name }],
        }),
      });
    for (let attempt = 0; ; attempt++) {
      try {
        await takeLock();
        break;
      } catch (e) {
        const f =
          e instanceof WorkflowUpdateFailedError && e.cause instanceof ApplicationFailure ? e.cause : undefined;
        if (f?.type !== 'DeliveryInProgress') throw e;
        const active = (f.details?.[0] as { activeDelivery?: string } | undefined)?.activeDelivery;
        if (attempt === 0 && active && (await this.#releaseIfStale(namespace, name, active))) continue;
        throw new HttpError(409, 'DeliveryInProgress', f.message, {
          details: { activeDelivery: active, status: active ? statusUrl(active) : undefined },
        });
      }
    }

    const workflowInput: DeployWorkflowInput = {
      request,
      requestedBy: caller.name,
      ...(rollbackOf ? { rollbackOf } : {}),
    };
    try {
      await temporal.workflow.start(DELIVERY_TYPE, {
        workflowId: id,
        taskQueue,
        args: [workflowInput],
        // An id names one delivery for good: never a second run, even after the first finished.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        workflowIdConflictPolicy: 'FAIL',
        typedSearchAttributes: [
          { key: appKey, value: `${namespace}/${name}` },
          { key: typeKey, value: type },
          { key: phaseKey, value: 'Pending' },
        ],
        memo: {
          requestHash: hash,
          requestedBy: caller.name,
          image: request.app.image,
          ...(rollbackOf ? { rollbackOf } : {}),
          ...(comment ? { comment } : {}),
        },
      });
    } catch (e) {
      if (e instanceof WorkflowExecutionAlreadyStartedError && idempotencyKey !== undefined) {
        // A twin request with the same key won the race; it holds the lock under the same id.
        const existing = await this.#describe(id);
        if (existing) return this.#repeat(id, existing, hash);
      }
      await temporal.workflow
        .getHandle(applicationWorkflowId(namespace, name))
        .signal(releaseSignal, { deliveryId: id })
        .catch(() => undefined); // the lock outlives us only if Temporal is gone too; the original error says why
      throw e;
    }
    return { id, created: true };
  }

  #repeat(id: string, existing: WorkflowExecutionDescription, hash: string): Started {
    if (existing.type !== DELIVERY_TYPE)
      throw new HttpError(409, 'IdConflict', `workflow ${id} is not a delivery`);
    if (existing.memo?.requestHash !== hash) {
      throw new HttpError(
        422,
        'IdempotencyKeyReused',
        `this Idempotency-Key already started delivery ${id} with a different request`,
        { details: { id, status: statusUrl(id) } },
      );
    }
    return { id, created: false };
  }

  /**
   * A lock whose holder can no longer give it back is released: the holder's workflow was
   * closed without reporting (terminated, timed out), or never started although the lock was
   * taken over a minute ago (an API that died between the two steps).
   */
  async #releaseIfStale(namespace: string, name: string, holder: string): Promise<boolean> {
    const app = this.#d.temporal.workflow.getHandle(applicationWorkflowId(namespace, name));
    const d = await this.#describe(holder);
    let stale = d !== undefined && d.status.name !== 'RUNNING';
    if (!d) {
      const state = await this.#query(() => app.query(appStateQuery));
      const rec = state.deliveries.find((x) => x.id === holder);
      stale = !rec || Date.now() - Date.parse(rec.startedAt) > STALE_LOCK_MS;
    }
    if (!stale) return false;
    this.#d.onStaleLock?.(holder, `${namespace}/${name}`);
    await app.signal(releaseSignal, { deliveryId: holder });
    return true;
  }

  async #describe(id: string): Promise<WorkflowExecutionDescription | undefined> {
    try {
      return await this.#d.temporal.workflow.getHandle(id).describe();
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) return undefined;
      throw e;
    }
  }

  async #deliveryHandle(
    id: string,
  ): Promise<{ handle: WorkflowHandle; description: WorkflowExecutionDescription }> {
    const description = deliveryIdRe.test(id) ? await this.#describe(id) : undefined;
    if (!description || description.type !== DELIVERY_TYPE) throw notFound(`no delivery ${id}`);
    return { handle: this.#d.temporal.workflow.getHandle(id), description };
  }

  #query<T>(fn: () => Promise<T>): Promise<T> {
    return this.#d.temporal.withDeadline(Date.now() + QUERY_DEADLINE_MS, fn);
  }

  /** A finished delivery's status is its result (no worker needed); a running one's comes from the status query. */
  async status(id: string): Promise<{ status: DeliveryStatus; running: boolean }> {
    const { handle, description } = await this.#deliveryHandle(id);
    if (description.status.name === 'COMPLETED')
      return { status: (await handle.result()) as DeliveryStatus, running: false };
    const status = await this.#query(() => handle.query(statusQuery));
    const running = description.status.name === 'RUNNING';
    if (running) withRolloutProgress(status, description);
    return { status, running };
  }

  async list(q: ListQuery): Promise<DeliveryListItem[]> {
    // Values are validated against strict patterns (schemas.ts) before they reach the query.
    const where = [`WorkflowType = '${DELIVERY_TYPE}'`];
    if (q.app) where.push(`${SA_APP} = '${q.app}'`);
    if (q.phase) where.push(`${SA_PHASE} = '${q.phase}'`);
    const items: DeliveryListItem[] = [];
    for await (const wf of this.#d.temporal.workflow.list({
      query: where.join(' AND '),
      pageSize: q.limit,
    })) {
      const memo = (wf.memo ?? {}) as { requestedBy?: string; image?: string; rollbackOf?: string };
      items.push({
        id: wf.workflowId,
        app: wf.typedSearchAttributes.get(appKey) ?? '',
        phase: (wf.typedSearchAttributes.get(phaseKey) ?? 'Pending') as Phase,
        type: wf.typedSearchAttributes.get(typeKey) ?? DELIVERY_TYPE,
        execution: wf.status.name,
        startedAt: wf.startTime.toISOString(),
        ...(wf.closeTime ? { closedAt: wf.closeTime.toISOString() } : {}),
        ...(memo.image ? { image: memo.image } : {}),
        ...(memo.requestedBy ? { requestedBy: memo.requestedBy } : {}),
        ...(memo.rollbackOf ? { rollbackOf: memo.rollbackOf } : {}),
        status: statusUrl(wf.workflowId),
      });
      if (items.length >= q.limit) break;
    }
    return items;
  }

  /**
   * retry | skip | rollback | abort on a running delivery (the workflow's validator refuses what does not
   * apply now: 409). On a finished one only `rollback` applies: it starts a delivery restoring the earlier state.
   */
  async act(id: string, body: ActionBody, caller: Caller, idempotencyKey?: string): Promise<ActionOutcome> {
    const { handle, description } = await this.#deliveryHandle(id);
    if (description.status.name === 'RUNNING') {
      try {
        const status = await handle.executeUpdate(actionUpdate, { args: [{ ...body, who: caller.name }] });
        return { kind: 'status', status };
      } catch (e) {
        const f =
          e instanceof WorkflowUpdateFailedError && e.cause instanceof ApplicationFailure ? e.cause : undefined;
        if (f?.type === 'DeliveryFinished') {
          // Finished, still reporting its end to the application: let it close, then answer as for a closed one.
          await this.#query(() => handle.result()).catch(() => undefined);
        } else if (e instanceof WorkflowUpdateFailedError) {
          throw new HttpError(409, f?.type || 'ActionNotApplicable', f?.message ?? e.message);
        } else {
          // The delivery may have finished between the describe and the update: decide again on its final state.
          const again = await this.#describe(id);
          if (!again || again.status.name === 'RUNNING') throw e;
        }
      }
    }
    const { status } = await this.status(id);
    if (body.action !== 'rollback') {
      throw new HttpError(
        409,
        'DeliveryFinished',
        `delivery ${id} has finished (${status.phase}); only rollback applies now`,
      );
    }
    if (idempotencyKey !== undefined) {
      // A repeated rollback finds the restore it started, even though the restore now holds the lock.
      const restoreId = deliveryIdFor(caller.name, idempotencyKey, `rollback ${id}`);
      const existing = await this.#describe(restoreId);
      if (existing) {
        if (existing.type !== DELIVERY_TYPE || existing.memo?.rollbackOf !== id)
          throw new HttpError(409, 'IdConflict', `workflow ${restoreId} is not a rollback of ${id}`);
        return { kind: 'started', started: { id: restoreId, created: false }, rollbackOf: id };
      }
    }
    const app = await this.app(status.app.namespace, status.app.name);
    const request = restoreRequest(status, app, this.#d.fleet);
    const started = await this.start({
      request,
      caller,
      rollbackOf: id,
      ...(body.comment !== undefined ? { comment: body.comment } : {}),
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
    });
    return { kind: 'started', started, rollbackOf: id };
  }

  /** The application's durable state: where it runs, at which image and revision, and its recent deliveries. */
  async app(namespace: string, name: string): Promise<AppState> {
    const handle = this.#d.temporal.workflow.getHandle(applicationWorkflowId(namespace, name));
    try {
      return await this.#query(() => handle.query(appStateQuery));
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) throw notFound(`no application ${namespace}/${name}`);
      throw e;
    }
  }

  /** Temporal answers for our namespace within the deadline. */
  async ready(deadlineMs: number): Promise<void> {
    const { temporal } = this.#d;
    await temporal.withDeadline(Date.now() + deadlineMs, () =>
      temporal.workflowService.describeNamespace({ namespace: temporal.options.namespace }),
    );
  }
}

/**
 * The workflow learns a cluster's ready replicas only when its rollout step ends; meanwhile the
 * step heartbeats its progress, which Temporal keeps with the pending activity. Shown here so
 * that a status read during a rollout says how far each cluster has come.
 */
function withRolloutProgress(status: DeliveryStatus, description: WorkflowExecutionDescription): void {
  for (const a of description.raw.pendingActivities ?? []) {
    if (a.activityType?.name !== 'waitForRollout') continue;
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    let p: { cluster?: string; readyReplicas?: number; message?: string };
    try {
      p = defaultPayloadConverter.fromPayload(payload);
    } catch {
      continue;
    }
    const c = p.cluster ? status.clusters[p.cluster] : undefined;
    if (!c || c.phase !== 'Progressing' || typeof p.readyReplicas !== 'number') continue;
    c.readyReplicas = p.readyReplicas;
    if (p.message) c.message = p.message;
  }
}
