/**
 * The deploy delivery end to end on the real local stack: the real worker, real
 * Kubernetes control planes with kwok nodes, real faults. Every outcome is read
 * back from the clusters (image, replicas, ready replicas) and from the
 * delivery's status.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { quietRuntime } from '../support/temporal.ts';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundle } from '@temporalio/worker';
import { stringify } from 'yaml';
import { DeployRequestSchema, type DeliveryStatus, type DeployRequestInput, type Inventory } from '../../model/index.ts';
import { fault, stackOptions } from '../../stack/index.ts';
import { parseConfig } from '../../worker/config.ts';
import { startWorkers, WORKFLOWS_PATH, type WorkersHandle } from '../../worker/main.ts';
import { createLogger } from '../../worker/logger.ts';
import { actionUpdate, HUB_TASK_QUEUE, statusQuery } from '../../workflows/messages.ts';
import { deliverVia } from '../workflows/harness.ts';
import type { ClusterClients } from '../../activities/kubernetes/clients.ts';
import { clusterClients, cordon, deleteNamespaces, deploymentsIn, digestOf, expectedRef, runInventory, spawnWorker, until } from './support.ts';

const stack = inject('stack');
const opts = stackOptions(stack);
const inventory: Inventory = runInventory(stack);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const silent = createLogger('silent');

let connection: Connection;
let client: Client;
let bundle: WorkflowBundle;
let clients: Map<string, ClusterClients>;
const namespaces = new Set<string>();

beforeAll(async () => {
  quietRuntime();
  connection = await Connection.connect({ address: stack.temporal.address });
  client = new Client({ connection, namespace: stack.temporal.namespace });
  bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
  clients = clusterClients(inventory);
});
afterAll(async () => {
  await deleteNamespaces(clients, namespaces);
  await connection?.close();
});

const config = (over: Record<string, unknown> = {}) =>
  parseConfig({
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    logLevel: 'silent',
    shutdownGraceMs: 2_000,
    ...over,
  });
const startInProcess = (over: Record<string, unknown> = {}) =>
  startWorkers(config(over), { inventory, logger: silent, workflowBundle: bundle });

function freshNamespace(prefix: string): string {
  const ns = `e2e-${prefix}-${randomUUID().slice(0, 6)}`;
  namespaces.add(ns);
  return ns;
}

function deployRequest(ns: string, tag: string, extra: Partial<DeployRequestInput> = {}) {
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: 'web', namespace: ns, image: image(tag), replicas: 4, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] } },
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    rolloutTimeout: '3m',
    // The stack's cordoned clusters never get a node: fail soon rather than wait for an autoscaler.
    grace: { unschedulable: '10s' },
    ...extra,
  });
}

/** Starts a delivery through its application's workflow, as the API does. */
async function startDelivery(ns: string, tag: string, extra: Partial<DeployRequestInput> = {}): Promise<WorkflowHandle> {
  return deliverVia(client, HUB_TASK_QUEUE, deployRequest(ns, tag, extra), { id: `delivery-e2e-${ns}-${tag}-${randomUUID().slice(0, 4)}`, requestedBy: 'e2e' });
}

/** `registry/demo/web@sha256:...`: what a delivery of the tag deploys. */
const pinnedOf = new Map<string, string>();
async function pin(tag: string): Promise<string> {
  if (!pinnedOf.has(tag)) pinnedOf.set(tag, `${central}/demo/web@${await digestOf(image(tag))}`);
  return pinnedOf.get(tag)!;
}
const statusOf = (h: WorkflowHandle) => h.query(statusQuery);
const untilPhase = (h: WorkflowHandle, phases: string[], timeoutMs = 180_000) =>
  until(() => statusOf(h), (s) => phases.includes(s.phase), `delivery ${h.workflowId} in ${phases.join('|')}`, timeoutMs);
const sre = (h: WorkflowHandle, action: 'retry' | 'skip' | 'rollback' | 'abort', cluster?: string) =>
  h.executeUpdate(actionUpdate, { args: [{ action, who: 'sre-e2e', ...(cluster ? { cluster } : {}) }] });

/**
 * When each cluster's rollback began (its restoreObjects was scheduled) and finished (the last of its
 * restoreObjects and the readiness wait after it completed), from the delivery's own history.
 */
async function rollbackSpans(h: WorkflowHandle): Promise<Record<string, { start: number; end: number }>> {
  const events = (await h.fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
  const scheduled = new Map<string, { cluster: string; type: string }>();
  const spans: Record<string, { start: number; end: number }> = {};
  let rollingBack = false;
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const cluster = (s.taskQueue?.name ?? '').replace(/^flotilla-cluster-/, '').replace(/-[0-9a-f]{8}$/, '');
      const type = s.activityType?.name ?? '';
      scheduled.set(String(e.eventId), { cluster, type });
      if (type === 'restoreObjects') {
        rollingBack = true;
        spans[cluster] ??= { start: at(e), end: at(e) };
      }
    }
    const c = e.activityTaskCompletedEventAttributes;
    if (c && rollingBack) {
      const what = scheduled.get(String(c.scheduledEventId));
      if (what && spans[what.cluster] && (what.type === 'restoreObjects' || what.type === 'waitReady')) spans[what.cluster]!.end = at(e);
    }
  }
  return spans;
}

/** 4 replicas over capacities 2:1:1, at least one each, every cluster on the tag's digest from its regional registry. */
const expected = async (tag: string) => {
  const img = await pin(tag);
  return {
    beijing: { image: expectedRef(inventory, 'beijing', img), replicas: 2, ready: 2 },
    shenzhen: { image: expectedRef(inventory, 'shenzhen', img), replicas: 1, ready: 1 },
    'cloud-hk': { image: expectedRef(inventory, 'cloud-hk', img), replicas: 1, ready: 1 },
  };
};
const view = async (ns: string) =>
  Object.fromEntries(Object.entries(await deploymentsIn(clients, ns)).map(([n, d]) => [n, d && { image: d.image, replicas: d.replicas, ready: d.ready }]));

describe('deploy on the real stack, one worker for the whole fleet', () => {
  let workers: WorkersHandle;
  beforeAll(async () => {
    workers = await startInProcess();
  });
  afterAll(async () => {
    await workers?.shutdown();
  });

  it('a two-wave deploy runs the new image with the computed replicas in every cluster, all ready, Healthy', async () => {
    const ns = freshNamespace('waves');
    const h = await startDelivery(ns, 'v2');
    const final = (await h.result()) as DeliveryStatus;
    expect(final.phase).toBe('Healthy');
    expect(await view(ns)).toEqual(await expected('v2'));
    expect(Object.values(final.clusters).map((c) => [c.cluster, c.phase, c.readyReplicas])).toEqual([
      ['beijing', 'Healthy', 2],
      ['shenzhen', 'Healthy', 1],
      ['cloud-hk', 'Healthy', 1],
    ]);
  });

  it('when wave 2 cannot become ready, onFailure=rollback leaves all three clusters on the previous image', async () => {
    const ns = freshNamespace('rollback');
    expect(((await (await startDelivery(ns, 'v1')).result()) as DeliveryStatus).phase).toBe('Healthy');
    const shenzhen = clients.get('shenzhen')!;
    await cordon(shenzhen, true); // no room for new pods in shenzhen
    try {
      const h = await startDelivery(ns, 'v2', { onFailure: 'rollback' });
      const final = (await h.result()) as DeliveryStatus;
      expect(final.phase).toBe('RolledBack');
      expect(final.conditions.find((c) => c.type === 'Progressing')?.message).toMatch(/shenzhen: .*unschedulable/);
      expect(await view(ns)).toEqual(await expected('v1'));
      // Newest wave first, from the history: every cluster of wave 2 had finished its rollback (restore, then
      // the wait for its pods) before beijing's (wave 1) began.
      const spans = await rollbackSpans(h);
      expect(Object.keys(spans).sort()).toEqual(['beijing', 'cloud-hk', 'shenzhen']);
      const wave2End = Math.max(spans.shenzhen!.end, spans['cloud-hk']!.end);
      expect(spans.beijing!.start).toBeGreaterThanOrEqual(wave2End);
    } finally {
      await cordon(shenzhen, false);
    }
  });

  it('with onFailure=pause it waits in NeedsAttention; after the fault is cleared an SRE retry finishes without redoing wave 1', async () => {
    const ns = freshNamespace('pause');
    expect(((await (await startDelivery(ns, 'v1')).result()) as DeliveryStatus).phase).toBe('Healthy');
    const shenzhen = clients.get('shenzhen')!;
    await cordon(shenzhen, true);
    let h: WorkflowHandle;
    try {
      h = await startDelivery(ns, 'v2');
      const paused = await untilPhase(h, ['NeedsAttention']);
      expect(paused.clusters.shenzhen).toMatchObject({ phase: 'Failed', failureType: 'RolloutFailed' });
      expect(paused.clusters.beijing!.phase).toBe('Healthy');
      const beijingBefore = (await deploymentsIn(clients, ns)).beijing!;
      expect(beijingBefore.image).toBe(expectedRef(inventory, 'beijing', await pin('v2')));
    } finally {
      await cordon(shenzhen, false); // the fault is cleared
    }
    const beijingGeneration = (await deploymentsIn(clients, ns)).beijing!.generation;
    await sre(h, 'retry');
    const final = (await h.result()) as DeliveryStatus;
    expect(final.phase).toBe('Healthy');
    expect(await view(ns)).toEqual(await expected('v2'));
    expect(final.clusters.beijing!.attempts).toBe(1);
    expect(final.clusters.shenzhen!.attempts).toBe(2);
    expect((await deploymentsIn(clients, ns)).beijing!.generation).toBe(beijingGeneration);
    expect(final.audit).toEqual([expect.objectContaining({ who: 'sre-e2e', action: 'retry' })]);
  });

  it('a cluster down during its wave is retried, and the delivery finishes when it comes back within the wait', async () => {
    const ns = freshNamespace('down-up');
    await fault('cluster-down', 'shenzhen', opts);
    let h: WorkflowHandle;
    try {
      h = await startDelivery(ns, 'v2', { unreachableTimeout: '3m' });
      await until(() => statusOf(h), (s) => s.clusters['cloud-hk']?.phase === 'Healthy' && s.clusters.shenzhen?.phase === 'Applying', 'shenzhen retrying');
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await statusOf(h)).phase).toBe('Progressing');
    } finally {
      await fault('cluster-up', 'shenzhen', opts);
    }
    const final = (await h.result()) as DeliveryStatus;
    expect(final.phase).toBe('Healthy');
    expect(await view(ns)).toEqual(await expected('v2'));
  });

  it('a cluster that stays down past the wait is skipped by an SRE, and the others finish', async () => {
    const ns = freshNamespace('down-skip');
    await fault('cluster-down', 'cloud-hk', opts);
    try {
      const h = await startDelivery(ns, 'v2', { unreachableTimeout: '8s' });
      const paused = await untilPhase(h, ['NeedsAttention']);
      expect(paused.clusters['cloud-hk']).toMatchObject({ phase: 'Unreachable', failureType: 'ClusterUnreachable' });
      await sre(h, 'skip', 'cloud-hk');
      const final = (await h.result()) as DeliveryStatus;
      expect(final.phase).toBe('Healthy');
      expect(final.clusters['cloud-hk']!.phase).toBe('Skipped');
      const { beijing, shenzhen } = await expected('v2');
      const up = new Map([...clients].filter(([n]) => n !== 'cloud-hk')); // cloud-hk is still down
      const v = await deploymentsIn(up, ns);
      expect({ beijing: v.beijing?.image, shenzhen: v.shenzhen?.image }).toEqual({ beijing: beijing.image, shenzhen: shenzhen.image });
      expect([v.beijing?.ready, v.shenzhen?.ready]).toEqual([beijing.ready, shenzhen.ready]);
    } finally {
      await fault('cluster-up', 'cloud-hk', opts);
    }
    expect((await deploymentsIn(clients, ns))['cloud-hk']).toBeNull();
  });
});

describe('agent mode', () => {
  it('cloud-hk steps run only while its agent worker runs', async () => {
    const hub = await startInProcess({ clusters: ['beijing', 'shenzhen'], hub: true });
    let agent: WorkersHandle | undefined;
    try {
      const ns = freshNamespace('agent');
      const h = await startDelivery(ns, 'v2', { waves: undefined, unreachableTimeout: '5m' });
      const s = await until(() => statusOf(h), (x) => x.clusters.beijing?.phase === 'Healthy' && x.clusters.shenzhen?.phase === 'Healthy', 'private clusters healthy');
      expect(s.clusters['cloud-hk']!.phase).toBe('Applying');
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await deploymentsIn(clients, ns))['cloud-hk']).toBeNull(); // nothing ran there without its agent
      agent = await startInProcess({ clusters: ['cloud-hk'] });
      const final = (await h.result()) as DeliveryStatus;
      expect(final.phase).toBe('Healthy');
      expect(await view(ns)).toEqual(await expected('v2'));
    } finally {
      await agent?.shutdown();
      await hub.shutdown();
    }
  });
});

describe('worker crash', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flotilla-e2e-'));
  const inventoryFile = path.join(dir, 'inventory.yaml');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const workerProcess = (n: number): ChildProcess => spawnWorker(stack, inventoryFile, path.join(dir, `worker-${n}.log`));

  it('a worker killed with SIGKILL while a step runs is replaced, the step resumes on the new worker, and the delivery finishes correctly', async () => {
    writeFileSync(inventoryFile, stringify(inventory));
    const ns = freshNamespace('sigkill');
    const shenzhen = clients.get('shenzhen')!;
    await cordon(shenzhen, true); // shenzhen's wait step stays in flight until the node pool is back
    let first: ChildProcess | undefined = workerProcess(1);
    let second: ChildProcess | undefined;
    try {
      const h = await startDelivery(ns, 'v2', { waves: [['beijing'], ['shenzhen'], ['cloud-hk']], grace: { unschedulable: '5m' } });
      // The step is really in flight on the first worker: its activity has started there.
      const inFlight = await until(
        async () => (await h.describe()).raw.pendingActivities ?? [],
        (acts) => acts.some((a) => a.activityType?.name === 'waitReady' && Number(a.state) === 2 /* STARTED */),
        'shenzhen waiting on worker 1',
        120_000,
      );
      const waiting = inFlight.find((a) => a.activityType?.name === 'waitReady')!;
      expect(waiting.lastWorkerIdentity).toBe(`${first.pid}@${hostname()}`);
      first.kill('SIGKILL');
      await new Promise<void>((r) => first!.once('exit', () => r()));
      first = undefined;
      expect((await deploymentsIn(clients, ns))['cloud-hk']).toBeNull();
      await cordon(shenzhen, false);
      second = workerProcess(2);
      const final = (await h.result()) as DeliveryStatus;
      expect(final.phase).toBe('Healthy');
      expect(await view(ns)).toEqual(await expected('v2'));
      // The interrupted wait was retried (attempt 2) by the second worker, not redone from the apply.
      const events = (await h.fetchHistory()).events ?? [];
      const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityId === waiting.activityId)!;
      const started = events.find((e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(scheduled.eventId))!;
      expect(started.activityTaskStartedEventAttributes?.attempt).toBeGreaterThanOrEqual(2);
      expect(started.activityTaskStartedEventAttributes?.identity).toBe(`${second.pid}@${hostname()}`);
      expect(final.clusters.shenzhen!.attempts).toBe(1);
    } finally {
      await cordon(shenzhen, false);
      first?.kill('SIGKILL');
      if (second) {
        second.kill('SIGTERM');
        await new Promise<void>((r) => second!.once('exit', () => r()));
      }
    }
  });
});
