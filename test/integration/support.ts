/**
 * Shared helpers of the integration tests: the stack's inventory on queues of
 * this test run's own, clients to read back what each cluster runs, node
 * cordoning (a cluster with no room for new pods), polling, and a worker in a process
 * of its own (to be killed with SIGKILL).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { openSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { withRegistry, type Inventory } from '../../model/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';

/** The stack's inventory with task queues unique to this run, so pollers of other files cannot answer. */
export function runInventory(stack: StackInfo, run = randomUUID().slice(0, 8)): Inventory {
  const inv = inventoryFromStack(stack);
  return { ...inv, clusters: inv.clusters.map((c) => ({ ...c, taskQueue: `flotilla-cluster-${c.name}-${run}` })) };
}

/**
 * The reference a cluster runs for an image a delivery pinned (`<central>/<repo>@sha256:...`): the same
 * repository and digest from the cluster's regional registry (the inventory's `mirror`) when it has one, as
 * every delivery deploys it unless the request names another registry.
 */
export function expectedRef(inventory: Pick<Inventory, 'clusters'>, cluster: string, pinned: string): string {
  const c = inventory.clusters.find((x) => x.name === cluster);
  if (!c) throw new Error(`expectedRef: no cluster "${cluster}" in the inventory`);
  if (!pinned.includes('@sha256:')) throw new Error(`expectedRef: ${pinned} is not pinned by digest (clusters run pinned references)`);
  return c.mirror ? withRegistry(pinned, c.mirror) : pinned;
}

/** expectedRef for every cluster named: `{cluster: reference}`. */
export function expectedRefs(inventory: Pick<Inventory, 'clusters'>, clusters: readonly string[], pinned: string): Record<string, string> {
  return Object.fromEntries(clusters.map((c) => [c, expectedRef(inventory, c, pinned)]));
}

/**
 * An expectation keyed by cluster (`{beijing: {stable: {image, ...}, ...}, ...}`) with every pinned
 * `image` inside each cluster's entry moved to that cluster's regional registry (expectedRef): one
 * pinned central reference in the test, the reference each cluster really runs in the comparison.
 */
export function atMirrors<T>(inventory: Pick<Inventory, 'clusters'>, byCluster: Record<string, T>): Record<string, T> {
  const walk = (cluster: string, v: unknown): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(cluster, x));
    if (!v || typeof v !== 'object') return v;
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, k === 'image' && typeof x === 'string' && x.includes('@sha256:') ? expectedRef(inventory, cluster, x) : walk(cluster, x)]),
    );
  };
  return Object.fromEntries(Object.entries(byCluster).map(([c, v]) => [c, walk(c, v) as T]));
}

export function clusterClients(inventory: Inventory): Map<string, ClusterClients> {
  return new Map(inventory.clusters.map((c) => [c.name, createClusterClients(c, { requestTimeoutMs: 5_000 })]));
}

export interface DeploymentView {
  image?: string;
  replicas?: number;
  ready: number;
  generation?: number;
}

/** Each cluster's Deployment `name` in `namespace`, or null where there is none. */
export async function deploymentsIn(
  clients: Map<string, ClusterClients>,
  namespace: string,
  name = 'web',
): Promise<Record<string, DeploymentView | null>> {
  const out: Record<string, DeploymentView | null> = {};
  for (const [cluster, c] of clients) {
    try {
      const d = await c.apps.readNamespacedDeployment({ name, namespace });
      out[cluster] = {
        image: d.spec?.template.spec?.containers[0]?.image,
        replicas: d.spec?.replicas,
        ready: d.status?.readyReplicas ?? 0,
        generation: d.metadata?.generation,
      };
    } catch (e) {
      if ((e as { code?: number }).code === 404) out[cluster] = null;
      else throw e;
    }
  }
  return out;
}

/** Marks every node of a cluster (un)schedulable: cordoned, new pods stay Pending. */
export async function cordon(c: ClusterClients, unschedulable: boolean): Promise<void> {
  const nodes = await c.core.listNode();
  for (const n of nodes.items) {
    await c.core.patchNode(
      { name: n.metadata!.name!, body: { spec: { unschedulable } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch), // only spec.unschedulable changes
    );
  }
}

export async function deleteNamespaces(clients: Map<string, ClusterClients>, namespaces: Iterable<string>): Promise<void> {
  await Promise.all(
    [...namespaces].flatMap((name) => [...clients.values()].map((c) => c.core.deleteNamespace({ name }).catch(() => undefined))),
  );
}

export async function until<T>(read: () => Promise<T>, pred: (v: T) => boolean, what: string, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  while (Date.now() < end) {
    try {
      last = await read();
      if (pred(last)) return last;
    } catch (e) {
      lastErr = e;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what}: not reached in ${timeoutMs} ms; last: ${JSON.stringify(last)}${lastErr ? `; last error: ${String(lastErr)}` : ''}`);
}

/**
 * Until `check` gives a value (undefined: not yet; a throw counts as not yet), polling every 250 ms; after
 * `timeoutMs`, an error naming `what` and the last error if the last look threw.
 */
export async function eventually<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000}s${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The digest a registry gives an image reference, read by skopeo (the real tool, not ours). */
export async function digestOf(ref: string): Promise<string> {
  const { stdout } = await promisify(execFile)('skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${ref}`]);
  return stdout.trim();
}

/**
 * The real worker (worker/main.ts) in a process of its own, serving the hub queue and every cluster
 * queue of the inventory file, its output in `logFile`. Its Temporal identity is `<pid>@<hostname>`.
 */
export function spawnWorker(stack: StackInfo, inventoryFile: string, logFile: string): ChildProcess {
  const log = openSync(logFile, 'w');
  return spawn(process.execPath, [path.resolve(import.meta.dirname, '../../worker/main.ts')], {
    env: {
      ...process.env,
      FLOTILLA_TEMPORAL_ADDRESS: stack.temporal.address,
      FLOTILLA_TEMPORAL_NAMESPACE: stack.temporal.namespace,
      FLOTILLA_INVENTORY: inventoryFile,
      FLOTILLA_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', log, log],
  });
}

/** Sends `signal` to a child process and resolves once it has exited (at once when it already has). */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await exited;
}
