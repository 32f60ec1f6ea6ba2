/**
 * The express app, built from injected dependencies so tests drive it with
 * supertest (no port) against a real Temporal server, and main.ts only adds
 * config, a listening socket and shutdown.
 */
import express, { type Express } from 'express';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { toClusterInfo, type ClusterInfo, type Inventory } from '../model/index.ts';
import { toRegistryInfo, type RegistryInfo } from '../model/registry.ts';
import { HUB_TASK_QUEUE } from '../workflows/messages.ts';
import { authenticate, TokenStore, type TokensFile } from './auth.ts';
import { locals, requestContext } from './context.ts';
import { Deliveries } from './deliveries.ts';
import { errorHandler, isTemporalUnavailable, routeNotFound } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { Replications, replicationRoutes } from './replications.ts';
import { v1Routes } from './routes.ts';
import { Clusters, clusterRoutes, refuseDrained } from './clusters.ts';

export interface AppDeps {
  temporal: Client;
  /** The fleet, as ClusterInfo (what workflows see) or as the parsed inventory file. */
  inventory: readonly ClusterInfo[] | Inventory;
  tokens: TokensFile | TokenStore;
  logger: Logger;
  /** Task queue of the workflows; HUB_TASK_QUEUE unless a test runs its own. */
  taskQueue?: string;
  /** /readyz deadline for Temporal's answer. */
  readyDeadlineMs?: number;
  /** Namespaces no delivery may write into, besides every kube-* one (403). */
  protectedNamespaces?: readonly string[];
  /** Healthy versions kept per application (FLOTILLA_VERSION_HISTORY). */
  versionHistory?: number;
  /** The inventory's registries (POST /v1/replications); taken from `inventory` when that is the parsed file. */
  registries?: readonly RegistryInfo[];
  /** The fleet monitor's workflow id (default `fleet-monitor`; tests run their own). */
  fleetMonitorId?: string;
}

const fleetOf = (inv: AppDeps['inventory']): readonly ClusterInfo[] =>
  'clusters' in inv ? inv.clusters.map(toClusterInfo) : inv;

/** The largest request body accepted (see README: sources). */
export const BODY_LIMIT = '1536kb';

export function createApp(deps: AppDeps): Express {
  const fleet = Object.freeze([...fleetOf(deps.inventory)]);
  const store = deps.tokens instanceof TokenStore ? deps.tokens : new TokenStore(deps.tokens);
  const deliveries = new Deliveries({
    temporal: deps.temporal,
    fleet,
    taskQueue: deps.taskQueue ?? HUB_TASK_QUEUE,
    ...(deps.versionHistory !== undefined ? { versionHistory: deps.versionHistory } : {}),
  });
  const replications = new Replications({
    temporal: deps.temporal,
    registries: deps.registries ?? ('clusters' in deps.inventory ? deps.inventory.registries.map(toRegistryInfo) : []),
    taskQueue: deps.taskQueue ?? HUB_TASK_QUEUE,
  });
  const clusters = new Clusters({ temporal: deps.temporal, fleet, taskQueue: deps.taskQueue ?? HUB_TASK_QUEUE, ...(deps.fleetMonitorId ? { monitorId: deps.fleetMonitorId } : {}) });
  const openapi = openApiDocument();

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // statuses change under the same URL; no conditional GETs
  app.set('query parser', 'simple'); // flat query strings only: ?app=shop/web&phase=Healthy
  app.use(requestContext(deps.logger));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await deliveries.ready(deps.readyDeadlineMs ?? 2_000);
      res.json({ status: 'ready' });
    } catch (e) {
      // Probes come every few seconds: one short line, no stack, and the answer straight away.
      const reason = isTemporalUnavailable(e) ? 'Temporal did not answer in time' : (e as Error).message;
      const l = locals(res);
      l.log.warn({ reason }, 'not ready');
      res.status(503).json({
        error: 'NotReady',
        message: `Temporal is not reachable: ${reason}`,
        details: [],
        requestId: l.requestId,
      });
    }
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  // Authenticate before reading a body: an anonymous caller learns nothing from a parse error.
  app.use(
    '/v1',
    authenticate(store),
    // Large enough for a packaged Helm chart or a Kustomize overlay sent with the request, and under the 2 MiB that
    // Temporal accepts for one payload (the request travels as the delivery's input); larger charts belong in a registry.
    express.json({ limit: BODY_LIMIT, strict: true }),
    v1Routes(deliveries, fleet, deps.protectedNamespaces ?? [], refuseDrained(clusters)),
    replicationRoutes(replications),
    clusterRoutes(clusters),
  );

  app.use(routeNotFound);
  app.use(errorHandler);
  return app;
}
