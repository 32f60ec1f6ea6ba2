/**
 * Recorded workflow histories for the replay test. `FLOTILLA_RECORD_HISTORIES=1`
 * rewrites them from the runs of the workflow tests; commit the result when a
 * workflow changes on purpose (behind `patched()` for running workflows).
 */
import { writeFile } from 'node:fs/promises';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';

export const historiesDir = new URL('./histories/', import.meta.url);

export async function saveHistory(client: Client, workflowId: string, name: string): Promise<void> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  if (process.env.FLOTILLA_RECORD_HISTORIES === '1') {
    await writeFile(new URL(`${name}.json`, historiesDir), historyToJSON(history));
  }
}
