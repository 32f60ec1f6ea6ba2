/**
 * The worker on the real stack: its configuration, the inventory made from
 * the stack, and startWorkers in-process. An agent-mode worker polls only its
 * cluster's queue; a hub-only worker plus that agent deliver a real deploy to
 * the cluster; both shut down cleanly.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { quietRuntime } from '../support/temporal.ts';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundle } from '@temporalio/worker';
import { createClusterClients } from '../../activities/kubernetes/clients.ts';
import { DeployRequestSchema, type DeliveryStatus, type Inventory } from '../../model/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { ConfigError, loadConfig, parseConfig } from '../../worker/config.ts';
import { loadInventory } from '../../worker/inventory.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';
import { startWorkers, WORKFLOWS_PATH, type WorkersHandle } from '../../worker/main.ts';
import { applicationWorkflowId, HUB_TASK_QUEUE } from '../../workflows/messages.ts';
import { deliverVia } from '../workflows/harness.ts';
import { digestOf, expectedRef } from './support.ts';

const stack: StackInfo = inject('stack');
const silent = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'flotilla-worker-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('configuration', () => {
  it('reads the environment, with defaults for what is not secret, and freezes it', () => {
    const c = loadConfig({
      FLOTILLA_INVENTORY: '/x/inventory.yaml',
      FLOTILLA_CLUSTERS: 'cloud-hk, beijing',
      FLOTILLA_LOG_LEVEL: 'warn',
    });
    expect(c).toEqual({
      temporal: { address: '127.0.0.1:7233', namespace: 'default' },
      inventoryPath: '/x/inventory.yaml',
      clusters: ['cloud-hk', 'beijing'],
      hub: false, // agent mode unless asked
      logLevel: 'warn',
      shutdownGraceMs: 10_000,
      protectedNamespaces: [],
    });
    expect(Object.isFrozen(c) && Object.isFrozen(c.temporal) && Object.isFrozen(c.clusters)).toBe(true);
    const all = loadConfig({ FLOTILLA_INVENTORY: 'i.yaml' });
    expect(all.hub).toBe(true);
    expect(all.clusters).toBeUndefined();
    expect(
      loadConfig({ FLOTILLA_INVENTORY: 'i.yaml', FLOTILLA_CLUSTERS: '', FLOTILLA_HUB: 'true' }),
    ).toMatchObject({ hub: true, clusters: [] });
  });

  it('takes a file, with the environment winning', () => {
    const file = join(dir, 'worker.yaml');
    writeFileSync(
      file,
      'temporal: { address: "10.0.0.1:7233", namespace: prod }\ninventoryPath: /etc/flotilla/inventory.yaml\nlogLevel: debug\n',
    );
    expect(loadConfig({ FLOTILLA_CONFIG: file, FLOTILLA_TEMPORAL_NAMESPACE: 'staging' })).toMatchObject({
      temporal: { address: '10.0.0.1:7233', namespace: 'staging' },
      inventoryPath: '/etc/flotilla/inventory.yaml',
      logLevel: 'debug',
    });
  });

  it('names every bad setting by its variable', () => {
    let err: unknown;
    try {
      loadConfig({ FLOTILLA_HUB: 'maybe', FLOTILLA_CLUSTERS: 'Beijing', FLOTILLA_LOG_LEVEL: 'loud' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const m = (err as Error).message;
    expect(m).toMatch(/FLOTILLA_INVENTORY \(inventoryPath\): is required/);
    expect(m).toMatch(/FLOTILLA_HUB \(hub\): must be true or false/);
    expect(m).toMatch(/FLOTILLA_CLUSTERS \(clusters\.0\): must be a lowercase RFC 1123 label/);
    expect(m).toMatch(/FLOTILLA_LOG_LEVEL \(logLevel\)/);
    expect(() => parseConfig({ inventoryPath: 'i', hub: false, clusters: [] })).toThrow(/nothing to serve/);
  });
});

describe('inventory from the stack', () => {
  it('has every cluster, its kubeconfig and the host of its regional registry as mirror', () => {
    const inv = inventoryFromStack(stack);
    expect(inv.clusters.map((c) => c.name)).toEqual(stack.clusters.map((c) => c.name));
    for (const c of stack.clusters) {
      const got = inv.clusters.find((x) => x.name === c.name)!;
      expect(got).toMatchObject({
        region: c.region,
        provider: c.provider,
        capacity: c.capacity,
        kubeconfig: { path: c.kubeconfig },
      });
      expect(got.mirror).toBe(stack.registries.find((r) => r.name === c.mirror)!.host);
    }
  });

  it('the CLI prints YAML that loads back as the same inventory', async () => {
    const stackFile = join(dir, 'stack.json');
    writeFileSync(stackFile, JSON.stringify(stack));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['worker/inventory-from-stack.ts', '--stack', stackFile],
      { cwd: join(import.meta.dirname, '../..') },
    );
    expect(parseYaml(stdout)).toEqual(JSON.parse(JSON.stringify(inventoryFromStack(stack))));
    const file = join(dir, 'inventory.yaml');
    writeFileSync(file, stdout);
    expect(loadInventory(file)).toEqual(inventoryFromStack(stack));
  });
});

describe('startWorkers', () => {
  // Queues of their own, so pollers left by other tests cannot answer for ours.
  const run = randomUUID().slice(0, 8);
  const inventory: Inventory = {
    registries: inventoryFromStack(stack).registries,
    clusters: inventoryFromStack(stack).clusters.map((c) => ({
      ...c,
      taskQueue: `flotilla-cluster-${c.name}-${run}`,
    })),
  };
  const agentCluster = inventory.clusters.at(-1)!; // cloud-hk in the default fleet
  const others = inventory.clusters.filter((c) => c !== agentCluster);
  const base = {
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    logLevel: 'silent' as const,
    shutdownGraceMs: 2_000,
  };
  let client: Client;
  let connection: Connection;
  let bundle: WorkflowBundle;
  const handles: WorkersHandle[] = [];

  beforeAll(async () => {
    quietRuntime();
    connection = await Connection.connect({ address: stack.temporal.address });
    client = new Client({ connection, namespace: stack.temporal.namespace });
    bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
  });
  afterAll(async () => {
    await Promise.allSettled(handles.map((h) => h.shutdown()));
    await connection?.close();
  });

  /** Identities polling a queue for activity (2) or workflow (1) tasks. */
  async function pollers(taskQueue: string, type: 1 | 2): Promise<string[]> {
    const r = await client.workflowService.describeTaskQueue({
      namespace: stack.temporal.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: type,
    });
    return (r.pollers ?? []).map((p) => p.identity ?? '');
  }
  async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const me = `${process.pid}@${hostname()}`;

  it(`in agent mode for one cluster, polls only that cluster's queue, and shuts down cleanly`, async () => {
    const config = parseConfig({ ...base, clusters: [agentCluster.name] });
    expect(config.hub).toBe(false);
    const h = await startWorkers(config, { logger: silent, inventory });
    handles.push(h);
    expect(h.queues).toEqual([{ taskQueue: agentCluster.taskQueue, serves: agentCluster.name }]);
    await eventually(async () => (await pollers(agentCluster.taskQueue!, 2)).includes(me));
    for (const c of others) expect(await pollers(c.taskQueue!, 2)).toEqual([]);
    expect(await pollers(HUB_TASK_QUEUE, 1)).not.toContain(me);

    const t0 = Date.now();
    await h.shutdown();
    expect(Date.now() - t0).toBeLessThan(10_000);
    await expect(h.done).resolves.toBeUndefined();
    await h.shutdown(); // again: harmless
  });

  it('refuses a cluster the inventory does not have, naming the ones it has', async () => {
    await expect(
      startWorkers(parseConfig({ ...base, clusters: ['atlantis'] }), { logger: silent, inventory }),
    ).rejects.toThrow(/FLOTILLA_CLUSTERS \(clusters\): "atlantis" not in the inventory \(has: .*cloud-hk/);
  });

  it('a hub-only worker and the agent deliver a real deploy to the agent cluster', async () => {
    const hub = await startWorkers(parseConfig({ ...base, clusters: [], hub: true }), {
      logger: silent,
      inventory,
      workflowBundle: bundle,
    });
    handles.push(hub);
    expect(hub.queues).toEqual([{ taskQueue: HUB_TASK_QUEUE, serves: 'hub' }]);
    const agent = await startWorkers(parseConfig({ ...base, clusters: [agentCluster.name] }), {
      logger: silent,
      inventory,
    });
    handles.push(agent);

    const namespace = `t-worker-${run}`;
    const image = `${stack.registries.find((r) => r.region === 'central')!.host}/demo/web:v2`;
    const request = DeployRequestSchema.parse({
      type: 'deploy',
      app: { name: 'web', namespace, image, replicas: 2, placement: { clusters: [agentCluster.name] } },
      onFailure: 'fail',
      rolloutTimeout: '60s',
      unreachableTimeout: '30s',
    });
    const k8s = createClusterClients(agentCluster);
    try {
      const h = await deliverVia(client, HUB_TASK_QUEUE, request, { id: `delivery-worker-test-${run}`, requestedBy: 'worker-test' });
      const status = await h.result();
      expect((status as DeliveryStatus).phase).toBe('Healthy');
      const d = await k8s.apps.readNamespacedDeployment({ name: 'web', namespace });
      // Pinned, from the agent cluster's regional registry: the hub-only worker replicated it there first.
      expect(d.spec?.template.spec?.containers[0]?.image).toBe(expectedRef(inventory, agentCluster.name, `${image.replace(/:v2$/, '')}@${await digestOf(image)}`));
      await client.workflow.getHandle(applicationWorkflowId(namespace, 'web')).terminate('test over');
      expect(d.status?.readyReplicas).toBe(2);
    } finally {
      await k8s.core.deleteNamespace({ name: namespace }).catch(() => undefined);
    }
    await Promise.all([hub.shutdown(), agent.shutdown()]);
  });
});
