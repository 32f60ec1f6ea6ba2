/**
 * The copy activity on a real Temporal worker: the target registry is stopped
 * between two chunks of a large blob; the attempt fails RegistryUnreachable,
 * Temporal retries it with the last heartbeat, and a later attempt resumes the
 * upload where the registry left it once the registry is back.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createRegistryActivities } from '../../activities/registry/activities.ts';
import { RegistryPool } from '../../activities/registry/pool.ts';
import type { CopyImageResult, CopyProgress } from '../../activities/registry/types.ts';
import { fault, stackOptions } from '../../stack/index.ts';
import { blobsOf, inspect, pushTestImage, registryHost, stackRegistries } from '../support/registries.ts';
import { quietRuntime } from '../support/temporal.ts';

const stack = inject('stack');
const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;
const run = randomUUID().slice(0, 8);
let work: string;
let connection: NativeConnection;
let client: Client;

beforeAll(async () => {
  quietRuntime();
  work = mkdtempSync(path.join(tmpdir(), 'registry-temporal-'));
  connection = await NativeConnection.connect({ address: stack.temporal.address });
  client = new Client({
    connection: await Connection.connect({ address: stack.temporal.address }),
    namespace: stack.temporal.namespace,
  });
});
afterAll(async () => {
  await client?.connection.close();
  await connection?.close();
  rmSync(work, { recursive: true, force: true });
});

it('Temporal retries a copy cut off between two chunks, and the retry resumes the upload', async () => {
  const central = registryHost(stack, 'central');
  const target = stack.registries.find((r) => r.name === 'cn-north')!;
  const repo = `temporal-${run}/big`;
  const img = await pushTestImage(work, central, repo, { layers: 1, layerSizeKiB: 40 * 1024 });
  const [config, layer] = await blobsOf(img.ref);
  const opts = stackOptions(stack);
  const attempts = new Map<number, CopyProgress>();
  let outage: Promise<void> | undefined;
  const pool = new RegistryPool(stackRegistries(stack), {}, log);
  const activities = createRegistryActivities({
    registries: stackRegistries(stack),
    credentials: {},
    logger: log,
    pool,
    copier: { chunkSize: 8 * MiB, monolithicMax: 8 * MiB, parallelBlobs: 2 },
    onProgress: async (p, attempt) => {
      attempts.set(attempt, p);
      if (attempt === 1 && !outage && p.uploads.some((u) => u.offset >= 16 * MiB)) {
        // Down between two chunks; back 4 s later (Temporal retries meanwhile, the first retries fail).
        await fault('registry-down', target.name, opts);
        outage = new Promise((r) => setTimeout(r, 4_000)).then(() => fault('registry-up', target.name, opts));
      }
    },
  });
  const taskQueue = `registry-${run}`;
  const worker = await Worker.create({
    connection,
    namespace: stack.temporal.namespace,
    taskQueue,
    activities,
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: path.resolve(import.meta.dirname, '../support/registry-workflows.ts'),
      logger: new DefaultLogger('WARN'),
    }),
  });
  let result: CopyImageResult;
  try {
    result = await worker.runUntil(
      client.workflow.execute('copyImageWorkflow', {
        taskQueue,
        workflowId: `copy-${run}`,
        args: [{ source: img.ref, target: target.host }],
      }),
    );
  } finally {
    await outage;
    await pool.close(1_000);
  }
  const cutAt = attempts.get(1)!.uploads.find((u) => u.digest === layer!.digest)!.offset;
  expect(cutAt).toBeGreaterThanOrEqual(16 * MiB);
  expect(result.attempt).toBeGreaterThanOrEqual(2);
  expect(result.resumed).toEqual([{ digest: layer!.digest, offset: cutAt }]);
  expect(result.restarted).toEqual([]);
  expect(result.bytes.uploaded).toBe(layer!.size - cutAt);
  // Bytes sent over all attempts: the image once.
  expect(result.uploadedBefore + result.bytes.uploaded).toBe(config!.size + layer!.size);
  expect((await inspect(`${target.host}/${repo}:v1`)).Digest).toBe(img.digest);
  const blob = await fetch(`http://${target.host}/v2/${repo}/blobs/${layer!.digest}`);
  expect(
    `sha256:${createHash('sha256')
      .update(Buffer.from(await blob.arrayBuffer()))
      .digest('hex')}`,
  ).toBe(layer!.digest);
  // What the workflow's history holds: references and digests, no credentials (none exist here), and the failures typed.
  const history = await client.workflow.getHandle(`copy-${run}`).fetchHistory();
  const text = JSON.stringify(history);
  expect(text).toContain('RegistryUnreachable');
});
