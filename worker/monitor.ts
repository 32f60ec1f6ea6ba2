/**
 * Starts the fleet monitor (workflows/fleetMonitor.ts) if it is not running: a fixed workflow id, so
 * every hub worker (and every restart) may call this; the one running is kept with its state.
 */
import { Client, Connection } from '@temporalio/client';
import { FLEET_MONITOR_ID, FLEET_MONITOR_WORKFLOW } from '../workflows/fleetMessages.ts';
import type { FleetMonitorInput } from '../workflows/fleetMonitor.ts';

export async function ensureFleetMonitor(client: Client, taskQueue: string, input: FleetMonitorInput = {}): Promise<{ runId: string; started: boolean }> {
  const handle = await client.workflow.start(FLEET_MONITOR_WORKFLOW, {
    workflowId: FLEET_MONITOR_ID,
    taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  const d = await handle.describe();
  return { runId: handle.firstExecutionRunId, started: d.startTime.getTime() > Date.now() - 10_000 };
}

/** The same, over a connection of its own (the worker's entry point). */
export async function ensureFleetMonitorAt(address: string, namespace: string, taskQueue: string): Promise<{ runId: string; started: boolean }> {
  const connection = await Connection.connect({ address });
  try {
    return await ensureFleetMonitor(new Client({ connection, namespace }), taskQueue);
  } finally {
    await connection.close();
  }
}
