/**
 * Starting a delivery under its application's lock: the application workflow's
 * `startDelivery` update, with that workflow started if need be. A delivery
 * that has just ended still holds the lock for the moment its application
 * workflow takes to learn of the end; a caller that starts the next delivery
 * right after the last one finished (a CI pipeline) waits that moment out
 * instead of getting a 409 for a delivery that is over.
 */
import { ApplicationFailure, WithStartWorkflowOperation, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import {
  APPLICATION_WORKFLOW,
  applicationWorkflowId,
  retryDeliveryUpdate,
  startDeliveryUpdate,
  type RetryDeliveryInput,
  type StartDeliveryInput,
  type StartDeliveryResult,
} from '../workflows/messages.ts';

/** How long a lock held by a closed delivery is waited for before it counts as really held. */
const RELEASE_WAIT_MS = 10_000;

/** The holder named by a DeliveryInProgress refusal, or undefined for any other error. */
export function lockHolder(e: unknown): string | undefined {
  const f = e instanceof WorkflowUpdateFailedError && e.cause instanceof ApplicationFailure ? e.cause : undefined;
  if (f?.type !== 'DeliveryInProgress') return undefined;
  return (f.details?.[0] as { activeDelivery?: string } | undefined)?.activeDelivery ?? '';
}

export function startUnderLock(client: Client, taskQueue: string, start: StartDeliveryInput, updateId?: string): Promise<StartDeliveryResult> {
  return underLock(client, taskQueue, start.request.app, { start }, updateId);
}

/** A retry of the application's last delivery (Aborted), under the lock as any start. */
export function retryUnderLock(client: Client, taskQueue: string, app: { namespace: string; name: string }, retry: RetryDeliveryInput, updateId?: string): Promise<StartDeliveryResult> {
  return underLock(client, taskQueue, app, { retry }, updateId);
}

async function underLock(
  client: Client,
  taskQueue: string,
  app: { namespace: string; name: string },
  call: { start: StartDeliveryInput } | { retry: RetryDeliveryInput },
  updateId?: string,
): Promise<StartDeliveryResult> {
  const { namespace, name } = app;
  const end = Date.now() + RELEASE_WAIT_MS;
  for (;;) {
    try {
      const common = {
        ...(updateId ? { updateId } : {}),
        // A fresh operation each attempt: one serves one call.
        startWorkflowOperation: new WithStartWorkflowOperation(APPLICATION_WORKFLOW, {
          workflowId: applicationWorkflowId(namespace, name),
          taskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
          args: [{ namespace, name }],
        }),
      };
      if ('retry' in call) return await client.workflow.executeUpdateWithStart(retryDeliveryUpdate, { args: [call.retry], ...common });
      return await client.workflow.executeUpdateWithStart(startDeliveryUpdate, { args: [call.start], ...common });
    } catch (e) {
      const holder = lockHolder(e);
      if (!holder || Date.now() > end) throw e;
      const d = await client.workflow
        .getHandle(holder)
        .describe()
        .catch(() => undefined);
      if (d?.status.name === 'RUNNING') throw e; // really held
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
