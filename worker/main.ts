/**
 * The Flotilla worker: config -> logger -> clients -> Temporal workers.
 *
 * One Worker per served cluster, on that cluster's own task queue, with only
 * that cluster's activities (and clients); and, in hub mode, one Worker on
 * HUB_TASK_QUEUE that runs the workflows and the hub activities. Agent mode
 * (FLOTILLA_CLUSTERS=cloud-hk FLOTILLA_HUB=false) runs next to a private
 * cluster and only polls outward.
 *
 *   node worker/main.ts            (or: npm run worker)
 */
import { fileURLToPath } from 'node:url';
import {
  bundleWorkflowCode,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundle,
} from '@temporalio/worker';
import type { Logger } from 'pino';
import { createClusterActivities, createHubActivities } from '../activities/index.ts';
import { createAnalysisActivities, loadAnalysisConfig, type AnalysisConfig } from '../activities/analysis/index.ts';
import { createRegistryActivities, loadCredentials, RegistryPool, type RegistryCredentials } from '../activities/registry/index.ts';
import { createClusterClients, type ClusterClients } from '../activities/kubernetes/clients.ts';
import { createHarborActivities } from '../activities/harbor/index.ts';
import { createFleetActivities, createProbeActivities } from '../activities/fleet.ts';
import { steeringFromEnv, type TrafficSteering } from '../activities/steering.ts';
import { ensureFleetMonitorAt } from './monitor.ts';
import { toClusterInfo, type Cluster, type Inventory } from '../model/inventory.ts';
import { HUB_TASK_QUEUE } from '../workflows/messages.ts';
import { ConfigError, loadConfig, type WorkerConfig } from './config.ts';
import { loadInventory } from './inventory.ts';
import { createLogger, temporalLogger } from './logger.ts';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/**
 * Libraries the workflow code imports (through model/) that keep no state of a workflow's own:
 * evaluated once per workflow thread and shared. In Temporal's reusable V8 context every other
 * module's top level runs again for each workflow the worker holds (its isolation): memory and CPU
 * for each workflow created or replayed. With these shared a held workflow costs ~1.6 MiB of heap
 * after a collection (bench/paused-canaries; about a quarter less than without), most of it our own
 * model/ modules' top levels (zod schemas, a CEL environment). Shared modules are deep-frozen by the
 * SDK; nothing in workflows/ configures them.
 */
export const WORKFLOW_PRELOAD_MODULES = ['zod', 'yaml', '@marcbachmann/cel-js', 'jsonpath-rfc9535/parser', 'rfc6902'];

export interface ServedQueue {
  taskQueue: string;
  /** "hub" or the cluster's name. */
  serves: string;
}

export interface WorkersHandle {
  readonly queues: readonly ServedQueue[];
  /** Resolves when every worker has stopped (rejects if one failed). */
  readonly done: Promise<void>;
  /** Stops polling, lets running tasks finish (up to the grace time), closes the connection. Idempotent. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** The inventory itself, instead of reading config.inventoryPath. */
  inventory?: Inventory;
  /** Clients by cluster name, instead of building them from the kubeconfigs. */
  clients?: Record<string, ClusterClients>;
  /** A workflow bundle built beforehand (tests build one and share it). */
  workflowBundle?: WorkflowBundle;
  /** How the hub resolves image tags to digests (the registry; tests may give another). */
  resolveDigest?: (ref: string) => Promise<string>;
  /** Prometheus servers and web-provider settings for analyses (default: loadAnalysisConfig() from the environment). */
  analysis?: AnalysisConfig;
  /** The traffic-steering hook called on failover and failback (default: FLOTILLA_TRAFFIC_STEERING's webhook, else none). */
  steering?: TrafficSteering;
  /** Start the fleet monitor once the workers poll (hub mode; the entry point does, unless FLOTILLA_FLEET_MONITOR=false). */
  fleetMonitor?: boolean;
}

/** The clusters this worker serves: every one, or those FLOTILLA_CLUSTERS names (each must exist). */
export function servedClusters(config: WorkerConfig, inventory: Inventory): Cluster[] {
  if (!config.clusters) return inventory.clusters;
  const byName = new Map(inventory.clusters.map((c) => [c.name, c]));
  const unknown = config.clusters.filter((n) => !byName.has(n));
  if (unknown.length > 0) {
    throw new ConfigError(
      `FLOTILLA_CLUSTERS (clusters): ${unknown.map((n) => `"${n}"`).join(', ')} not in the inventory (has: ${inventory.clusters.map((c) => c.name).join(', ')})`,
    );
  }
  return config.clusters.map((n) => byName.get(n)!);
}

export async function startWorkers(config: WorkerConfig, opts: StartOptions = {}): Promise<WorkersHandle> {
  const log = opts.logger ?? createLogger(config.logLevel);
  const inventory = opts.inventory ?? loadInventory(config.inventoryPath);
  const clusters = servedClusters(config, inventory);
  // Clients first: a bad kubeconfig stops the worker before it takes any task.
  const clients = new Map(clusters.map((c) => [c.name, opts.clients?.[c.name] ?? createClusterClients(c)]));

  // Bundled once, shared by every worker that runs workflows (the webpack report is only worth a warning).
  const workflowBundle = config.hub
    ? (opts.workflowBundle ??
      (await bundleWorkflowCode({
        workflowsPath: WORKFLOWS_PATH,
        preloadModules: WORKFLOW_PRELOAD_MODULES,
        logger: temporalLogger(log.child({ component: 'bundler' }, { level: 'warn' })),
      })))
    : undefined;

  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const workers: { worker: Worker; queue: ServedQueue }[] = [];
  try {
    for (const c of clusters) {
      const taskQueue = toClusterInfo(c).taskQueue;
      const worker = await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue,
        activities: {
          ...createClusterActivities({
            cluster: c,
            logger: log,
            clients: clients.get(c.name)!,
            protectedNamespaces: config.protectedNamespaces,
          }),
          // The fleet monitor's probe of this cluster's API server.
          ...createProbeActivities(c.name, clients.get(c.name)!),
        },
        shutdownGraceTime: config.shutdownGraceMs,
      });
      workers.push({ worker, queue: { taskQueue, serves: c.name } });
    }
    if (workflowBundle) {
      // Registry credentials stay on this worker: read here, never passed to a workflow.
      const credentials: RegistryCredentials = config.registryCredentialsPath ? loadCredentials(config.registryCredentialsPath) : {};
      const registryLog = log.child({ component: 'registry' });
      const pool = new RegistryPool(inventory.registries, credentials, registryLog);
      const worker = await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue: HUB_TASK_QUEUE,
        workflowBundle,
        activities: {
          ...createHubActivities({ inventory, credentials, logger: registryLog, pool, ...(opts.resolveDigest ? { resolveDigest: opts.resolveDigest } : {}) }),
          ...createRegistryActivities({ registries: inventory.registries, credentials, logger: registryLog, pool }),
          ...createAnalysisActivities({ config: opts.analysis ?? loadAnalysisConfig(), logger: log.child({ component: 'analysis' }) }),
          // Replication through a Harbor's own policies, for images whose source registry is a Harbor.
          ...createHarborActivities({ registries: inventory.registries, credentials, logger: registryLog }),
          // The fleet monitor's and failovers' hub side (application records, moves, the traffic hook).
          ...createFleetActivities({ inventory, logger: log, steering: opts.steering ?? steeringFromEnv(process.env, log) }),
        },
        shutdownGraceTime: config.shutdownGraceMs,
        // A killed worker's workflows move to the next worker after this, not after the default 10 s.
        stickyQueueScheduleToStartTimeout: '2s',
        ...(config.maxCachedWorkflows !== undefined ? { maxCachedWorkflows: config.maxCachedWorkflows } : {}),
      });
      workers.push({ worker, queue: { taskQueue: HUB_TASK_QUEUE, serves: 'hub' } });
    }
  } catch (err) {
    await connection.close();
    throw err;
  }

  const queues = workers.map((w) => w.queue);
  if (workflowBundle && opts.fleetMonitor) {
    // Idempotent (a fixed id): the monitor already running keeps its state.
    ensureFleetMonitorAt(config.temporal.address, config.temporal.namespace, HUB_TASK_QUEUE).then(
      (m) => log.info({ runId: m.runId }, m.started ? 'fleet monitor started' : 'fleet monitor already running'),
      (err: unknown) => log.error({ err }, 'cannot start the fleet monitor'),
    );
  }
  log.info(
    { namespace: config.temporal.namespace, address: config.temporal.address, queues },
    'workers starting',
  );

  const stopAll = () => {
    for (const { worker } of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  const runs = workers.map(({ worker, queue }) =>
    worker.run().catch((err: unknown) => {
      // One worker failing takes the others down with it: a half-served fleet is worse than a restart.
      log.error({ err, taskQueue: queue.taskQueue }, 'worker failed');
      stopAll();
      throw err;
    }),
  );
  let closed: Promise<void> | undefined;
  const done = Promise.allSettled(runs).then(async (results) => {
    closed ??= connection.close();
    await closed;
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    log.info({ queues }, 'workers stopped');
  });
  // Callers await `done` or `shutdown()`; an unobserved rejection must not crash the process on its own.
  done.catch(() => undefined);

  return {
    queues,
    done,
    async shutdown() {
      stopAll();
      await done;
    },
  };
}

/** Entry point: reads the environment, runs until SIGINT/SIGTERM, then shuts down gracefully. */
async function main(): Promise<void> {
  let config: WorkerConfig;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    process.stderr.write(`flotilla worker: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  // We handle the signals ourselves, so the shutdown is ours to log and to bound.
  Runtime.install({ logger: temporalLogger(log.child({ component: 'temporal' })), shutdownSignals: [] });
  let handle: WorkersHandle;
  try {
    handle = await startWorkers(config, { logger: log, fleetMonitor: process.env.FLOTILLA_FLEET_MONITOR !== 'false' });
  } catch (err) {
    log.fatal({ err }, 'cannot start the worker');
    process.exitCode = err instanceof ConfigError ? 2 : 1;
    return;
  }
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    handle.shutdown().catch(() => undefined);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await handle.done;
  } catch (err) {
    log.fatal({ err }, 'worker stopped with an error');
    process.exitCode = 1;
  }
}

if (import.meta.main) await main();
