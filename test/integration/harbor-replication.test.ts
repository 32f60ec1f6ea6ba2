/**
 * Harbor replication through Harbor's own API, against the Harbor double
 * (activities/harbor/testing/double.ts: every request and response validated
 * against Harbor's spec) whose executions copy for real from the stack's
 * central registry to a regional one; what lands there is read with skopeo.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createHarborActivities } from '../../activities/harbor/activities.ts';
import { startHarborDouble, type HarborDouble } from '../../activities/harbor/testing/double.ts';
import type { Registry } from '../../model/registry.ts';
import { fault, stackOptions } from '../../stack/index.ts';
import { inspect, pushTestImage, registryHost, stackRegistries } from '../support/registries.ts';

const stack = inject('stack');
const log = pino({ level: 'silent' });
const central = registryHost(stack, 'central');
const run = randomUUID().slice(0, 8);

let work: string;
let double: HarborDouble;
let registries: Registry[];
let acts: ReturnType<typeof createHarborActivities>;

const runIn = <I, O>(fn: (input: I) => Promise<O>, input: I): Promise<O> =>
  new MockActivityEnvironment().run(fn, input) as Promise<O>;

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'harbor-'));
  double = await startHarborDouble({
    localRegistry: central,
    username: 'robot$flotilla',
    password: 'harbor-secret-pw',
  });
  registries = [
    {
      name: 'harbor-central',
      host: central,
      region: 'central',
      type: 'harbor',
      tls: 'none',
      harborUrl: double.url,
      credentials: 'harbor-central',
    },
    ...stackRegistries(stack).filter((r) => r.name !== 'central'),
  ];
  acts = createHarborActivities({
    registries,
    credentials: { 'harbor-central': { username: 'robot$flotilla', password: 'harbor-secret-pw' } },
    logger: log,
    pollEveryMs: 200,
  });
});

afterEach(() => {
  // Every request the adapter sent, and every answer, matched Harbor's spec.
  expect(double.violations).toEqual([]);
});

afterAll(async () => {
  await double?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('Harbor replication', () => {
  it('ensures a policy: created, then found, then updated, never duplicated', async () => {
    const input = {
      harbor: 'harbor-central',
      target: 'cn-north',
      repository: `ensure-${run}/web`,
      tag: 'v1',
    };
    const first = await runIn(acts.ensureHarborReplication, input);
    expect(first).toMatchObject({ created: true, updated: false });
    const again = await runIn(acts.ensureHarborReplication, input);
    expect(again).toEqual({ ...first, created: false, updated: false });
    const retagged = await runIn(acts.ensureHarborReplication, {
      ...input,
      tag: 'v2',
      destNamespace: 'mirror',
    });
    expect(retagged).toMatchObject({ policyId: first.policyId, created: false, updated: true });
    const named = [...double.policies.values()].filter((p) => p.name === first.policyName);
    expect(named).toHaveLength(1);
    expect(named[0]!.filters).toEqual([
      { type: 'name', value: `ensure-${run}/web` },
      { type: 'tag', value: 'v2' },
    ]);
    expect(named[0]).toMatchObject({
      dest_namespace: 'mirror',
      dest_registry: { id: first.registryId },
      trigger: { type: 'manual' },
    });
    // The registry endpoint was created once and points at the target.
    const endpoints = [...double.registries.values()].filter((r) => r.name === 'flotilla-cn-north');
    expect(endpoints).toHaveLength(1);
    expect(endpoints[0]!.url).toBe(`http://${registryHost(stack, 'cn-north')}`);
  });

  it('starts an execution and follows it to success: the image is in the target with the same digest', async () => {
    const repo = `harbor-${run}/web`;
    const img = await pushTestImage(work, central, repo, { layers: 2, layerSizeKiB: 512 });
    const target = registryHost(stack, 'cn-north');
    const policy = await runIn(acts.ensureHarborReplication, {
      harbor: 'harbor-central',
      target: 'cn-north',
      repository: repo,
      tag: 'v1',
    });
    const { executionId } = await runIn(acts.startHarborReplication, {
      harbor: 'harbor-central',
      policyId: policy.policyId,
    });
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const result = (await env.run(acts.waitForHarborReplication, {
      harbor: 'harbor-central',
      executionId,
    })) as Awaited<ReturnType<typeof acts.waitForHarborReplication>>;
    expect(result).toMatchObject({ executionId, status: 'Success', total: 1, succeed: 1, failed: 0 });
    expect(beats.length).toBeGreaterThan(0);
    expect((await inspect(`${target}/${repo}:v1`)).Digest).toBe(img.digest);
  });

  it('fails when the policy matches no image (the tag is missing in the Harbor)', async () => {
    const repo = `harbor-${run}/web`;
    const policy = await runIn(acts.ensureHarborReplication, {
      harbor: 'harbor-central',
      target: 'cn-south',
      repository: repo,
      tag: 'v9',
    });
    const { executionId } = await runIn(acts.startHarborReplication, {
      harbor: 'harbor-central',
      policyId: policy.policyId,
    });
    const f = await failureOf(
      runIn(acts.waitForHarborReplication, { harbor: 'harbor-central', executionId }),
    );
    expect(f.type).toBe('ReplicationFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('matches no image');
  });

  it('reports the failed tasks with their log lines when the target registry is down', async () => {
    const repo = `harbor-down-${run}/web`;
    await pushTestImage(work, central, repo, { layers: 1, layerSizeKiB: 256 });
    const opts = stackOptions(stack);
    const policy = await runIn(acts.ensureHarborReplication, {
      harbor: 'harbor-central',
      target: 'ap-east',
      repository: repo,
      tag: 'v1',
    });
    await fault('registry-down', 'ap-east', opts);
    try {
      const { executionId } = await runIn(acts.startHarborReplication, {
        harbor: 'harbor-central',
        policyId: policy.policyId,
      });
      const f = await failureOf(
        runIn(acts.waitForHarborReplication, { harbor: 'harbor-central', executionId }),
      );
      expect(f.type).toBe('ReplicationFailed');
      expect(f.message).toContain(`replication execution ${executionId}`);
      expect(f.message).toContain('ended Error');
      expect(f.message).toContain(`${repo}:[v1]`);
      expect(f.message).toMatch(/\[ERROR\] .*failed to copy .*unreachable \(ECONNREFUSED\)/);
      const details = f.details?.[0] as { tasks: { status: string; log: string[] }[] };
      expect(details.tasks).toHaveLength(1);
      expect(details.tasks[0]!.status).toBe('Error');
      expect(details.tasks[0]!.log.length).toBeGreaterThanOrEqual(2);
    } finally {
      await fault('registry-up', 'ap-east', opts);
    }
  });

  it('names a registry that is not a Harbor', async () => {
    const f = await failureOf(runIn(acts.startHarborReplication, { harbor: 'cn-north', policyId: 1 }));
    expect(f.type).toBe('InvalidReference');
    expect(f.message).toContain('not harbor');
  });
});
