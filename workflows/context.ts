/**
 * What the interpreter and its step modules share while one delivery runs:
 * the status, the prepared plan, what each touched cluster held before, and
 * each cluster's activities on its own task queue.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { ClusterActivities } from '../activities/types.ts';
import type { DeployRequest, ObjectRef, Owner, PreparedDelivery, TouchedCluster } from '../model/index.ts';
import { durationMs } from '../model/index.ts';
import type { DeliveryState } from './deliveryState.ts';
import type { CanaryCluster } from './steps/canary.ts';
import type { BlueGreenCluster } from './steps/bluegreen.ts';
import { clusterRead, clusterStep, rolloutWait } from './options.ts';

export interface ClusterProxies {
  /** capture, apply, restore: heartbeating, cancellation waits for the activity to stop. */
  step: ClusterActivities;
  /** waitReady: long, heartbeating. */
  wait: ClusterActivities;
  /** read-back: short. */
  read: ClusterActivities;
}

export interface Timing {
  unreachableMs: number;
  rolloutMs: number;
  graces: { unschedulableMs: number; imagePullMs: number; unreadyMs: number };
}

export class RunContext {
  readonly state: DeliveryState;
  readonly request: DeployRequest;
  readonly owner: Owner;
  readonly deliveryId: string;
  readonly timing: Timing;
  prepared: PreparedDelivery | undefined;
  /** Clusters this delivery has touched (counted before their first apply is scheduled), with what stood there. */
  readonly touched = new Map<string, TouchedCluster>();
  /** The generation each applied workload reached, per cluster (what the wait step waits for). */
  readonly generations = new Map<string, { ref: ObjectRef; generation: number }[]>();
  /** Each cluster's task queue (known from the fleet before the plan is). */
  readonly queues = new Map<string, string>();
  readonly #proxies = new Map<string, ClusterProxies>();
  /** A canary's decisions that steps wait on: promotions so far (each ends the pause it finds), a full promotion. */
  readonly canary: { promotions: number; full: boolean; lastPromoter?: string } = { promotions: 0, full: false };
  /** Each cluster's canary once its `canary` step ran: target, routing, weight. */
  readonly canaries = new Map<string, CanaryCluster>();
  /** Each cluster's blue-green once its `preview` step ran. */
  readonly blueGreens = new Map<string, BlueGreenCluster>();

  constructor(state: DeliveryState, request: DeployRequest, deliveryId: string) {
    this.state = state;
    this.request = request;
    this.owner = { namespace: request.app.namespace, name: request.app.name };
    this.deliveryId = deliveryId;
    this.timing = {
      unreachableMs: durationMs(request.unreachableTimeout),
      rolloutMs: durationMs(request.rolloutTimeout),
      graces: {
        unschedulableMs: durationMs(request.grace.unschedulable),
        imagePullMs: durationMs(request.grace.imagePull),
        unreadyMs: durationMs(request.grace.unready),
      },
    };
  }

  plan(): PreparedDelivery {
    if (!this.prepared) throw new Error('the delivery is not planned yet');
    return this.prepared;
  }

  acts(cluster: string): ClusterProxies {
    const taskQueue = this.queues.get(cluster) ?? this.plan().clusters[cluster]!.taskQueue;
    let p = this.#proxies.get(taskQueue);
    if (!p) {
      const { unreachableMs, rolloutMs } = this.timing;
      p = {
        step: proxyActivities<ClusterActivities>({ ...clusterStep(unreachableMs), taskQueue }),
        wait: proxyActivities<ClusterActivities>({ ...rolloutWait(rolloutMs, unreachableMs), taskQueue }),
        read: proxyActivities<ClusterActivities>({ ...clusterRead, taskQueue }),
      };
      this.#proxies.set(taskQueue, p);
    }
    return p;
  }
}
