/**
 * The activity contract between workflows and workers. Workflows import these
 * types only (`import type`); the implementations live beside this file.
 *
 * Cluster activities are generic: apply these objects, wait for these
 * workloads, capture and restore what stood, read what runs. An agent beside a
 * private cluster needs no upgrade when the application schema grows: the hub
 * renders. Each runs on the cluster's own task queue, served by a worker that
 * holds that cluster's client; `cluster` in each input is checked against the
 * worker's cluster. Hub activities run on the hub queue.
 */
import type { ClusterInfo, DeliveryRequest } from '../model/index.ts';
import type { RoutingActivities } from './routing/types.ts';
import type { CapturedObject, KubeObject, ObjectRef, Owner } from '../model/objects.ts';
import type { ObjectInventory, PreparedDelivery } from '../model/steps.ts';

export interface CaptureInput {
  cluster: string;
  owner: Owner;
  refs: ObjectRef[];
  /** Objects the delivery will prune: captured when they are this application's, else left out. */
  prune?: ObjectRef[];
  /** Take over objects not created by Flotilla for this application (else: NotOwned). */
  adopt: boolean;
}

export interface ApplyInput {
  cluster: string;
  owner: Owner;
  deliveryId: string;
  objects: KubeObject[];
  adopt: boolean;
}

export interface AppliedRef {
  ref: ObjectRef;
  generation?: number;
  created: boolean;
}

export interface WaitInput {
  cluster: string;
  workloads: { ref: ObjectRef; generation: number }[];
  /** Fail with RolloutTimeout after this long. */
  timeoutMs: number;
  graces: { unschedulableMs: number; imagePullMs: number; unreadyMs: number };
  /** No grace clock starts before this (the step's start, from the workflow's clock; ms since the epoch). */
  notBefore: number;
}

/** What a workload runs, read back from the API server. */
export interface WorkloadState {
  ref: ObjectRef;
  exists: boolean;
  image?: string;
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
  availableReplicas?: number;
  revision?: number;
  generation?: number;
  /** The delivery that last applied it. */
  deliveryId?: string;
  /** A Deployment's current ReplicaSet's pod-template-hash (readWorkloads only). */
  podTemplateHash?: string;
}

export interface RestoreInput {
  cluster: string;
  owner: Owner;
  deliveryId: string;
  /** Objects to apply as they stood before the delivery. */
  put: KubeObject[];
  /** Objects the delivery created: deleted if this delivery still owns them. */
  remove: ObjectRef[];
}

export interface RestoreResult {
  applied: AppliedRef[];
  removed: ObjectRef[];
  kept: { ref: ObjectRef; reason: string }[];
}

export interface ReadInput {
  cluster: string;
  refs: ObjectRef[];
}

export interface CheckInput {
  cluster: string;
  owner: Owner;
  objects: KubeObject[];
  adopt: boolean;
}

export interface ObjectIssue {
  cluster: string;
  /** "Deployment shop/web" */
  object: string;
  kind: 'Invalid' | 'NotOwned' | 'ProtectedNamespace';
  message: string;
  field?: string;
  managers?: string[];
}

/** Every cluster worker registers these, the traffic routers' (activities/routing/) included. */
export interface ClusterActivities extends RoutingActivities {
  /** What stands now for each object; refuses (NotOwned) what is not this application's unless adopt. */
  captureObjects(input: CaptureInput): Promise<CapturedObject[]>;
  /** Server-side apply as `flotilla`, in dependency order; heartbeats; stops when cancelled. */
  applyObjects(input: ApplyInput): Promise<AppliedRef[]>;
  /** Waits (by watches) until the workloads are ready; heartbeats the progress. */
  waitReady(input: WaitInput): Promise<WorkloadState[]>;
  /** Puts back what stood before and removes what the delivery created. */
  restoreObjects(input: RestoreInput): Promise<RestoreResult>;
  readWorkloads(input: ReadInput): Promise<WorkloadState[]>;
  /** Preflight: dry-run every object and check its owner; nothing is written. */
  checkObjects(input: CheckInput): Promise<ObjectIssue[]>;
  /** Deletes what the application no longer has (its own objects only). */
  pruneObjects(input: PruneInput): Promise<PruneResult>;
  /** Keeps this cluster's rendering of a Healthy delivery as version N (and forgets versions past the limit). */
  recordVersion(input: VersionRecordInput): Promise<void>;
  /** The objects of version N in this cluster (NotFound when this cluster does not have it). */
  readVersion(input: VersionReadInput): Promise<KubeObject[]>;
}

export interface PrepareInput {
  request: DeliveryRequest;
  deliveryId: string;
  /** What each cluster held of the application after its last delivery: what this one no longer has is pruned. */
  previous?: ObjectInventory;
  /** Digests to use instead of resolving tags again (a retry deploys what the delivery it resumes deployed). */
  pinned?: Record<string, string>;
}

export interface PruneInput {
  cluster: string;
  owner: Owner;
  /** Objects to delete if they are this application's (an object Flotilla did not create for it is never deleted). */
  refs: ObjectRef[];
}

export interface PruneResult {
  removed: ObjectRef[];
  kept: { ref: ObjectRef; reason: string }[];
}

/** A version: exactly what a Healthy delivery rendered in one cluster, kept in that cluster (as Helm keeps releases). */
export interface VersionRecordInput {
  cluster: string;
  owner: Owner;
  version: number;
  deliveryId: string;
  objects: KubeObject[];
  /** How many versions to keep there (older ones are deleted). */
  keep: number;
}

export interface VersionReadInput {
  cluster: string;
  owner: Owner;
  version: number;
}

export interface HubActivities {
  /** The fleet as workflows may see it: no credentials, no paths. */
  describeFleet(): Promise<ClusterInfo[]>;
  /**
   * Resolves every image to its digest (once), plans the waves and renders each
   * cluster's objects. A request that cannot be planned fails with PlanFailed,
   * an image its registry does not have with ImageNotFound (non-retryable).
   */
  prepareDelivery(input: PrepareInput): Promise<PreparedDelivery>;
}

/** The cluster activities, the traffic routers' included (kept as a name for the routing tests). */
export type CanaryClusterActivities = ClusterActivities;
