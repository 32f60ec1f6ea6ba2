/**
 * The API's side of the engine: preflight a delivery, start it through its
 * application's workflow (which takes the lock and starts the delivery in one
 * step), read its status, list deliveries through Temporal visibility, act on
 * a running delivery, and restore an earlier state after a finished one.
 * Everything durable lives in Temporal; this class holds only the client.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  ApplicationFailure,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ClusterInfo, DeliveryEvent, DeliveryStatus, DeployRequest, Phase } from '../model/index.ts';
import {
  actionUpdate,
  applicationWorkflowId,
  appKey,
  appStateQuery,
  DELIVERY_WORKFLOW,
  eventsQuery,
  deliveryWorkflowId,
  phaseKey,
  PREFLIGHT_WORKFLOW,
  SA_APP,
  SA_PHASE,
  statusQuery,
  typeKey,
  type AppState,
  type PreflightResult,
  type StartDeliveryInput,
} from '../workflows/messages.ts';
import type { Caller } from './auth.ts';
import { HttpError, notFound } from './errors.ts';
import { retryUnderLock, startUnderLock } from './lock.ts';
import { restoreRequest, versionRequest } from './restore.ts';
import type { ActionBody, DeliveryListItem, ListQuery } from './schemas.ts';

/** Workflow ids the deliveries routes answer for; anything else (an application workflow) is a 404 there. */
export const deliveryIdRe = /^delivery-[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
/** Queries need a worker to answer; do not hold an HTTP request longer than this for one. */
const QUERY_DEADLINE_MS = 10_000;
/** A preflight (digests, dry-runs in every cluster) that takes longer than this is given up. */
const PREFLIGHT_TIMEOUT = '45s';

export const statusUrl = (id: string): string => `/v1/deliveries/${id}`;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A delivery id derived from the caller and its Idempotency-Key, or a fresh one. */
export function deliveryIdFor(caller: string, idempotencyKey?: string, scope = 'start'): string {
  if (idempotencyKey === undefined) return deliveryWorkflowId(randomUUID());
  return deliveryWorkflowId(sha(`${scope}\n${caller}\n${idempotencyKey}`).slice(0, 40));
}

/** The update id of an action: a repeat with the same key is answered by Temporal with the first outcome. */
export const actionUpdateId = (caller: string, idempotencyKey: string, deliveryId: string): string =>
  `action-${sha(`${deliveryId}\n${caller}\n${idempotencyKey}`).slice(0, 40)}`;

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
export const requestHash = (v: unknown): string => sha(stableJson(v));

export interface StartInput {
  request: DeployRequest;
  caller: Caller;
  idempotencyKey?: string;
  /** A restore after the finished delivery with this id. */
  rollbackOf?: string;
  /** Why (an SRE's comment on a rollback); kept in the delivery's memo. */
  comment?: string;
  /** Skip the preflight (a restore re-applies the last good state). */
  skipPreflight?: boolean;
}
export interface Started {
  id: string;
  /** False when an Idempotency-Key found the delivery an earlier request started. */
  created: boolean;
  /** The digest each image was pinned to, when a preflight ran. */
  digests?: Record<string, string>;
  /** Clusters the preflight could not check (the delivery waits for them). */
  unchecked?: PreflightResult['unchecked'];
}
export type ActionOutcome =
  | { kind: 'status'; status: DeliveryStatus }
  | { kind: 'started'; started: Started; rollbackOf: string }
  | { kind: 'started'; started: Started; retryOf: string };

export interface DeliveriesDeps {
  temporal: Client;
  fleet: readonly ClusterInfo[];
  /** Task queue of the workflows (HUB_TASK_QUEUE in production; tests run their own). */
  taskQueue: string;
  /** Healthy versions kept per application; carried by each start, so a changed setting applies from the next delivery. */
  versionHistory?: number;
}

/** The application's lock is held: 409 naming the delivery that holds it. */
function inProgress(f: ApplicationFailure): HttpError {
  const active = (f.details?.[0] as { activeDelivery?: string } | undefined)?.activeDelivery;
  return new HttpError(409, 'DeliveryInProgress', f.message, { details: { activeDelivery: active, status: active ? statusUrl(active) : undefined } });
}

export class Deliveries {
  readonly #d: DeliveriesDeps;
  constructor(deps: DeliveriesDeps) {
    this.#d = deps;
  }

  /**
   * Preflight, then the application's workflow takes the lock and starts the delivery (one update).
   * An Idempotency-Key that already named a delivery returns it; reused with another body it is a 422.
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
    // A version source is read back from the clusters when the delivery runs: nothing to render or dry-run here.
    const versionSource = request.app.source !== undefined && 'version' in request.app.source;
    const checked = input.skipPreflight || versionSource ? undefined : await this.preflight(request, id);

    const start: StartDeliveryInput = {
      deliveryId: id,
      request,
      requestedBy: caller.name,
      requestHash: hash,
      ...(this.#d.versionHistory !== undefined ? { historyLimit: this.#d.versionHistory } : {}),
      ...(rollbackOf ? { rollbackOf } : {}),
      ...(comment ? { comment } : {}),
    };
    try {
      // The same id again (a retried request whose answer was lost) gets the first outcome.
      const r = await startUnderLock(temporal, taskQueue, start, id);
      return {
        id,
        created: r.created,
        ...(checked ? { digests: checked.digests } : {}),
        ...(checked?.unchecked.length ? { unchecked: checked.unchecked } : {}),
      };
    } catch (e) {
      const f = e instanceof WorkflowUpdateFailedError && e.cause instanceof ApplicationFailure ? e.cause : undefined;
      if (f?.type === 'DeliveryInProgress') throw inProgress(f);
      if (f?.type === 'DeliveryNotStarted' && idempotencyKey !== undefined) {
        // A twin request with the same key won the race, or the key named a delivery long gone.
        const existing = await this.#describe(id);
        if (existing) return this.#repeat(id, existing, hash);
      }
      if (f) throw new HttpError(409, f.type ?? 'DeliveryNotStarted', f.message);
      throw e;
    }
  }

  /**
   * Prepares the delivery as it will run and dry-runs it in every placed cluster (nothing is written):
   * 422 for what an API server rejects or an image its registry lacks, 409 for an object of someone else.
   */
  async preflight(request: DeployRequest, id: string): Promise<PreflightResult> {
    let r: PreflightResult;
    try {
      r = await this.#d.temporal.workflow.execute(PREFLIGHT_WORKFLOW, {
        workflowId: `preflight-${randomUUID()}`,
        taskQueue: this.#d.taskQueue,
        args: [{ request, deliveryId: id }],
        workflowExecutionTimeout: PREFLIGHT_TIMEOUT,
      });
    } catch (e) {
      let cause: unknown = e instanceof WorkflowFailedError ? e.cause : undefined;
      while (cause && !(cause instanceof ApplicationFailure)) cause = (cause as { cause?: unknown }).cause;
      const f = cause as ApplicationFailure | undefined;
      if (f?.type === 'ImageNotFound' || f?.type === 'PlanFailed' || f?.type === 'RegistryAuthFailed') {
        const path = f.type === 'PlanFailed' ? 'app' : 'app.image';
        throw new HttpError(422, 'Unprocessable', f.message, { details: [{ path, message: f.message }] });
      }
      if (e instanceof WorkflowFailedError) {
        throw new HttpError(503, 'PreflightUnavailable', `the delivery could not be checked before it starts: ${f?.message ?? e.message}; try again`, {
          headers: { 'Retry-After': '10' },
        });
      }
      throw e;
    }
    const invalid = r.issues.filter((i) => i.kind === 'Invalid');
    if (invalid.length) {
      throw new HttpError(422, 'RejectedByCluster', `the API server of ${[...new Set(invalid.map((i) => i.cluster))].join(', ')} rejects the delivery's objects: ${invalid.map((i) => `${i.cluster}: ${i.object}${i.field ? ` (${i.field})` : ''}`).join('; ')}`, {
        details: invalid.map((i) => ({ path: `clusters.${i.cluster}.${i.object.replace(' ', '.')}${i.field ? `.${i.field}` : ''}`, cluster: i.cluster, object: i.object, ...(i.field ? { field: i.field } : {}), message: i.message })),
      });
    }
    const owned = r.issues.filter((i) => i.kind === 'NotOwned');
    if (owned.length) {
      throw new HttpError(409, 'NotOwned', owned.map((i) => i.message).join('; '), {
        details: owned.map((i) => ({ cluster: i.cluster, object: i.object, managers: i.managers ?? [], message: i.message })),
      });
    }
    const prot = r.issues.filter((i) => i.kind === 'ProtectedNamespace');
    if (prot.length) throw new HttpError(403, 'ProtectedNamespace', prot.map((i) => `${i.cluster}: ${i.message}`).join('; '));
    return r;
  }

  #repeat(id: string, existing: WorkflowExecutionDescription, hash: string): Started {
    if (existing.type !== DELIVERY_WORKFLOW)
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
    if (!description || description.type !== DELIVERY_WORKFLOW) throw notFound(`no delivery ${id}`);
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

  /** The delivery's events after `after` (its event stream), and whether it still runs. */
  async events(id: string, after: number): Promise<{ events: DeliveryEvent[]; last: number; running: boolean }> {
    const { handle, description } = await this.#deliveryHandle(id);
    const r = await this.#query(() => handle.query(eventsQuery, after));
    return { ...r, running: description.status.name === 'RUNNING' };
  }

  async list(q: ListQuery): Promise<DeliveryListItem[]> {
    // Values are validated against strict patterns (schemas.ts) before they reach the query.
    const where = [`WorkflowType = '${DELIVERY_WORKFLOW}'`];
    if (q.app) where.push(`${SA_APP} = '${q.app}'`);
    if (q.phase) where.push(`${SA_PHASE} = '${q.phase}'`);
    const items: DeliveryListItem[] = [];
    for await (const wf of this.#d.temporal.workflow.list({
      query: where.join(' AND '),
      pageSize: q.limit,
    })) {
      const memo = (wf.memo ?? {}) as { requestedBy?: string; image?: string; rollbackOf?: string; retryOf?: string };
      items.push({
        id: wf.workflowId,
        app: wf.typedSearchAttributes.get(appKey) ?? '',
        phase: (wf.typedSearchAttributes.get(phaseKey) ?? 'Pending') as Phase,
        type: wf.typedSearchAttributes.get(typeKey) ?? 'deploy',
        execution: wf.status.name,
        startedAt: wf.startTime.toISOString(),
        ...(wf.closeTime ? { closedAt: wf.closeTime.toISOString() } : {}),
        ...(memo.image ? { image: memo.image } : {}),
        ...(memo.requestedBy ? { requestedBy: memo.requestedBy } : {}),
        ...(memo.rollbackOf ? { rollbackOf: memo.rollbackOf } : {}),
        ...(memo.retryOf ? { retryOf: memo.retryOf } : {}),
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
    // With a key, the update id is derived from it: Temporal answers a repeat with the first outcome,
    // even after the delivery has closed.
    const updateId = idempotencyKey !== undefined ? actionUpdateId(caller.name, idempotencyKey, id) : undefined;
    if (description.status.name === 'RUNNING' || updateId) {
      try {
        const status = await handle.executeUpdate(actionUpdate, {
          args: [{ ...body, who: caller.name, role: caller.role }],
          ...(updateId ? { updateId } : {}),
        });
        return { kind: 'status', status };
      } catch (e) {
        const f =
          e instanceof WorkflowUpdateFailedError && e.cause instanceof ApplicationFailure ? e.cause : undefined;
        if (f?.type === 'DeliveryFinished') {
          // Finished, still concluding: let it close, then answer as for a closed one.
          await this.#query(() => handle.result()).catch(() => undefined);
        } else if (e instanceof WorkflowUpdateFailedError) {
          throw new HttpError(f?.type === 'ActionForbidden' ? 403 : 409, f?.type || 'ActionNotApplicable', f?.message ?? e.message);
        } else if (!(e instanceof WorkflowNotFoundError)) {
          // The delivery may have finished between the describe and the update: decide again on its final state.
          const again = await this.#describe(id);
          if (!again || again.status.name === 'RUNNING') throw e;
        }
      }
    }
    const { status } = await this.status(id);
    if (body.action === 'retry') return this.#retry(status, body, caller, idempotencyKey);
    if (body.action !== 'rollback') {
      throw new HttpError(
        409,
        'DeliveryFinished',
        `delivery ${id} has finished (${status.phase}); only rollback applies now${status.phase === 'Aborted' ? ', or retry' : ''}`,
      );
    }
    if (idempotencyKey !== undefined) {
      // A repeated rollback finds the restore it started, even though the restore now holds the lock.
      const restoreId = deliveryIdFor(caller.name, idempotencyKey, `rollback ${id}`);
      const existing = await this.#describe(restoreId);
      if (existing) {
        if (existing.type !== DELIVERY_WORKFLOW || existing.memo?.rollbackOf !== id)
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
      skipPreflight: true,
      ...(body.comment !== undefined ? { comment: body.comment } : {}),
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
    });
    return { kind: 'started', started, rollbackOf: id };
  }

  /**
   * `retry` of a finished delivery that ended Aborted: a new delivery of the same request and digests that
   * resumes where it stopped (the application's workflow keeps what it needs). 409 when it did not end Aborted,
   * when another delivery started since, or while one runs.
   */
  async #retry(status: DeliveryStatus, body: ActionBody, caller: Caller, idempotencyKey?: string): Promise<ActionOutcome> {
    const id = status.id;
    const notResumable = (message: string) => new HttpError(409, 'NotResumable', message);
    if (status.phase !== 'Aborted') throw new HttpError(409, 'DeliveryFinished', `delivery ${id} has finished (${status.phase}); retry resumes an Aborted delivery, only rollback applies to this one`);
    if (!status.resumeAt) throw notResumable(`delivery ${id} was aborted without a place to resume (by an earlier Flotilla); deliver it again`);
    if (body.cluster !== undefined) throw new HttpError(409, 'ActionNotApplicable', `a retry of an aborted delivery resumes all its clusters; cluster applies to a delivery waiting for an SRE`);
    const retryId = deliveryIdFor(caller.name, idempotencyKey, `retry ${id}`);
    if (idempotencyKey !== undefined) {
      const existing = await this.#describe(retryId);
      if (existing) {
        if (existing.type !== DELIVERY_WORKFLOW || existing.memo?.retryOf !== id) throw new HttpError(409, 'IdConflict', `workflow ${retryId} is not a retry of ${id}`);
        return { kind: 'started', started: { id: retryId, created: false }, retryOf: id };
      }
    }
    try {
      const r = await retryUnderLock(
        this.#d.temporal,
        this.#d.taskQueue,
        status.app,
        {
          deliveryId: retryId,
          retryOf: id,
          requestedBy: caller.name,
          requestHash: requestHash({ retryOf: id }),
          ...(body.comment !== undefined ? { comment: body.comment } : {}),
          ...(this.#d.versionHistory !== undefined ? { historyLimit: this.#d.versionHistory } : {}),
        },
        retryId,
      );
      return { kind: 'started', started: { id: retryId, created: r.created }, retryOf: id };
    } catch (e) {
      const f = e instanceof WorkflowUpdateFailedError && e.cause instanceof ApplicationFailure ? e.cause : undefined;
      if (f?.type === 'DeliveryInProgress') throw inProgress(f);
      if (f) throw new HttpError(409, f.type ?? 'NotResumable', f.message);
      throw e;
    }
  }

  /**
   * A delivery that puts version N back, exactly as it rendered, on every cluster it ran on (role sre).
   * 404 for an application that is not there; 409 for a version that is not kept.
   */
  async rollbackToVersion(namespace: string, name: string, version: number, caller: Caller, comment?: string, idempotencyKey?: string): Promise<Started> {
    const app = await this.app(namespace, name);
    const v = app.versions.find((x) => x.number === version);
    if (!v) {
      throw new HttpError(409, 'VersionUnavailable', `${namespace}/${name} keeps no version ${version} (kept: ${app.versions.map((x) => x.number).join(', ') || 'none'})`, {
        details: { versions: app.versions.map((x) => x.number) },
      });
    }
    const gone = v.clusters.filter((c) => !this.#d.fleet.some((f) => f.name === c));
    if (gone.length) throw new HttpError(409, 'VersionUnavailable', `version ${version} ran on ${gone.join(', ')}, no longer in the fleet`);
    return this.start({
      request: versionRequest(app, v, v.clusters),
      caller,
      rollbackOf: `version ${version}`,
      skipPreflight: true,
      ...(comment ? { comment } : {}),
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
    });
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
    if (a.activityType?.name !== 'waitReady') continue;
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
