/**
 * Named retry and timeout profiles for activities, used at the proxy site.
 * Activities never retry by hand: Temporal retries them on these policies, and
 * failures whose type says retrying cannot help are non-retryable.
 */
import type { ActivityOptions } from '@temporalio/workflow';
import { FailureType } from '../model/reasons.ts';

const noRetryTypes = [FailureType.InvalidManifest, FailureType.Forbidden, FailureType.RolloutFailed, FailureType.RolloutTimeout, FailureType.NoPreviousRevision];

/** Hub activities: read the inventory. */
export const hubRead: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 5 },
};

/**
 * One server-side apply. An unreachable cluster (or one whose agent worker is
 * not polling) is retried with backoff until `unreachableMs` has passed.
 */
export function k8sApply(unreachableMs: number): ActivityOptions {
  return {
    startToCloseTimeout: '30s',
    scheduleToCloseTimeout: unreachableMs,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: noRetryTypes },
  };
}

/** Waiting for a rollout: long, heartbeating; a cluster that drops away mid-wait is retried like an apply. */
export function rolloutWait(rolloutMs: number, unreachableMs: number): ActivityOptions {
  return {
    startToCloseTimeout: rolloutMs + 15_000,
    scheduleToCloseTimeout: rolloutMs + unreachableMs,
    heartbeatTimeout: '20s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: noRetryTypes },
  };
}

/** How long new pods may stay Running-not-Ready before the rollout counts as failed. */
export const UNREADY_GRACE_MS = 20_000;
