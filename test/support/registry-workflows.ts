/**
 * A workflow for the registry tests: copyImage with the retry profile a
 * delivery would use (heartbeats, retry on RegistryUnreachable), so a test sees
 * Temporal itself carry an upload from one attempt to the next.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { CopyImageInput, CopyImageResult, RegistryActivities } from '../../activities/registry/types.ts';

const { copyImage } = proxyActivities<RegistryActivities>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '20s',
  retry: { initialInterval: '1s', backoffCoefficient: 1.5, maximumInterval: '5s', maximumAttempts: 20 },
});

export async function copyImageWorkflow(input: CopyImageInput): Promise<CopyImageResult> {
  return copyImage(input);
}
