/**
 * The /v1 routes. Each handler: check the role, validate with zod (400/422,
 * nothing starts), then one call into Deliveries. Errors go to errorHandler.
 */
import { Router, type Request, type Response } from 'express';
import { DeliveryRequestSchema, type DeliveryRequest, planDeploy, planPlacement, PlanError, type AppSpec, type ClusterInfo } from '../model/index.ts';
import { grants, Permission, requirePermission } from './auth.ts';
import { locals } from './context.ts';
import { statusUrl, type Deliveries, type Started } from './deliveries.ts';
import { HttpError, parseOr } from './errors.ts';
import { streamEvents } from './events.ts';
import {
  ActionBodySchema,
  AppRollbackBodySchema,
  AppParamsSchema,
  AppQuerySchema,
  IdempotencyKeySchema,
  ListQuerySchema,
} from './schemas.ts';

/** Every route, for the OpenAPI document and its test. Express paths. */
export const routeTable = [
  { method: 'post', path: '/v1/deliveries' },
  { method: 'get', path: '/v1/deliveries' },
  { method: 'get', path: '/v1/deliveries/:id' },
  { method: 'get', path: '/v1/deliveries/:id/events' },
  { method: 'post', path: '/v1/deliveries/:id/actions' },
  { method: 'get', path: '/v1/apps/:name' },
  { method: 'get', path: '/v1/apps/:name/versions' },
  { method: 'post', path: '/v1/apps/:name/rollback' },
] as const;

function idempotencyKey(req: Request): string | undefined {
  const raw = req.get('idempotency-key');
  return raw === undefined ? undefined : parseOr(IdempotencyKeySchema, raw, 'Idempotency-Key header');
}

function requireJson(req: Request): void {
  if (!req.is('application/json'))
    throw new HttpError(415, 'UnsupportedMediaType', 'send the request body as application/json');
}

/** 202 with Location for a new delivery; 200 with the same body when an Idempotency-Key found an earlier one. */
function accepted(res: Response, started: Started, extra: Record<string, string> = {}): void {
  const url = statusUrl(started.id);
  res
    .status(started.created ? 202 : 200)
    .location(url)
    .json({
      id: started.id,
      status: url,
      ...extra,
      ...(started.digests ? { digests: started.digests } : {}),
      ...(started.unchecked ? { unchecked: started.unchecked } : {}),
    });
}

/** Namespaces Flotilla never writes into: every kube-* one, and those the configuration names. */
export function isProtectedNamespace(ns: string, extra: readonly string[]): boolean {
  return ns.startsWith('kube-') || extra.includes(ns);
}

/** A plan the engine would refuse is refused here, before anything starts. PlanError paths are relative to the app (or to waves). */
function checkPlan(app: AppSpec, fleet: readonly ClusterInfo[], waves: Parameters<typeof planDeploy>[2]): void {
  try {
    // The inline spec plans all the way (replicas included); a source's replicas are known once rendered.
    if (app.source) planPlacement(app, fleet, waves);
    else planDeploy(app, fleet, waves);
  } catch (e) {
    if (!(e instanceof PlanError)) throw e;
    const path = (e.path[0] === 'waves' ? e.path : ['app', ...e.path]).map(String).join('.');
    throw new HttpError(422, 'Unprocessable', e.message, { details: [{ path, message: e.message }] });
  }
}

export function v1Routes(
  deliveries: Deliveries,
  fleet: readonly ClusterInfo[],
  protectedNamespaces: readonly string[] = [],
  /** Last check before a delivery starts (the fleet's drained clusters: api/clusters.ts); throws an HttpError to refuse. */
  beforeStart?: (request: DeliveryRequest) => Promise<void>,
): Router {
  const r = Router();

  r.post('/deliveries', requirePermission(Permission.start), async (req, res) => {
    requireJson(req);
    const key = idempotencyKey(req);
    const request = parseOr(DeliveryRequestSchema, req.body);
    const caller = locals(res).caller!;
    if (isProtectedNamespace(request.app.namespace, protectedNamespaces)) {
      throw new HttpError(403, 'ProtectedNamespace', `Flotilla does not deliver into namespace ${request.app.namespace}: namespaces starting with kube-${protectedNamespaces.length ? ` and ${protectedNamespaces.join(', ')}` : ''} are protected`, {
        details: [{ path: 'app.namespace', message: 'protected namespace' }],
      });
    }
    if (request.adopt && caller.role !== 'sre') {
      throw new HttpError(403, 'Forbidden', `adopt: true takes over objects Flotilla did not create; only role sre may ask it (you are ${caller.role})`, {
        details: [{ path: 'adopt', message: 'role sre only' }],
      });
    }
    checkPlan(request.app, fleet, request.waves);
    await beforeStart?.(request);
    const started = await deliveries.start({
      request,
      caller,
      ...(key !== undefined ? { idempotencyKey: key } : {}),
    });
    locals(res).log.info(
      { delivery: started.id, created: started.created, app: `${request.app.namespace}/${request.app.name}` },
      'delivery requested',
    );
    accepted(res, started);
  });

  r.get('/deliveries', requirePermission(Permission.read), async (req, res) => {
    const q = parseOr(ListQuerySchema, req.query, 'query string');
    res.json({ items: await deliveries.list(q) });
  });

  r.get('/deliveries/:id', requirePermission(Permission.read), async (req, res) => {
    const { status } = await deliveries.status(req.params.id as string);
    res.json(status);
  });

  r.get('/deliveries/:id/events', requirePermission(Permission.read), async (req, res) => {
    await streamEvents(deliveries, req, res);
  });

  r.post('/deliveries/:id/actions', requirePermission(Permission.act, Permission.decide), async (req, res) => {
    requireJson(req);
    const key = idempotencyKey(req);
    const body = parseOr(ActionBodySchema, req.body);
    // approve and reject are decisions (release managers and SREs; the gate names its roles); the rest are SRE actions.
    const needed = body.action === 'approve' || body.action === 'reject' ? Permission.decide : Permission.act;
    const caller = locals(res).caller!;
    if (!grants[caller.role].includes(needed)) {
      throw new HttpError(403, 'Forbidden', `${body.action} needs permission ${needed}, which role ${caller.role} does not have`);
    }
    const id = req.params.id as string;
    const outcome = await deliveries.act(id, body, locals(res).caller!, key);
    locals(res).log.info({ delivery: id, action: body.action, cluster: body.cluster }, 'delivery action');
    if (outcome.kind === 'status') res.json(outcome.status);
    else accepted(res, outcome.started, 'rollbackOf' in outcome ? { rollbackOf: outcome.rollbackOf } : { retryOf: outcome.retryOf });
  });

  r.get('/apps/:name', requirePermission(Permission.read), async (req, res) => {
    const { name } = parseOr(AppParamsSchema, req.params, 'path');
    const { namespace } = parseOr(AppQuerySchema, req.query, 'query string');
    res.json(await deliveries.app(namespace, name));
  });

  r.get('/apps/:name/versions', requirePermission(Permission.read), async (req, res) => {
    const { name } = parseOr(AppParamsSchema, req.params, 'path');
    const { namespace } = parseOr(AppQuerySchema, req.query, 'query string');
    res.json({ items: (await deliveries.app(namespace, name)).versions });
  });

  r.post('/apps/:name/rollback', requirePermission(Permission.act), async (req, res) => {
    requireJson(req);
    const key = idempotencyKey(req);
    const { name } = parseOr(AppParamsSchema, req.params, 'path');
    const { namespace } = parseOr(AppQuerySchema, req.query, 'query string');
    const body = parseOr(AppRollbackBodySchema, req.body);
    const started = await deliveries.rollbackToVersion(namespace, name, body.version, locals(res).caller!, body.comment, key);
    locals(res).log.info({ delivery: started.id, app: `${namespace}/${name}`, version: body.version }, 'rollback to a version');
    accepted(res, started, { rollbackOf: `version ${body.version}` });
  });

  return r;
}
