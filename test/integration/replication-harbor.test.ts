/**
 * A Harbor inside a delivery, on the real stack: the cn-south region's registry
 * is a Harbor (the spec-validated double of activities/harbor/testing/, fronting
 * the stack's cn-south registry: pods pull from that registry, Harbor's API is
 * the double's). A delivery's wave 2 replicates into it through Harbor's own
 * replication (a pull policy from central ensured, an execution started and
 * followed), not through the copier, and shenzhen's pods run the pinned regional
 * digest; an execution that fails stops wave 2 with the failed task's log in the
 * reason, shenzhen untouched. The Harbor's password is in the worker's
 * credentials file only: the test reads the delivery's history and finds it nowhere.
 */
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { Client, Connection } from '@temporalio/client';
import { stringify } from 'yaml';
import type { ClusterClients } from '../../activities/kubernetes/clients.ts';
import { startHarborDouble, type HarborDouble } from '../../activities/harbor/testing/double.ts';
import type { DeliveryStatus, Inventory } from '../../model/index.ts';
import { fault, stackOptions } from '../../stack/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { parseConfig } from '../../worker/config.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import { CI, VIEWER, tokens } from '../support/tokens.ts';
import { pushTestImage, skopeo } from '../support/registries.ts';
import { clusterClients, deleteNamespaces, deploymentsIn, expectedRef, runInventory, until } from './support.ts';

const stack: StackInfo = inject('stack');
const host = (name: string) => stack.registries.find((r) => r.name === name)!.host;
const central = host('central');
const run = randomUUID().slice(0, 8);
const HARBOR_USER = 'robot$flotilla-cn-south';
const HARBOR_PASSWORD = `harbor-pw-${randomUUID()}`;

let double: HarborDouble;
let inventory: Inventory;
let workers: WorkersHandle;
let connection: Connection;
let temporal: Client;
let api: Express;
let clients: Map<string, ClusterClients>;
let work: string;
const namespaces = new Set<string>();

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'replication-harbor-'));
  // The region's Harbor: its artifacts are the stack's cn-south registry, where shenzhen pulls from.
  double = await startHarborDouble({ localRegistry: host('cn-south'), username: HARBOR_USER, password: HARBOR_PASSWORD });
  const base = runInventory(stack, run);
  inventory = {
    ...base,
    registries: base.registries.map((r) =>
      r.name === 'cn-south' ? { ...r, type: 'harbor' as const, harborUrl: double.url, credentials: 'harbor-cn-south' } : r,
    ),
  };
  // The worker's credentials file (0600): the only place the Harbor's password lives.
  const credentialsFile = path.join(work, 'registry-credentials.yaml');
  writeFileSync(credentialsFile, stringify({ registries: { 'harbor-cn-south': { username: HARBOR_USER, password: HARBOR_PASSWORD } } }));
  chmodSync(credentialsFile, 0o600);
  const silent = createLogger('silent');
  const config = parseConfig({
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    registryCredentialsPath: credentialsFile,
    logLevel: 'silent',
    shutdownGraceMs: 2_000,
  });
  workers = await startWorkers(config, { inventory, logger: silent });
  connection = await Connection.connect({ address: stack.temporal.address });
  temporal = new Client({ connection, namespace: stack.temporal.namespace });
  api = createApp({ temporal, inventory, tokens, logger: silent });
  clients = clusterClients(inventory);
});

afterEach(() => {
  // Every request Flotilla sent to Harbor, and every answer, matched Harbor's spec.
  expect(double.violations).toEqual([]);
});

afterAll(async () => {
  await fault('registry-up', 'cn-south', stackOptions(stack)).catch(() => undefined);
  await deleteNamespaces(clients ?? new Map(), namespaces);
  await workers?.shutdown();
  await connection?.close();
  await double?.stop();
  rmSync(work, { recursive: true, force: true });
});

const status = async (id: string) => (await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER)).body as DeliveryStatus;
const finished = (s: DeliveryStatus) => ['Healthy', 'Degraded', 'RolledBack', 'Aborted', 'NeedsAttention'].includes(s.phase);

/** A deploy of `image` to beijing (wave 1, cn-north: the copier) then shenzhen (wave 2, cn-south: the Harbor), no registry override. */
async function deploy(ns: string, image: string): Promise<string> {
  namespaces.add(ns);
  const res = await request(api)
    .post('/v1/deliveries')
    .set('Authorization', CI)
    .send({
      type: 'deploy',
      app: { name: 'web', namespace: ns, image, replicas: 2, placement: { clusters: ['beijing', 'shenzhen'] } },
      waves: [['beijing'], ['shenzhen']],
      onFailure: 'fail',
      grace: { imagePull: '20s' },
    });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.id as string;
}

async function manifestDigest(ref: string): Promise<string> {
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

/** The whole history of a delivery, as Temporal stores it (inputs, results, heartbeats, failures). */
async function historyText(id: string): Promise<string> {
  return JSON.stringify(await temporal.workflow.getHandle(id).fetchHistory());
}

describe('a region whose registry is a Harbor', () => {
  it('wave 2 replicates through Harbor (a pull policy from central, an execution followed to Success) and shenzhen runs the pinned regional digest', async () => {
    const repo = `harbor-delivery-${run}/web`;
    const img = await pushTestImage(work, central, repo, { layers: 2, layerSizeKiB: 128 });
    const ns = `harbor-ok-${run}`;
    const before = double.requests.length;
    const id = await deploy(ns, img.ref);
    const final = await until(() => status(id), finished, 'delivery ends', 240_000);
    expect(final.phase, final.message).toBe('Healthy');
    expect(final.steps[0]).toBe('replicate');

    // Harbor did the copy into cn-south: a pull policy from central for this repository and tag, one execution.
    const calls = double.requests.slice(before).map((r) => r.operationId);
    expect(calls).toEqual(expect.arrayContaining(['createReplicationPolicy', 'startReplication', 'getReplicationExecution']));
    expect(calls.filter((c) => c === 'startReplication')).toHaveLength(1);
    const policy = [...double.policies.values()].find((p) => p.filters?.some((f) => f.type === 'name' && f.value === repo))!;
    expect(policy).toMatchObject({ trigger: { type: 'manual' }, filters: expect.arrayContaining([{ type: 'tag', value: 'v1' }]) });
    expect(policy.dest_registry).toBeUndefined();
    const endpoint = double.registries.get(policy.src_registry!.id!)!;
    expect(endpoint.url).toBe(`http://${central}`);

    // Each cluster runs the digest from its own region's registry, which holds central's bytes (skopeo reads them).
    const pinned = `${central}/${repo}@${img.digest}`;
    const d = await deploymentsIn(clients, ns);
    expect(d.shenzhen).toMatchObject({ image: expectedRef(inventory, 'shenzhen', pinned), ready: 1 });
    expect(d.beijing).toMatchObject({ image: expectedRef(inventory, 'beijing', pinned), ready: 1 });
    expect(d.shenzhen!.image).toBe(`${host('cn-south')}/${repo}@${img.digest}`);
    expect(await manifestDigest(d.shenzhen!.image!)).toBe(await manifestDigest(img.ref));
    const pods = await clients.get('shenzhen')!.core.listNamespacedPod({ namespace: ns });
    expect(pods.items.map((p) => p.status?.containerStatuses?.[0]?.imageID)).toEqual([`${host('cn-south')}/${repo}@${img.digest}`]);

    // The Harbor's password never entered the delivery's history.
    const history = await historyText(id);
    expect(history).toContain('ensureHarborReplication');
    expect(history).not.toContain(HARBOR_PASSWORD);
  }, 300_000);

  it('a Harbor execution that fails stops wave 2 with the failed task and its log in the reason; shenzhen is never touched', async () => {
    const repo = `harbor-fail-${run}/web`;
    const img = await pushTestImage(work, central, repo, { layers: 1, layerSizeKiB: 128 });
    const ns = `harbor-fail-${run}`;
    const opts = stackOptions(stack);
    // The Harbor's storage (the cn-south registry) goes down: Harbor's API answers, its copy task fails.
    await fault('registry-down', 'cn-south', opts);
    let final: DeliveryStatus;
    try {
      const id = await deploy(ns, img.ref);
      final = await until(() => status(id), finished, 'delivery ends', 240_000);
    } finally {
      await fault('registry-up', 'cn-south', opts);
    }
    expect(final.phase, final.message).toBe('Degraded');
    expect(final.clusters.beijing!.phase).toBe('Healthy');
    const shenzhen = final.clusters.shenzhen!;
    expect(shenzhen).toMatchObject({ phase: 'Failed', failureType: 'ReplicationFailed', step: 0 });
    expect(shenzhen.message).toContain('registry cn-south');
    expect(shenzhen.message).toMatch(/replication execution \d+ \(policy \d+\) ended Error/);
    expect(shenzhen.message).toContain(`${repo}:[v1]`);
    expect(shenzhen.message).toMatch(/\[ERROR\] .*failed to copy/);
    // Wave 2's cluster untouched: no namespace's Deployment there.
    expect((await deploymentsIn(new Map([['shenzhen', clients.get('shenzhen')!]]), ns)).shenzhen).toBeNull();
  }, 300_000);
});
