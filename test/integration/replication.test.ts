/**
 * Replication on the real stack (real registries, real pulls, the real worker
 * and API): a delivery whose wave 2 region has its registry down waits in that
 * wave's replicate step and proceeds once the registry is back, with no pod
 * there ever failing to pull; a deploy that skips replication fails on
 * ErrImagePull; POST /v1/replications copies an image and a multi-arch index to
 * every registry with identical digests (read by skopeo, not by our copier).
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { Client, Connection } from '@temporalio/client';
import type { ClusterClients } from '../../activities/kubernetes/clients.ts';
import type { DeliveryStatus, ReplicationStatus } from '../../model/index.ts';
import { fault, stackOptions } from '../../stack/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { parseConfig } from '../../worker/config.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import { CI, VIEWER, tokens } from '../support/tokens.ts';
import { pushTestImage, skopeo } from '../support/registries.ts';
import { clusterClients, deleteNamespaces, deploymentsIn, until } from './support.ts';

const stack: StackInfo = inject('stack');
const inventory = inventoryFromStack(stack);
const host = (name: string) => stack.registries.find((r) => r.name === name)!.host;
const central = host('central');
const run = randomUUID().slice(0, 8);

let workers: WorkersHandle;
let connection: Connection;
let api: Express;
let clients: Map<string, ClusterClients>;
let work: string;
const namespaces = new Set<string>();

beforeAll(async () => {
  const silent = createLogger('silent');
  const config = parseConfig({ temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace }, inventoryPath: '(given)', logLevel: 'warn' });
  workers = await startWorkers(config, { inventory, logger: silent });
  connection = await Connection.connect({ address: stack.temporal.address });
  api = createApp({ temporal: new Client({ connection, namespace: stack.temporal.namespace }), inventory, tokens, logger: silent });
  clients = clusterClients(inventory);
  work = mkdtempSync(path.join(tmpdir(), 'replication-'));
});

afterAll(async () => {
  await fault('registry-up', 'cn-south', stackOptions(stack)).catch(() => undefined);
  await deleteNamespaces(clients, namespaces);
  await workers?.shutdown();
  await connection?.close();
  rmSync(work, { recursive: true, force: true });
});

/** sha256 of the manifest bytes skopeo reads from the registry: the digest, computed by us from skopeo's bytes. */
async function manifestDigest(ref: string): Promise<string> {
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return `sha256:${createHash('sha256').update(raw).digest('hex')}`;
}

const status = async (id: string) => (await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER)).body as DeliveryStatus;

/** A deploy of `image` with no registry override: each cluster pulls from its inventory mirror, the default. */
function deploy(ns: string, image: string, clustersInWaves: string[][], extra: Record<string, unknown> = {}) {
  namespaces.add(ns);
  return request(api)
    .post('/v1/deliveries')
    .set('Authorization', CI)
    .send({
      type: 'deploy',
      app: { name: 'web', namespace: ns, image, replicas: clustersInWaves.flat().length, placement: { clusters: clustersInWaves.flat() } },
      waves: clustersInWaves,
      ...extra,
    });
}

/** Every pull problem a pod of the namespace showed: container states now, and Failed/BackOff events. */
async function pullTrouble(cluster: string, ns: string): Promise<string[]> {
  const c = clients.get(cluster)!;
  const pods = await c.core.listNamespacedPod({ namespace: ns });
  const states = pods.items.flatMap((p) => (p.status?.containerStatuses ?? []).map((s) => s.state?.waiting?.reason).filter((r): r is string => !!r && /ImagePull|ErrImage/.test(r)));
  const events = await c.core.listNamespacedEvent({ namespace: ns });
  return [...states, ...events.items.filter((e) => e.reason === 'Failed' || e.reason === 'BackOff').map((e) => `${e.reason}: ${e.message}`)];
}

describe('replication on the stack', () => {
  it('a delivery waits in wave 2\'s replicate step while that region\'s registry is down, proceeds once it is back, and no pod there fails to pull', async () => {
    const img = await pushTestImage(work, central, `repl-${run}/wave`, { layers: 2, layerSizeKiB: 128 });
    const ns = `repl-wave-${run}`;
    const opts = stackOptions(stack);
    await fault('registry-down', 'cn-south', opts);
    let up = false;
    try {
      const res = await deploy(ns, img.ref, [['beijing'], ['shenzhen']], { onFailure: 'fail' });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const id = res.body.id as string;
      const waiting = await until(() => status(id), (s) => s.currentWave === 1 && /replicating/.test(s.clusters.shenzhen?.message ?? ''), 'wave 2 replicating');
      expect(waiting.steps[0]).toBe('replicate');
      expect(waiting.clusters.beijing!.phase).toBe('Healthy');
      // It keeps waiting (retries with backoff) and does not touch the cluster.
      await new Promise((r) => setTimeout(r, 8_000));
      const still = await status(id);
      expect(still.phase).toBe('Progressing');
      expect(still.clusters.shenzhen).toMatchObject({ phase: 'Pending', step: 0 });
      expect((await deploymentsIn(new Map([['shenzhen', clients.get('shenzhen')!]]), ns)).shenzhen).toBeNull();
      await fault('registry-up', 'cn-south', opts);
      up = true;
      const final = await until(() => status(id), (s) => ['Healthy', 'Degraded', 'RolledBack', 'Aborted'].includes(s.phase), 'delivery ends', 180_000);
      expect(final.phase, final.message).toBe('Healthy');
      const south = `${host('cn-south')}/repl-${run}/wave@${img.digest}`;
      const north = `${host('cn-north')}/repl-${run}/wave@${img.digest}`;
      const d = await deploymentsIn(clients, ns);
      expect(d.shenzhen).toMatchObject({ image: south, ready: 1 });
      expect(d.beijing).toMatchObject({ image: north, ready: 1 });
      // The regional registries hold the central digest, as skopeo reads them.
      for (const ref of [south, north]) expect(await manifestDigest(ref)).toBe(await manifestDigest(img.ref));
      expect(await pullTrouble('shenzhen', ns)).toEqual([]);
    } finally {
      if (!up) await fault('registry-up', 'cn-south', opts);
    }
  }, 300_000);

  it('a deploy with replicate: false to a region pulling from its own registry fails on ErrImagePull after grace.imagePull', async () => {
    const img = await pushTestImage(work, central, `repl-${run}/skip`, { layers: 1, layerSizeKiB: 64 });
    const ns = `repl-skip-${run}`;
    const res = await deploy(ns, img.ref, [['shenzhen']], { replicate: false, onFailure: 'fail', grace: { imagePull: '15s' } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const final = await until(() => status(res.body.id as string), (s) => ['Healthy', 'Degraded', 'RolledBack'].includes(s.phase), 'delivery ends', 180_000);
    expect(final.phase).toBe('Degraded');
    expect(final.steps).toEqual(['apply', 'wait', 'prune']);
    expect(final.clusters.shenzhen!.failureType).toBe('RolloutFailed');
    expect(final.clusters.shenzhen!.message).toMatch(/ErrImagePull|ImagePullBackOff/);
    expect((await pullTrouble('shenzhen', ns)).some((t) => /ErrImagePull|ImagePullBackOff|Failed to pull/.test(t))).toBe(true);
  }, 240_000);

  it('POST /v1/replications copies an image and a multi-arch index to every registry with identical digests; GET shows each target', async () => {
    const img = await pushTestImage(work, central, `repl-${run}/api`, { layers: 2, layerSizeKiB: 64 });
    for (const image of [img.ref, `${central}/demo/web:multi`]) {
      const res = await request(api).post('/v1/replications').set('Authorization', CI).send({ image, to: 'all' });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(res.headers.location).toBe(`/v1/replications/${res.body.id}`);
      expect(res.body.targets).toEqual(['cn-north', 'cn-south', 'ap-east']);
      const s = await until(
        async () => (await request(api).get(res.headers.location!).set('Authorization', VIEWER)).body as ReplicationStatus,
        (x) => x.phase === 'Succeeded' || x.phase === 'Failed',
        `replication of ${image}`,
        120_000,
      );
      expect(s.phase, s.message).toBe('Succeeded');
      const want = await manifestDigest(image);
      expect(s.digest).toBe(want);
      for (const name of ['cn-north', 'cn-south', 'ap-east']) {
        const t = s.targets[name]!;
        expect(t.phase).toBe('Succeeded');
        expect(t.pinned).toBe(`${host(name)}/${image.slice(central.length + 1).replace(/:[^:]+$/, '')}@${want}`);
        expect(await manifestDigest(t.pinned!)).toBe(want);
      }
    }
    const list = await request(api).get('/v1/replications').set('Authorization', VIEWER);
    expect(list.status).toBe(200);
  }, 300_000);

  it('POST /v1/replications refuses a bad body (400 with paths), an unknown registry and an image its registry lacks (422)', async () => {
    const post = (body: unknown) => request(api).post('/v1/replications').set('Authorization', CI).send(body as object);
    const bad = await post({ image: 'NOT AN IMAGE', to: [] });
    expect(bad.status).toBe(400);
    expect(bad.body.details.map((d: { path: string }) => d.path).sort()).toEqual(['image', 'to']);
    const unknown = await post({ image: `${central}/demo/web:v1`, to: ['mars'] });
    expect(unknown.status).toBe(422);
    expect(unknown.body.details[0].path).toBe('to.0');
    const missing = await post({ image: `${central}/demo/web:no-such-tag`, to: 'all' });
    expect(missing.status).toBe(422);
    expect(missing.body.message).toMatch(/no-such-tag/);
    const viewer = await request(api).post('/v1/replications').set('Authorization', VIEWER).send({ image: `${central}/demo/web:v1`, to: 'all' });
    expect(viewer.status).toBe(403);
  }, 120_000);
});
