/**
 * A workflow for the notify tests: one event through the notify activity with
 * the notify retry profile, its intervals shortened so a test sees Temporal
 * retry within seconds.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { NotifyActivities, NotifyInput, NotifyResult } from '../../activities/notify/activities.ts';
import { notifyActivityOptions } from '../../activities/notify/options.ts';

const { notify } = proxyActivities<NotifyActivities>({
  ...notifyActivityOptions,
  retry: { ...notifyActivityOptions.retry, initialInterval: '200ms', backoffCoefficient: 1.5, maximumInterval: '1s', maximumAttempts: 8 },
});

export async function notifyWorkflow(input: NotifyInput): Promise<NotifyResult> {
  return notify(input);
}
