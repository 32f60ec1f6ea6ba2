/**
 * `POST /v1/replications` (roles ci, sre), `GET /v1/replications/{id}` and the
 * list (any role): one image copied to named registries (or all of them) by
 * the replication workflow (workflows/replication.ts). Before it starts, the
 * targets are checked against the inventory (422 for an unknown registry) and
 * the image is resolved in its registry (422 when it is not there).
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  ApplicationFailure,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { Router } from 'express';
import { z } from 'zod';
import {
  parseImageRef,
  ReplicationPlanError,
  ReplicationRequestSchema,
  replicationTargets,
  type ReplicationStatus,
  type ReplicationWorkflowInput,
} from '../model/index.ts';
import {
  REPLICATION_PREFLIGHT_WORKFLOW,
  REPLICATION_WORKFLOW,
  replicationStatusQuery,
  replicationWorkflowId,
} from '../workflows/replication.ts';
import type { RegistryInfo } from '../model/registry.ts';
import { Permission, requirePermission, type Caller } from './auth.ts';
import { locals } from './context.ts';
import { HttpError, notFound, parseOr } from './errors.ts';
import { IdempotencyKeySchema } from './schemas.ts';

export const replicationUrl = (id: string): string => `/v1/replications/${id}`;
const replicationIdRe = /^replication-[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export const ReplicationListQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(200).default(50) }).strict();

export interface ReplicationsDeps {
  temporal: Client;
  registries: readonly RegistryInfo[];
  taskQueue: string;
}

export class Replications {
  readonly #d: ReplicationsDeps;
  constructor(deps: ReplicationsDeps) {
    this.#d = deps;
  }

  async start(body: unknown, caller: Caller, idempotencyKey?: string): Promise<{ id: string; created: boolean; source: string; targets: string[] }> {
    const request = parseOr(ReplicationRequestSchema, body);
    let targets: RegistryInfo[];
    try {
      targets = replicationTargets(request, this.#d.registries);
    } catch (e) {
      if (!(e instanceof ReplicationPlanError)) throw e;
      const path = e.path.map(String).join('.');
      throw new HttpError(422, 'Unprocessable', e.message, { details: [{ path, message: e.message }] });
    }
    const id = replicationWorkflowId(idempotencyKey !== undefined ? sha(`replication\n${caller.name}\n${idempotencyKey}`).slice(0, 40) : randomUUID());
    const hash = sha(JSON.stringify(request));
    if (idempotencyKey !== undefined) {
      const existing = await this.#describe(id);
      if (existing) {
        if (existing.memo?.requestHash !== hash) throw new HttpError(422, 'IdempotencyKeyReused', `this Idempotency-Key already started replication ${id} with a different request`);
        return { id, created: false, source: String(existing.memo?.image ?? request.image), targets: targets.map((t) => t.name) };
      }
    }
    const resolved = await this.#resolve(request.image);
    const sourceHost = parseImageRef(request.image).registry.toLowerCase();
    const source = this.#d.registries.find((r) => r.host.toLowerCase() === sourceHost);
    const input: ReplicationWorkflowInput = {
      image: request.image,
      ...(source ? { source } : {}),
      targets,
      ...(request.platforms ? { platforms: request.platforms } : {}),
      timeout: request.timeout,
      requestedBy: caller.name,
    };
    try {
      await this.#d.temporal.workflow.start(REPLICATION_WORKFLOW, {
        workflowId: id,
        taskQueue: this.#d.taskQueue,
        args: [input],
        memo: { requestHash: hash, image: request.image, requestedBy: caller.name },
      });
    } catch (e) {
      if (e instanceof WorkflowExecutionAlreadyStartedError) return { id, created: false, source: resolved, targets: targets.map((t) => t.name) };
      throw e;
    }
    return { id, created: true, source: resolved, targets: targets.map((t) => t.name) };
  }

  /** The image pinned by digest in its registry; 422 when it is not there. */
  async #resolve(image: string): Promise<string> {
    try {
      const r = await this.#d.temporal.workflow.execute(REPLICATION_PREFLIGHT_WORKFLOW, {
        workflowId: `replication-preflight-${randomUUID()}`,
        taskQueue: this.#d.taskQueue,
        args: [{ image }],
        workflowExecutionTimeout: '40s',
      });
      return (r as { pinned: string }).pinned;
    } catch (e) {
      let cause: unknown = e instanceof WorkflowFailedError ? e.cause : undefined;
      while (cause && !(cause instanceof ApplicationFailure)) cause = (cause as { cause?: unknown }).cause;
      const f = cause as ApplicationFailure | undefined;
      if (f?.type === 'ImageNotFound' || f?.type === 'RegistryAuthFailed' || f?.type === 'InvalidReference')
        throw new HttpError(422, 'Unprocessable', f.message, { details: [{ path: 'image', message: f.message }] });
      if (e instanceof WorkflowFailedError)
        throw new HttpError(503, 'PreflightUnavailable', `the image could not be resolved: ${f?.message ?? e.message}; try again`, { headers: { 'Retry-After': '10' } });
      throw e;
    }
  }

  async #describe(id: string): Promise<WorkflowExecutionDescription | undefined> {
    try {
      return await this.#d.temporal.workflow.getHandle(id).describe();
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) return undefined;
      throw e;
    }
  }

  async status(id: string): Promise<ReplicationStatus> {
    const d = replicationIdRe.test(id) ? await this.#describe(id) : undefined;
    if (!d || d.type !== REPLICATION_WORKFLOW) throw notFound(`no replication ${id}`);
    const handle = this.#d.temporal.workflow.getHandle(id);
    if (d.status.name === 'COMPLETED') return (await handle.result()) as ReplicationStatus;
    return this.#d.temporal.withDeadline(Date.now() + 10_000, () => handle.query(replicationStatusQuery));
  }

  async list(limit: number): Promise<{ id: string; image: string; execution: string; startedAt: string; closedAt?: string; requestedBy?: string; status: string }[]> {
    const items = [];
    for await (const wf of this.#d.temporal.workflow.list({ query: `WorkflowType = '${REPLICATION_WORKFLOW}'`, pageSize: limit })) {
      const memo = (wf.memo ?? {}) as { image?: string; requestedBy?: string };
      items.push({
        id: wf.workflowId,
        image: memo.image ?? '',
        execution: wf.status.name,
        startedAt: wf.startTime.toISOString(),
        ...(wf.closeTime ? { closedAt: wf.closeTime.toISOString() } : {}),
        ...(memo.requestedBy ? { requestedBy: memo.requestedBy } : {}),
        status: replicationUrl(wf.workflowId),
      });
      if (items.length >= limit) break;
    }
    return items;
  }
}

export function replicationRoutes(replications: Replications): Router {
  const r = Router();
  r.post('/replications', requirePermission(Permission.start), async (req, res) => {
    if (!req.is('application/json')) throw new HttpError(415, 'UnsupportedMediaType', 'send the request body as application/json');
    const raw = req.get('idempotency-key');
    const key = raw === undefined ? undefined : parseOr(IdempotencyKeySchema, raw, 'Idempotency-Key header');
    const started = await replications.start(req.body, locals(res).caller!, key);
    locals(res).log.info({ replication: started.id, created: started.created, targets: started.targets }, 'replication requested');
    const url = replicationUrl(started.id);
    res.status(started.created ? 202 : 200).location(url).json({ id: started.id, status: url, source: started.source, targets: started.targets });
  });
  r.get('/replications', requirePermission(Permission.read), async (req, res) => {
    const q = parseOr(ReplicationListQuerySchema, req.query, 'query string');
    res.json({ items: await replications.list(q.limit) });
  });
  r.get('/replications/:id', requirePermission(Permission.read), async (req, res) => {
    res.json(await replications.status(req.params.id as string));
  });
  return r;
}

/** Every replication route, for the OpenAPI document and its test (express paths). */
export const replicationRouteTable = [
  { method: 'post', path: '/v1/replications' },
  { method: 'get', path: '/v1/replications' },
  { method: 'get', path: '/v1/replications/:id' },
] as const;
