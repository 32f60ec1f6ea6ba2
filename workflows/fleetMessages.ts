/**
 * Messages of the fleet monitor (one per fleet, id `fleet-monitor`) and of the
 * failovers it starts; imported by the workflows, the hub activities, the API
 * and the CLI.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AppSpec, ClusterAction, ClusterHealthState, FailoverSettings, Placement, Restorable } from '../model/index.ts';

export const FLEET_MONITOR_WORKFLOW = 'fleetMonitor';
export const CLUSTER_FAILOVER_WORKFLOW = 'clusterFailover';
/** The monitor's fixed id: starting it again finds the one running. */
export const FLEET_MONITOR_ID = 'fleet-monitor';
/** Who a failover's deliveries are requested by (the application's record shows it). */
export const FAILOVER_REQUESTER = 'flotilla-failover';

/** One application's move in a failover or failback. */
export interface AppMove {
  /** `<namespace>/<name>` */
  app: string;
  phase: 'Pending' | 'Moving' | 'Moved' | 'Skipped' | 'Failed';
  message: string;
  deliveryId?: string;
  /** Replicas per cluster before and after (a source's own totals are not listed). */
  before?: Record<string, number>;
  after?: Record<string, number>;
  /** The placement the failover gave it (failback restores only while it still has it). */
  placement?: Placement;
  /** What failback puts back. */
  restore?: Restorable;
}

export interface FailoverRecord {
  /** The failover workflow's id. */
  id: string;
  reason: string;
  phase: 'FailingOver' | 'FailedOver' | 'AwaitingApproval' | 'FailingBack';
  startedAt: string;
  finishedAt?: string;
  /** The clusters that took the replicas. */
  to: string[];
  apps: AppMove[];
  /** The failback in progress (its workflow's id). */
  failback?: { id: string; startedAt: string; by: string };
}

export interface ClusterView extends ClusterHealthState {
  region: string;
  drained: boolean;
  drainedBy?: string;
  failover?: FailoverRecord;
  /** The last failover that ended with a failback. */
  lastFailback?: { at: string; apps: AppMove[] };
}

export interface FleetEvent {
  at: string;
  cluster: string;
  what: string;
  who: string;
  comment?: string;
}

export interface FleetView {
  settings: FailoverSettings;
  clusters: Record<string, ClusterView>;
  /** Newest first, at most 100. */
  events: FleetEvent[];
  /** When this monitor (its first run) started. */
  startedAt: string;
}

export const fleetStateQuery = defineQuery<FleetView>('fleetState');

export interface ClusterActionInput extends ClusterAction {
  cluster: string;
  /** The authenticated caller (token name). */
  who: string;
}
/** drain | undrain | failover | failback; the validator refuses (UnknownCluster, ActionNotApplicable) what does not apply now. */
export const clusterActionUpdate = defineUpdate<ClusterView, [ClusterActionInput]>('clusterAction');

/** A failover (or failback) workflow reports its end to the monitor. */
export interface FailoverDone {
  id: string;
  cluster: string;
  kind: 'failover' | 'failback';
  apps: AppMove[];
  at: string;
}
export const failoverDoneSignal = defineSignal<[FailoverDone]>('failoverDone');

export interface ClusterFailoverInput {
  id?: string;
  kind: 'failover' | 'failback';
  cluster: string;
  reason: string;
  /** Every cluster failed or drained now: none of them takes replicas. */
  failed: string[];
  /** Of those, the drained ones (reachable): their replicas go to 0 once the others run them. */
  drained?: string[];
  settings: FailoverSettings;
  /** failback: the moves of the failover it undoes. */
  moves?: AppMove[];
  /** The workflow to report to (the monitor). */
  reportTo: string;
}

/** What the API and tests read from each placed application (hub activity placedApplications). */
export interface PlacedApp {
  namespace: string;
  name: string;
  spec: AppSpec;
  /** The latest version's pinned image, if any. */
  image?: string;
  activeDelivery?: string;
}
