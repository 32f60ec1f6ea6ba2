/**
 * The notify activity's failure types and its retry profile, in a module with
 * no Node imports, so workflow code can use them (workflows/options.ts may
 * copy the profile beside the others).
 */
import type { ActivityOptions } from '@temporalio/common';

export const NotifyFailure = {
  /** Not delivered yet (connection error, timeout, 5xx, 408, 429): Temporal retries. */
  failed: 'NotificationFailed',
  /** A sink refused the event (another 4xx, a redirect): retrying cannot help. */
  rejected: 'NotificationRejected',
  /** The event does not match its schema. */
  invalid: 'InvalidNotification',
} as const;
export type NotifyFailure = (typeof NotifyFailure)[keyof typeof NotifyFailure];

/**
 * Proxy options for the notify activity: retries with backoff for up to an
 * hour on NotificationFailed (a 429's Retry-After sets the next delay), none
 * on the non-retryable types.
 */
export const notifyActivityOptions: ActivityOptions = {
  startToCloseTimeout: '2m',
  scheduleToCloseTimeout: '1h',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '2m',
    nonRetryableErrorTypes: [NotifyFailure.rejected, NotifyFailure.invalid],
  },
};
