/**
 * What the engine benchmarks share: Flotilla's worker (in this process) on a
 * bench stack, a Temporal client, deliveries started through the application
 * workflow as the API starts them, and watchers that see, straight from each
 * API server (past the stack's proxy), when a Deployment changed and when it
 * had every replica ready.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';
import type { V1Deployment } from '@kubernetes/client-node';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../api/app.ts';
import { createLogger as createApiLogger } from '../../api/logger.ts';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { startUnderLock } from '../../api/lock.ts';
import { DeployRequestSchema, type DeliveryStatus, type DeployRequestInput, type Inventory } from '../../model/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { parseConfig } from '../../worker/config.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';
import { createLogger } from '../../worker/logger.ts';
import { startWorkers, WORKFLOW_PRELOAD_MODULES, WORKFLOWS_PATH, type WorkersHandle } from '../../worker/main.ts';
import { HUB_TASK_QUEUE } from '../../workflows/messages.ts';

export interface Engine {
  client: Client;
  inventory: Inventory;
  /** Clients straight to each API server (not through the stack's proxy). */
  direct: Map<string, ClusterClients>;
  central: string;
  deliver(app: Partial<DeployRequestInput['app']> & { namespace: string; image: string }, extra?: Partial<DeployRequestInput>): Promise<WorkflowHandle>;
  stop(): Promise<void>;
}

let runtimeInstalled = false;

/** Starts the worker in this process (or not, with `workers: false`) and a client. */
export async function startEngine(stack: StackInfo, opts: { workers?: boolean } = {}): Promise<Engine> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    runtimeInstalled = true;
  }
  const inventory = inventoryFromStack(stack);
  let workers: WorkersHandle | undefined;
  if (opts.workers !== false) {
    const config = parseConfig({ temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace }, inventoryPath: '(given)', logLevel: 'silent' });
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, preloadModules: WORKFLOW_PRELOAD_MODULES, logger: new DefaultLogger('ERROR') });
    workers = await startWorkers(config, { inventory, logger: createLogger('silent'), workflowBundle });
  }
  const connection = await Connection.connect({ address: stack.temporal.address });
  const client = new Client({ connection, namespace: stack.temporal.namespace });
  const direct = new Map(stack.clusters.map((c) => [c.name, createClusterClients({ name: c.name, kubeconfig: { path: c.directKubeconfig ?? c.kubeconfig } }, { requestTimeoutMs: 10_000 })]));
  const central = stack.registries.find((r) => r.region === 'central')!.host;
  return {
    client,
    inventory,
    direct,
    central,
    async deliver(app, extra = {}) {
      const request = DeployRequestSchema.parse({
        type: 'deploy',
        app: { name: 'web', replicas: 2, distribution: 'duplicated', placement: { clusters: stack.clusters.map((c) => c.name) }, ...app },
        onFailure: 'fail',
        ...extra,
      });
      const deliveryId = `delivery-bench-${randomUUID()}`;
      await startUnderLock(client, HUB_TASK_QUEUE, { deliveryId, request, requestedBy: 'bench', requestHash: 'bench' });
      return client.workflow.getHandle(deliveryId);
    },
    async stop() {
      await workers?.shutdown();
      await connection.close();
    },
  };
}

/** A bench-only bearer token for the API of `startApi` (role sre: may approve every gate). */
export const BENCH_TOKEN = 'bench-sre-token-0123456789abcdef';

/**
 * Flotilla's HTTP API in this process, on a free loopback port, over the engine's
 * Temporal client: what a person's `POST /v1/deliveries/{id}/actions` goes through.
 */
export async function startApi(engine: Engine): Promise<{ url: string; post: (path: string, body: unknown) => Promise<{ status: number; body: unknown }>; close: () => Promise<void> }> {
  const app = createApp({ temporal: engine.client, inventory: engine.inventory, tokens: { [BENCH_TOKEN]: { name: 'bench', role: 'sre' } }, logger: createApiLogger('silent') });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    async post(path, body) {
      const res = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: await res.json().catch(() => undefined) };
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

export interface RolloutTimes {
  /** When the Deployment was first seen at a generation above the one it had (the apply landed). */
  changedAt?: number;
  /** When it was first seen with that generation observed and every replica updated, ready and available. */
  readyAt?: number;
}

/**
 * Watches one Deployment in one cluster (straight to its API server) and
 * records, with this process's clock, when it changed and when it was ready.
 */
export async function watchRollout(c: ClusterClients, namespace: string, name = 'web'): Promise<{ times: RolloutTimes; stop: () => void }> {
  const times: RolloutTimes = {};
  let baseline: number | undefined;
  const onObject = (d: V1Deployment) => {
    const now = Date.now();
    const gen = d.metadata?.generation ?? 0;
    if (baseline === undefined) baseline = d.metadata?.uid ? gen : 0;
    if (gen > baseline && times.changedAt === undefined) times.changedAt = now;
    const s = d.status ?? {};
    const want = d.spec?.replicas ?? 1;
    if (times.changedAt !== undefined && times.readyAt === undefined && (s.observedGeneration ?? 0) >= gen && (s.updatedReplicas ?? 0) === want && (s.readyReplicas ?? 0) === want && (s.availableReplicas ?? 0) === want && (s.replicas ?? 0) === want) {
      times.readyAt = now;
    }
  };
  const existing = await c.apps.readNamespacedDeployment({ name, namespace }).catch(() => undefined);
  baseline = existing?.metadata?.generation ?? 0;
  const ctl = await c.watch.watch(
    `/apis/apps/v1/namespaces/${namespace}/deployments`,
    { fieldSelector: `metadata.name=${name}`, ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}) },
    (_type: string, obj: V1Deployment) => onObject(obj),
    () => undefined,
  );
  return { times, stop: () => ctl.abort() };
}

/** Event time of a history event in ms. */
export function eventMs(e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }): number {
  return Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
}

export async function result(h: WorkflowHandle): Promise<DeliveryStatus> {
  return (await h.result()) as DeliveryStatus;
}
