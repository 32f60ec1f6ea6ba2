/**
 * Named retry and timeout profiles for activities, used at the proxy site.
 * Activities never retry by hand: Temporal retries them on these policies, and
 * failures whose type says retrying cannot help are non-retryable.
 *
 * Cluster steps heartbeat every second with a short heartbeat timeout, so that
 * a worker killed mid-step is noticed within seconds and the step resumes on
 * the next worker that polls; their cancellation waits until the activity has
 * really stopped (nothing it started lands after the workflow moved on).
 */
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import { FailureType } from '../model/reasons.ts';

const noRetryTypes = [
  FailureType.InvalidManifest,
  FailureType.Forbidden,
  FailureType.RolloutFailed,
  FailureType.RolloutTimeout,
  FailureType.NoPreviousRevision,
  FailureType.NotOwned,
  FailureType.ProtectedNamespace,
  FailureType.PlanFailed,
  FailureType.ImageNotFound,
  FailureType.RegistryAuthFailed,
  FailureType.UnknownCluster,
];

/** A killed worker's step is retried after this much silence (the SDK heartbeats every 0.8 of it at most). */
export const HEARTBEAT_TIMEOUT = '4s';
const retry = { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: noRetryTypes };

/** Hub activities: read the inventory. */
export const hubRead: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 5 },
};

/** Preparing a delivery: digests from the registries (which may be down a while), plan, render. */
export function hubPrepare(unreachableMs: number): ActivityOptions {
  return { startToCloseTimeout: '60s', scheduleToCloseTimeout: unreachableMs, retry };
}

/**
 * One cluster step that changes or reads objects (capture, apply, restore).
 * An unreachable cluster (or one whose agent worker is not polling) is retried
 * with backoff until `unreachableMs` has passed.
 */
export function clusterStep(unreachableMs: number): ActivityOptions {
  return {
    startToCloseTimeout: '60s',
    scheduleToCloseTimeout: unreachableMs,
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry,
  };
}

/** Waiting for workloads to be ready: long, heartbeating; a cluster that drops away mid-wait is retried like a step. */
export function rolloutWait(rolloutMs: number, unreachableMs: number): ActivityOptions {
  return {
    startToCloseTimeout: rolloutMs + 30_000,
    scheduleToCloseTimeout: rolloutMs + unreachableMs,
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry,
  };
}

/** Reading back what runs (at the end, after an abort): short; a cluster that does not answer is reported as such. */
export const clusterRead: ActivityOptions = {
  startToCloseTimeout: '15s',
  scheduleToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '5s', nonRetryableErrorTypes: noRetryTypes },
};

/** Preflight checks: a cluster that does not answer soon is reported unchecked, not waited for. */
export const clusterCheck: ActivityOptions = {
  startToCloseTimeout: '15s',
  scheduleToCloseTimeout: '20s',
  retry: { initialInterval: '500ms', maximumInterval: '2s', nonRetryableErrorTypes: noRetryTypes },
};

/** A wave's rollout waits are judged against the Deployment's own progress deadline first. */
export const ROLLOUT_TIMEOUT_MARGIN_MS = 15_000;
