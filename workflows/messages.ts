/**
 * Every message a delivery or application workflow takes, defined once and
 * imported by the workflows, the API and the CLI.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ActionRequest, AppSpec, DeliveryStatus, Phase } from '../model/index.ts';

/** Task queue of the workflows and hub activities. */
export const HUB_TASK_QUEUE = 'flotilla';

export const deliveryWorkflowId = (key: string): string => `delivery-${key}`;
export const applicationWorkflowId = (namespace: string, name: string): string => `app-${namespace}-${name}`;

// Search attributes the dev server is started with (stack/temporal.ts) and deliveries upsert.
export const SA_APP = 'FlotillaApp'; // "<namespace>/<name>"
export const SA_PHASE = 'FlotillaPhase';
export const SA_TYPE = 'FlotillaType';

// --- delivery (deploy) workflow ---
export const statusQuery = defineQuery<DeliveryStatus>('status');
export interface ActionInput extends ActionRequest {
  /** The authenticated caller (token name), for the audit list. */
  who: string;
}
/** retry | skip | rollback | abort; the validator refuses what does not apply now. Returns the new status. */
export const actionUpdate = defineUpdate<DeliveryStatus, [ActionInput]>('action');

// --- application workflow: the durable desired state of one application ---
export interface AppClusterRecord {
  image: string;
  replicas: number;
  revision?: number;
  deliveryId: string;
  at: string;
}
export interface AppDeliveryRecord {
  id: string;
  type: string;
  image: string;
  phase: Phase;
  startedAt: string;
  finishedAt?: string;
}
export interface AppState {
  name: string;
  namespace: string;
  /** The spec of the last delivery that ended Healthy, and the one before it. */
  spec?: AppSpec;
  previousSpec?: AppSpec;
  clusters: Record<string, AppClusterRecord>;
  activeDelivery?: string;
  deliveries: AppDeliveryRecord[];
}
export interface AcquireInput {
  deliveryId: string;
  type: string;
  image: string;
  startedAt: string;
}
export interface DeliveryFinished {
  deliveryId: string;
  phase: Phase;
  spec: AppSpec;
  clusters: Record<string, AppClusterRecord>;
  finishedAt: string;
  /** Clusters where the delivery removed the application (a rollback of its first deploy there). */
  removed: string[];
  /** Set when the delivery restored an earlier state. */
  rollbackOf?: string;
}
export const appStateQuery = defineQuery<AppState>('appState');
/** Takes the application's delivery lock; refused (with the holder's id) while another delivery runs. */
export const acquireUpdate = defineUpdate<AppState, [AcquireInput]>('acquire');
/** Gives the lock back without a result (a delivery that never started). */
export const releaseSignal = defineSignal<[{ deliveryId: string }]>('release');
/** A delivery ended: record where the application now runs, and free the lock. */
export const deliveryFinishedSignal = defineSignal<[DeliveryFinished]>('deliveryFinished');

// Typed search attribute keys, for upserts (workflows) and queries (API).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
export const appKey = defineSearchAttributeKey(SA_APP, SearchAttributeType.KEYWORD);
export const phaseKey = defineSearchAttributeKey(SA_PHASE, SearchAttributeType.KEYWORD);
export const typeKey = defineSearchAttributeKey(SA_TYPE, SearchAttributeType.KEYWORD);
export const searchAttributeKeys = [appKey, phaseKey, typeKey];
