/**
 * The fleet's clusters over HTTP: `GET /v1/clusters` (each cluster's health, since when, the last
 * probe, drain and failover state, from the fleet monitor) and `POST /v1/clusters/{name}/actions`
 * (`drain`, `undrain`, `failover`, `failback`; role sre). The monitor is started here if it does not
 * run yet (a fixed id: the worker may have started it already).
 *
 * Also the last check of `POST /v1/deliveries`: a delivery whose placement includes a drained
 * cluster is refused (409 ClusterDrained) before anything starts.
 */
import { Router } from 'express';
import { ApplicationFailure, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { ClusterActionSchema, resolvePlacement, type ClusterInfo, type DeliveryRequest, type Placement } from '../model/index.ts';
import { ensureFleetMonitor } from '../worker/monitor.ts';
import { clusterActionUpdate, FLEET_MONITOR_ID, fleetStateQuery, type ClusterView, type FleetView } from '../workflows/fleetMessages.ts';
import { Permission, requirePermission } from './auth.ts';
import { locals } from './context.ts';
import { HttpError, isTemporalUnavailable, parseOr } from './errors.ts';
import { IdempotencyKeySchema } from './schemas.ts';

export const clusterRouteTable = [
  { method: 'get', path: '/v1/clusters' },
  { method: 'post', path: '/v1/clusters/:name/actions' },
] as const;

export interface ClustersDeps {
  temporal: Client;
  fleet: readonly ClusterInfo[];
  taskQueue: string;
  /** The monitor's workflow id (tests run one per fleet). */
  monitorId?: string;
}

/** One cluster as GET /v1/clusters lists it. */
export interface ClusterItem extends ClusterView {
  name: string;
}

export class Clusters {
  readonly #d: ClustersDeps;
  #ensured = false;
  constructor(deps: ClustersDeps) {
    this.#d = deps;
  }

  get #id(): string {
    return this.#d.monitorId ?? FLEET_MONITOR_ID;
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof WorkflowNotFoundError && !this.#ensured) {
        await ensureFleetMonitor(this.#d.temporal, this.#d.taskQueue);
        this.#ensured = true;
        return fn();
      }
      if (isTemporalUnavailable(e)) throw new HttpError(503, 'Unavailable', 'Temporal is not reachable; try again shortly');
      throw e;
    }
  }

  async view(): Promise<FleetView> {
    return this.#call(() => this.#d.temporal.workflow.getHandle(this.#id).query(fleetStateQuery));
  }

  async list(): Promise<{ settings: FleetView['settings']; items: ClusterItem[]; events: FleetView['events'] }> {
    const v = await this.view();
    const items = this.#d.fleet.map((c) => ({ name: c.name, ...(v.clusters[c.name] ?? { cluster: c.name, region: c.region, health: 'Unknown' as const, since: v.startedAt, consecutiveFailures: 0, consecutiveSuccesses: 0, drained: false }) }));
    return { settings: v.settings, items, events: v.events };
  }

  async act(cluster: string, body: z.output<typeof ClusterActionSchema>, who: string, idempotencyKey?: string): Promise<ClusterItem> {
    if (!this.#d.fleet.some((c) => c.name === cluster)) throw new HttpError(404, 'NotFound', `no cluster "${cluster}" in the fleet (has: ${this.#d.fleet.map((c) => c.name).join(', ')})`);
    try {
      const view = await this.#call(() =>
        this.#d.temporal.workflow.getHandle(this.#id).executeUpdate(clusterActionUpdate, {
          args: [{ ...body, cluster, who }],
          ...(idempotencyKey !== undefined ? { updateId: `cluster:${cluster}:${who}:${idempotencyKey}` } : {}),
        }),
      );
      return { name: cluster, ...view };
    } catch (e) {
      const f = e instanceof WorkflowUpdateFailedError && e.cause instanceof ApplicationFailure ? e.cause : undefined;
      if (f?.type === 'UnknownCluster') throw new HttpError(404, 'NotFound', f.message);
      if (e instanceof WorkflowUpdateFailedError) throw new HttpError(409, f?.type || 'ActionNotApplicable', f?.message ?? e.message);
      throw e;
    }
  }

  /** Drained clusters a placement includes (none when the monitor cannot say: the delivery is not held up by it). */
  async drainedIn(placement: Placement): Promise<string[]> {
    let placed: ClusterInfo[];
    try {
      placed = resolvePlacement(placement, this.#d.fleet);
    } catch {
      return []; // the delivery's own validation says what is wrong
    }
    let v: FleetView | undefined;
    try {
      v = await this.#d.temporal.workflow.getHandle(this.#id).query(fleetStateQuery);
    } catch {
      return []; // no monitor (yet), or Temporal away: the delivery's own path reports that
    }
    return placed.filter((c) => v?.clusters[c.name]?.drained).map((c) => c.name);
  }
}

const ClusterParamsSchema = z.object({ name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a cluster name').max(63) });

export function clusterRoutes(clusters: Clusters): Router {
  const r = Router();

  r.get('/clusters', requirePermission(Permission.read), async (_req, res) => {
    res.json(await clusters.list());
  });

  r.post('/clusters/:name/actions', requirePermission(Permission.act), async (req, res) => {
    if (!req.is('application/json')) throw new HttpError(415, 'UnsupportedMediaType', 'send the request body as application/json');
    const raw = req.get('idempotency-key');
    const key = raw === undefined ? undefined : parseOr(IdempotencyKeySchema, raw, 'Idempotency-Key header');
    const { name } = parseOr(ClusterParamsSchema, req.params, 'path');
    const body = parseOr(ClusterActionSchema, req.body);
    const caller = locals(res).caller!;
    const view = await clusters.act(name, body, caller.name, key);
    locals(res).log.info({ cluster: name, action: body.action }, 'cluster action');
    res.json(view);
  });

  return r;
}

/** For POST /v1/deliveries, once the request is valid and planned: a placement with a drained cluster is a 409. */
export function refuseDrained(clusters: Clusters): (request: DeliveryRequest) => Promise<void> {
  return async (request) => {
    const drained = await clusters.drainedIn(request.app.placement);
    if (drained.length === 0) return;
    const many = drained.length > 1;
    throw new HttpError(409, 'ClusterDrained', `cluster${many ? 's' : ''} ${drained.join(', ')} ${many ? 'are' : 'is'} drained: no new deliveries go there; leave ${many ? 'them' : 'it'} out of the placement, or undrain`, {
      details: drained.map((c) => ({ path: 'app.placement', message: `${c} is drained` })),
    });
  };
}

/** The OpenAPI paths of these routes (api/openapi.ts merges them). */
export function clusterOpenApiPaths(json: (name: string, d: string) => Record<string, unknown>, error: (d: string) => Record<string, unknown>, common: Record<string, unknown>, idempotencyParam: Record<string, unknown>): Record<string, unknown> {
  return {
    '/v1/clusters': {
      get: {
        operationId: 'listClusters',
        summary: "Each cluster's health (Unknown, Healthy, Unhealthy, Recovering), since when, the last probe, drain and failover state, and the fleet's failover settings",
        responses: { '200': json('ClusterList', 'The fleet as the monitor sees it'), ...common, '503': error('Temporal is not reachable') },
      },
    },
    '/v1/clusters/{name}/actions': {
      post: {
        operationId: 'clusterAction',
        summary: 'drain (no new deliveries, replicas moved away), undrain, failover, failback (role: sre)',
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }, idempotencyParam],
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/ClusterAction' } } } },
        responses: {
          '200': json('Cluster', 'The cluster after the action (a failover or failback has started)'),
          ...common,
          '404': error('No such cluster in the fleet'),
          '409': error('The action does not apply now (already drained, not failed over, a failover in progress, not Healthy yet); the message says why'),
          '415': error('The body is not application/json'),
        },
      },
    },
  };
}

const Health = z.enum(['Unknown', 'Healthy', 'Unhealthy', 'Recovering']);
const AppMove = z.object({ app: z.string(), phase: z.string(), message: z.string(), deliveryId: z.string().optional(), before: z.record(z.string(), z.number()).optional(), after: z.record(z.string(), z.number()).optional() });
export const ClusterSchema = z.object({
  name: z.string(),
  region: z.string(),
  health: Health,
  since: z.string(),
  consecutiveFailures: z.number(),
  consecutiveSuccesses: z.number(),
  lastProbe: z.object({ at: z.string(), ok: z.boolean(), latencyMs: z.number().optional(), message: z.string().optional() }).optional(),
  drained: z.boolean(),
  drainedBy: z.string().optional(),
  failover: z
    .object({ id: z.string(), reason: z.string(), phase: z.enum(['FailingOver', 'FailedOver', 'AwaitingApproval', 'FailingBack']), startedAt: z.string(), finishedAt: z.string().optional(), to: z.array(z.string()), apps: z.array(AppMove) })
    .optional(),
  lastFailback: z.object({ at: z.string(), apps: z.array(AppMove) }).optional(),
});
export const ClusterListSchema = z.object({
  settings: z.record(z.string(), z.unknown()),
  items: z.array(ClusterSchema),
  events: z.array(z.object({ at: z.string(), cluster: z.string(), what: z.string(), who: z.string(), comment: z.string().optional() })),
});
