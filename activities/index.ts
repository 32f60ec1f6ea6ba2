/**
 * Activity factories. The worker builds one set of cluster activities per
 * cluster it serves (each with that cluster's own clients) and registers it on
 * that cluster's task queue; hub activities go on the hub queue.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import type { Cluster, Inventory } from '../model/inventory.ts';
import { FailureType } from '../model/reasons.ts';
import { describeFleet } from './hub.ts';
import { applyApp } from './kubernetes/apply.ts';
import { createClusterClients, type ClusterClients } from './kubernetes/clients.ts';
import { rollbackApp } from './kubernetes/rollback.ts';
import { readAppState, waitForRollout, type RolloutContext } from './kubernetes/rollout.ts';
import type { ClusterActivities, HubActivities } from './types.ts';

export type { ClusterActivities, HubActivities } from './types.ts';
export { createClusterClients, type ClusterClients } from './kubernetes/clients.ts';

export interface ClusterActivityDeps {
  cluster: Cluster;
  logger: Logger;
  /** The cluster's clients; built from `cluster.kubeconfig` when not given. */
  clients?: ClusterClients;
}

/** The running activity's heartbeat and cancellable sleep. */
function temporalContext(): RolloutContext {
  const ctx = Context.current();
  return { heartbeat: (d) => ctx.heartbeat(d), sleep: (ms) => ctx.sleep(ms) };
}

export function createClusterActivities(deps: ClusterActivityDeps): ClusterActivities {
  const { cluster } = deps;
  const clients = deps.clients ?? createClusterClients(cluster);
  const base = deps.logger.child({ cluster: cluster.name });

  /** Each input names its cluster; a task that reached the wrong worker must not touch this cluster. */
  const check = (input: { cluster: string }, activity: string): Logger => {
    if (input.cluster !== cluster.name) {
      throw ApplicationFailure.create({
        type: FailureType.UnknownCluster,
        nonRetryable: true,
        message: `${activity} for cluster "${input.cluster}" reached the worker of cluster "${cluster.name}" (task queue mix-up)`,
      });
    }
    return base.child({ activity, ...('deliveryId' in input ? { deliveryId: input.deliveryId } : {}) });
  };

  return {
    async applyApp(input) {
      return applyApp(clients, input, check(input, 'applyApp'));
    },
    async waitForRollout(input) {
      return waitForRollout(clients, input, temporalContext(), check(input, 'waitForRollout'));
    },
    async readAppState(input) {
      check(input, 'readAppState');
      return readAppState(clients, input);
    },
    async rollbackApp(input) {
      return rollbackApp(clients, input, check(input, 'rollbackApp'));
    },
  };
}

export interface HubActivityDeps {
  inventory: Inventory;
}

export function createHubActivities(deps: HubActivityDeps): HubActivities {
  const fleet = describeFleet(deps.inventory);
  return {
    async describeFleet() {
      return fleet;
    },
  };
}
