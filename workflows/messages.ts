/**
 * Every message a delivery, application or preflight workflow takes, defined
 * once and imported by the workflows, the API and the CLI.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { ActionRequest, AppSpec, DeliveryEvent, DeliveryRequest, DeliveryStatus, ObjectRef, ObservedWorkload, Phase } from '../model/index.ts';
import type { ObjectIssue } from '../activities/types.ts';

/** Task queue of the workflows and hub activities. */
export const HUB_TASK_QUEUE = 'flotilla';

/** Workflow type names (the API starts and lists them by name). */
export const DELIVERY_WORKFLOW = 'delivery';
export const APPLICATION_WORKFLOW = 'application';
export const PREFLIGHT_WORKFLOW = 'preflight';

export const deliveryWorkflowId = (key: string): string => `delivery-${key}`;
/**
 * `app:<namespace>/<name>`. Namespaces and names are DNS labels (no ':' or '/'),
 * so no two applications share an id: shop-eu/web and shop/eu-web stay apart.
 */
export const applicationWorkflowId = (namespace: string, name: string): string => `app:${namespace}/${name}`;

// Search attributes the dev server is started with (stack/temporal.ts) and deliveries upsert.
export const SA_APP = 'FlotillaApp'; // "<namespace>/<name>"
export const SA_PHASE = 'FlotillaPhase';
export const SA_TYPE = 'FlotillaType';
export const appKey = defineSearchAttributeKey(SA_APP, SearchAttributeType.KEYWORD);
export const phaseKey = defineSearchAttributeKey(SA_PHASE, SearchAttributeType.KEYWORD);
export const typeKey = defineSearchAttributeKey(SA_TYPE, SearchAttributeType.KEYWORD);
export const searchAttributeKeys = [appKey, phaseKey, typeKey];

// --- delivery workflow ---
export const statusQuery = defineQuery<DeliveryStatus>('status');
/** The delivery's events after the given id (at most 500), and the last id so far. */
export const eventsQuery = defineQuery<{ events: DeliveryEvent[]; last: number }, [number]>('events');
export interface ActionInput extends ActionRequest {
  /** The authenticated caller (token name), for the audit list. */
  who: string;
  /** The caller's role (a gate names the roles that may decide it). */
  role?: string;
}
/**
 * retry | skip | rollback | abort, at any moment of the delivery; the validator refuses what does
 * not apply now. Returns the status as it stands once the action is taken. Sent with an update id
 * derived from the caller's Idempotency-Key, a repeat gets the first answer.
 */
export const actionUpdate = defineUpdate<DeliveryStatus, [ActionInput]>('action');

// --- application workflow: the lock and the durable record of one application ---
export interface AppClusterRecord {
  /** What the cluster was last seen to run (read back from its API server at the end of a delivery). */
  image?: string;
  replicas?: number;
  readyReplicas?: number;
  revision?: number;
  /** The delivery whose end this record comes from, and how that cluster ended in it. */
  deliveryId: string;
  phase: string;
  /** False when the cluster could not be read back (the record is what the delivery last saw). */
  verified: boolean;
  at: string;
}
export interface AppDeliveryRecord {
  id: string;
  type: string;
  image: string;
  version?: number;
  phase: Phase;
  startedAt: string;
  finishedAt?: string;
  requestedBy?: string;
  rollbackOf?: string;
  /** The Aborted delivery this one resumed (a retry). */
  retryOf?: string;
}
/** A version: a delivery that ended Healthy; what it rendered is kept in each cluster it ran on. */
export interface AppVersion {
  number: number;
  deliveryId: string;
  at: string;
  /** Where its objects came from (inline, manifests, kustomize, helm, version N). */
  source: string;
  /** The main image, pinned (as the delivery's status has it). */
  image: string;
  clusters: string[];
  /** The application spec it was delivered with; a large source is kept as `{ version: N }` (its objects are in each cluster). */
  spec?: AppSpec;
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
  /** Newest first, at most the history limit. */
  versions: AppVersion[];
  /** The number the next Healthy delivery gets. */
  nextVersion: number;
  /** The objects each cluster holds of the application, as far as Flotilla knows (what a next version prunes from). */
  inventory: Record<string, ObjectRef[]>;
  /** The last delivery, when it ended Aborted with a place to resume: a `retry` of it starts a delivery that resumes there. */
  resumable?: string;
}
export interface StartDeliveryInput {
  deliveryId: string;
  request: DeliveryRequest;
  requestedBy: string;
  rollbackOf?: string;
  /** Why (an SRE's comment on a rollback). */
  comment?: string;
  /** Of the request, for an Idempotency-Key that comes back with another body. */
  requestHash: string;
  /** Healthy versions to keep (the API's FLOTILLA_VERSION_HISTORY); from this delivery on. */
  historyLimit?: number;
}
/** A retry of the application's last delivery, Aborted: the same request and digests, resumed where it stopped. */
export interface RetryDeliveryInput extends Omit<StartDeliveryInput, 'request' | 'rollbackOf'> {
  retryOf: string;
}
export interface StartDeliveryResult {
  deliveryId: string;
  /** False when this delivery had already been started (a repeated request). */
  created: boolean;
}
export const appStateQuery = defineQuery<AppState>('appState');
/**
 * Takes the application's lock and starts the delivery as a child workflow, in one step:
 * refused (DeliveryInProgress, with the holder's id) while another delivery runs.
 */
export const startDeliveryUpdate = defineUpdate<StartDeliveryResult, [StartDeliveryInput]>('startDelivery');
/**
 * Takes the lock and starts a retry of the application's last delivery, which ended Aborted: refused
 * (NotResumable) when another delivery ran since or that one cannot be resumed, DeliveryInProgress while one runs.
 */
export const retryDeliveryUpdate = defineUpdate<StartDeliveryResult, [RetryDeliveryInput]>('retryDelivery');

// --- preflight workflow ---
export interface PreflightResult {
  /** Digests the images resolved to. */
  digests: Record<string, string>;
  issues: ObjectIssue[];
  /** Clusters that could not be checked in time (unreachable, no worker): the delivery will wait for them. */
  unchecked: { cluster: string; reason: string }[];
}

export type { ObservedWorkload };
