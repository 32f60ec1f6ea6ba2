/**
 * Replays recorded histories of each workflow against today's workflow code:
 * a change that would break running deliveries (non-determinism) fails here.
 */
import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { bundle, quietRuntime } from './harness.ts';
import { historiesDir } from './histories.ts';

describe('replay of recorded histories', () => {
  it('replays every recorded history of delivery, application and the fleet monitor without non-determinism', async () => {
    quietRuntime();
    const files = (await readdir(historiesDir)).filter((f) => f.endsWith('.json')).sort();
    const workflowTypes = new Set<string>();
    const histories = await Promise.all(
      files.map(async (f) => {
        const history = historyFromJSON(JSON.parse(await readFile(new URL(f, historiesDir), 'utf8')));
        workflowTypes.add(history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?');
        return { workflowId: f.replace(/\.json$/, ''), history };
      }),
    );
    expect(workflowTypes).toEqual(new Set(['delivery', 'application', 'fleetMonitor']));
    const workflowBundle = await bundle();
    const results = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle }, histories)) results.push(r);
    expect(results.map((r) => [r.workflowId, r.error?.message ?? 'ok'])).toEqual(histories.map((h) => [h.workflowId, 'ok']));
  });
});
