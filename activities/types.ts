/**
 * The activity contract between workflows and workers. Workflows import these
 * types only (`import type`); the implementations live beside this file.
 *
 * Cluster activities run on the cluster's own task queue (ClusterInfo.taskQueue),
 * served by a worker that holds that cluster's client; `cluster` in each input
 * is checked against the worker's cluster. Hub activities run on the hub queue.
 */
import type { AppSpec, ClusterInfo, ClusterTarget } from '../model/index.ts';

export interface ApplyAppInput {
  cluster: string;
  app: AppSpec;
  target: ClusterTarget;
  deliveryId: string;
}

export interface ApplyAppResult {
  /** metadata.generation of the Deployment after the apply. */
  generation: number;
  /** `deployment.kubernetes.io/revision` before the apply; absent when the Deployment was created now. */
  previousRevision?: number;
  previousImage?: string;
  created: boolean;
}

export interface WaitForRolloutInput {
  cluster: string;
  namespace: string;
  name: string;
  /** Wait until status.observedGeneration reaches this. */
  generation: number;
  /** Fail with RolloutTimeout after this long (the activity heartbeats meanwhile). */
  timeoutMs: number;
  /** New pods Running but not Ready for this long count as a clear failure (RolloutFailed). */
  unreadyGraceMs: number;
}

export interface RolloutResult {
  revision: number;
  image: string;
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
}

export interface AppRef {
  cluster: string;
  namespace: string;
  name: string;
}

export interface AppClusterState {
  exists: boolean;
  revision?: number;
  image?: string;
  generation?: number;
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
}

export interface RollbackInput extends AppRef {
  /** Revision to go back to; absent means the Deployment did not exist before: delete what Flotilla created. */
  toRevision?: number;
  deliveryId: string;
}

export interface RollbackResult {
  deleted: boolean;
  /** Generation to wait for when not deleted. */
  generation?: number;
  image?: string;
}

export interface ClusterActivities {
  applyApp(input: ApplyAppInput): Promise<ApplyAppResult>;
  waitForRollout(input: WaitForRolloutInput): Promise<RolloutResult>;
  readAppState(input: AppRef): Promise<AppClusterState>;
  rollbackApp(input: RollbackInput): Promise<RollbackResult>;
}

export interface HubActivities {
  /** The fleet as workflows may see it: no credentials, no paths. */
  describeFleet(): Promise<ClusterInfo[]>;
}
