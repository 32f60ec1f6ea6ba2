/**
 * Activities of the fleet monitor and its failovers.
 *
 * `probeCluster` runs on each cluster's own task queue (the worker that holds the cluster's
 * client) and asks the API server's `/readyz` with a short bound: a refused connection, a
 * non-2xx answer or no answer in time is a failure. The worker may live on the hub side while
 * the API server is gone, so the probe itself must fail fast; the workflow gives it no retries.
 *
 * The hub activities read and start workflows through the worker's own Temporal client
 * (Context.current().client): the application records (who runs where), a delivery under an
 * application's lock, its outcome, and the verdict sent to deliveries in flight. `steerTraffic`
 * calls the traffic-steering hook (activities/steering.ts).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { withCallSignal, type ClusterClients } from './kubernetes/clients.ts';
import { startUnderLock, lockHolder } from '../api/lock.ts';
import { DeliveryRequestSchema, defaultFailoverSettings, resolvePlacement, toClusterInfo, type AppSpec, type ClusterInfo, type DeliveryStatus, type FailoverSettings, type Inventory } from '../model/index.ts';
import { APPLICATION_WORKFLOW, DELIVERY_WORKFLOW, appStateQuery, applicationWorkflowId, type AppState } from '../workflows/messages.ts';
import { clusterVerdictSignal } from '../workflows/clusterVerdict.ts';
import { FAILOVER_REQUESTER, type PlacedApp } from '../workflows/fleetMessages.ts';
import { noSteering, type SteeringEvent, type TrafficSteering } from './steering.ts';

export interface ProbeInput {
  cluster: string;
  timeoutMs: number;
}
export interface ProbeOutput {
  ok: boolean;
  latencyMs: number;
  message?: string;
}

export interface ProbeActivities {
  probeCluster(input: ProbeInput): Promise<ProbeOutput>;
}

/** The probe of one cluster's API server, for that cluster's worker. */
export function createProbeActivities(clusterName: string, clients: Pick<ClusterClients, 'rest'>): ProbeActivities {
  return {
    async probeCluster(input) {
      if (input.cluster !== clusterName) throw ApplicationFailure.nonRetryable(`probe for "${input.cluster}" reached the worker of "${clusterName}"`, 'UnknownCluster');
      const started = performance.now();
      const signal = AbortSignal.any([AbortSignal.timeout(input.timeoutMs), Context.current().cancellationSignal]);
      try {
        await withCallSignal(signal, () => clients.rest('GET', '/readyz'));
        return { ok: true, latencyMs: Math.round(performance.now() - started) };
      } catch (err) {
        const latencyMs = Math.round(performance.now() - started);
        // /readyz answers the text "ok", which the JSON client cannot parse: a 2xx it was.
        if (err instanceof SyntaxError) return { ok: true, latencyMs };
        const e = err as { code?: number; message?: string; name?: string };
        const message = signal.aborted ? `no answer in ${input.timeoutMs} ms` : typeof e.code === 'number' ? `HTTP ${e.code}` : (e.message ?? String(err)).slice(0, 200);
        return { ok: false, latencyMs, message };
      }
    },
  };
}

export interface FleetActivities {
  /** The fleet (no credentials) and its failover settings, as the inventory has them now. */
  fleetSettings(): Promise<{ clusters: ClusterInfo[]; settings: FailoverSettings }>;
  /** Every application whose record or placement puts it on `cluster`. */
  placedApplications(input: { cluster: string }): Promise<PlacedApp[]>;
  /** One application's spec and latest pinned image (undefined when it has no record). */
  readApplication(input: { namespace: string; name: string }): Promise<PlacedApp | undefined>;
  /**
   * Starts a delivery of `spec` under the application's lock (type deploy, requested by flotilla-failover).
   * While another delivery holds the lock it is retried (heartbeating) until `lockWaitMs`, then fails
   * DeliveryInProgress. A delivery id already used answers as started (a retried activity).
   */
  startMoveDelivery(input: { deliveryId: string; spec: AppSpec; rolloutTimeout: string; lockWaitMs: number; comment: string }): Promise<{ deliveryId: string }>;
  /** Waits (heartbeating) until the delivery ends; its phase and message. */
  awaitDelivery(input: { deliveryId: string }): Promise<{ phase: string; message: string }>;
  /** Tells every delivery in flight that the monitor declared `cluster` failed (or healthy again). */
  tellDeliveries(input: { cluster: string; failed: boolean; reason: string }): Promise<number>;
  /** The traffic-steering hook, on failover and failback. */
  steerTraffic(input: SteeringEvent): Promise<void>;
}

export interface FleetDeps {
  inventory: Inventory | (() => Inventory);
  logger: Logger;
  steering?: TrafficSteering;
  /** The Temporal client (default: the worker's, from the activity context). */
  client?: Client;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createFleetActivities(deps: FleetDeps): FleetActivities {
  const inv = () => (typeof deps.inventory === 'function' ? deps.inventory() : deps.inventory);
  const client = () => deps.client ?? Context.current().client;
  const steering = deps.steering ?? noSteering;
  const log = deps.logger.child({ component: 'fleet' });
  return {
    async fleetSettings() {
      const i = inv();
      return { clusters: i.clusters.map(toClusterInfo), settings: i.failover ?? defaultFailoverSettings() };
    },

    async placedApplications({ cluster }) {
      const c = client();
      const fleet = inv().clusters.map(toClusterInfo);
      const out: PlacedApp[] = [];
      // Applications served by this hub's queue (one fleet per Temporal namespace and hub queue).
      const queue = Context.current().info.taskQueue;
      for await (const w of c.workflow.list({ query: `WorkflowType = '${APPLICATION_WORKFLOW}' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'` })) {
        Context.current().heartbeat();
        let s: AppState;
        try {
          s = await c.workflow.getHandle(w.workflowId).query(appStateQuery);
        } catch {
          continue; // closed meanwhile
        }
        if (!s.spec) continue;
        let placed = Boolean(s.clusters[cluster]);
        try {
          placed ||= resolvePlacement(s.spec.placement, fleet).some((x) => x.name === cluster);
        } catch {
          /* a placement that no longer resolves: only its record counts */
        }
        if (!placed) continue;
        out.push({ namespace: s.namespace, name: s.name, spec: s.spec, ...(s.versions[0]?.image ? { image: s.versions[0].image } : {}), ...(s.activeDelivery ? { activeDelivery: s.activeDelivery } : {}) });
      }
      return out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
    },

    async readApplication({ namespace, name }) {
      let s: AppState;
      try {
        s = await client().workflow.getHandle(applicationWorkflowId(namespace, name)).query(appStateQuery);
      } catch {
        return undefined;
      }
      if (!s.spec) return undefined;
      return { namespace, name, spec: s.spec, ...(s.versions[0]?.image ? { image: s.versions[0].image } : {}), ...(s.activeDelivery ? { activeDelivery: s.activeDelivery } : {}) };
    },

    async startMoveDelivery({ deliveryId, spec, rolloutTimeout, lockWaitMs, comment }) {
      const c = client();
      const ctx = Context.current();
      const request = DeliveryRequestSchema.parse({ type: 'deploy', app: spec, onFailure: 'fail', rolloutTimeout, unreachableTimeout: '1m' });
      const taskQueue = ctx.info.taskQueue;
      const end = Date.now() + lockWaitMs;
      for (;;) {
        ctx.heartbeat();
        try {
          await startUnderLock(c, taskQueue, { deliveryId, request, requestedBy: FAILOVER_REQUESTER, requestHash: `failover:${deliveryId}`, comment });
          return { deliveryId };
        } catch (e) {
          const holder = lockHolder(e);
          const cause = (e as { cause?: { type?: string; message?: string } }).cause;
          // Started by an earlier attempt of this activity and since finished: the id is taken by it.
          if (cause?.type === 'DeliveryNotStarted' && /already|exists/i.test(cause.message ?? '')) return { deliveryId };
          if (holder === undefined) throw e;
          if (holder === deliveryId) return { deliveryId };
          if (ctx.cancellationSignal.aborted) throw e;
          if (Date.now() > end) {
            throw ApplicationFailure.create({ type: 'DeliveryInProgress', nonRetryable: true, message: `delivery ${holder} held the lock for longer than ${Math.round(lockWaitMs / 1000)}s` });
          }
          await Promise.race([sleep(1000), ctx.cancelled]);
        }
      }
    },

    async awaitDelivery({ deliveryId }) {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 1000);
      try {
        // Cancellable (a worker shutting down, the failover cancelled): the wait ends, the delivery goes on.
        const s = (await Promise.race([client().workflow.getHandle(deliveryId).result(), ctx.cancelled])) as DeliveryStatus;
        return { phase: s.phase, message: s.message };
      } catch (e) {
        if (ctx.cancellationSignal.aborted) throw e;
        return { phase: 'Degraded', message: (e as Error).message };
      } finally {
        clearInterval(beat);
      }
    },

    async tellDeliveries({ cluster, failed, reason }) {
      const c = client();
      let n = 0;
      const queue = Context.current().info.taskQueue;
      for await (const w of c.workflow.list({ query: `WorkflowType = '${DELIVERY_WORKFLOW}' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'` })) {
        try {
          await c.workflow.getHandle(w.workflowId).signal(clusterVerdictSignal, { cluster, failed, reason });
          n++;
        } catch {
          /* ended meanwhile */
        }
      }
      log.info({ cluster, failed, deliveries: n }, 'told deliveries in flight');
      return n;
    },

    async steerTraffic(event) {
      await steering.steer(event);
    },
  };
}

/** The clusters an application's spec places it on, for messages. */
export const placedOn = (spec: AppSpec, fleet: ClusterInfo[]): string[] => resolvePlacement(spec.placement, fleet).map((c) => c.name);
