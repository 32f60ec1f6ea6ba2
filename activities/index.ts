/**
 * Activity factories. The worker builds one set of cluster activities per
 * cluster it serves (each with that cluster's own clients) and registers it on
 * that cluster's task queue; hub activities go on the hub queue.
 *
 * Every cluster activity runs under the activity's cancellation signal: a
 * cancelled activity aborts its requests at once, so nothing it started lands
 * after the workflow has moved on (the workflow waits for the cancellation to
 * complete). Long ones heartbeat every second.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import type { Cluster } from '../model/inventory.ts';
import { FailureType } from '../model/reasons.ts';
import { createClusterClients, withCallSignal, type ClusterClients } from './kubernetes/clients.ts';
import { applyObjects, captureObjects, checkObjects, pruneObjects, restoreObjects } from './kubernetes/objects.ts';
import { readVersion, recordVersion } from './kubernetes/versions.ts';
import { readWorkloads, waitReady } from './kubernetes/wait.ts';
import type { ClusterActivities } from './types.ts';
import { createRoutingActivities } from './routing/activities.ts';

export type { ClusterActivities, HubActivities } from './types.ts';
export { createHubActivities } from './hub.ts';
export { createClusterClients, type ClusterClients } from './kubernetes/clients.ts';

export interface ClusterActivityDeps {
  cluster: Cluster;
  logger: Logger;
  /** The cluster's clients; built from `cluster.kubeconfig` when not given. */
  clients?: ClusterClients;
  /** Namespaces never written into, besides every kube-* one. */
  protectedNamespaces?: readonly string[];
  /** How often long activities heartbeat (ms). */
  heartbeatMs?: number;
}

export function createClusterActivities(deps: ClusterActivityDeps): ClusterActivities {
  const { cluster } = deps;
  const clients = deps.clients ?? createClusterClients(cluster);
  const base = deps.logger.child({ cluster: cluster.name });
  const protectedNamespaces = deps.protectedNamespaces ?? [];
  const heartbeatMs = deps.heartbeatMs ?? 1000;

  /**
   * Runs one activity: checks the input names this worker's cluster, runs the body under the
   * activity's cancellation signal, heartbeats while it runs, and reports a cancellation as one.
   */
  async function run<T>(input: { cluster: string; deliveryId?: string }, activity: string, body: (log: Logger, progress: (d: unknown) => void) => Promise<T>): Promise<T> {
    if (input.cluster !== cluster.name) {
      throw ApplicationFailure.create({
        type: FailureType.UnknownCluster,
        nonRetryable: true,
        message: `${activity} for cluster "${input.cluster}" reached the worker of cluster "${cluster.name}" (task queue mix-up)`,
      });
    }
    const ctx = Context.current();
    const log = base.child({ activity, ...(input.deliveryId ? { deliveryId: input.deliveryId } : {}) });
    let details: unknown = { cluster: cluster.name, activity };
    ctx.heartbeat(details);
    const beat = setInterval(() => ctx.heartbeat(details), heartbeatMs);
    try {
      return await withCallSignal(ctx.cancellationSignal, () => body(log, (d) => (details = d)));
    } catch (err) {
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason instanceof CancelledFailure ? ctx.cancellationSignal.reason : new CancelledFailure('cancelled');
      throw err;
    } finally {
      clearInterval(beat);
    }
  }

  return {
    captureObjects: (input) => run(input, 'captureObjects', () => captureObjects(clients, input)),
    applyObjects: (input) =>
      run(input, 'applyObjects', (log, progress) =>
        applyObjects(clients, { ...input, protectedNamespaces }, log, (done) => progress({ cluster: cluster.name, applied: done, of: input.objects.length })),
      ),
    waitReady: (input) =>
      run(input, 'waitReady', (log, progress) =>
        waitReady(
          clients,
          input.workloads,
          { timeoutMs: input.timeoutMs, graces: input.graces, notBefore: input.notBefore },
          // The progress goes out with the next heartbeat; the API shows it while the step runs.
          { heartbeat: progress, signal: Context.current().cancellationSignal },
          log,
        ),
      ),
    restoreObjects: (input) =>
      run(input, 'restoreObjects', (log, progress) =>
        restoreObjects(clients, input, log, (done) => progress({ cluster: cluster.name, restored: done })),
      ),
    readWorkloads: (input) => run(input, 'readWorkloads', () => readWorkloads(clients, input.refs)),
    checkObjects: (input) => run(input, 'checkObjects', () => checkObjects(clients, { ...input, protectedNamespaces })),
    pruneObjects: (input) => run(input, 'pruneObjects', (log) => pruneObjects(clients, input, log)),
    recordVersion: (input) => run(input, 'recordVersion', (log) => recordVersion(clients, input, log)),
    readVersion: (input) => run(input, 'readVersion', () => readVersion(clients, input)),
    ...createRoutingActivities(clients, run),
  };
}
