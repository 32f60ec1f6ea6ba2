/**
 * The HTTP API on the real local stack: the real worker (hub and one queue per
 * cluster), real Kubernetes control planes with kwok nodes. What a user checks
 * is read back from the clusters: the Deployment's image and ready replicas, or
 * that nothing was created at all.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { Client, Connection } from '@temporalio/client';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { deleteNamespaces, deploymentsIn, digestOf, expectedRef } from './support.ts';
import type { DeliveryStatus } from '../../model/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { parseConfig } from '../../worker/config.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { createApp } from '../../api/app.ts';
import { CI, SRE, VIEWER, tokens } from '../support/tokens.ts';
import { createLogger } from '../../api/logger.ts';

const stack: StackInfo = inject('stack');
const inventory = inventoryFromStack(stack);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const pinnedImage = async (tag: string) => `${central}/demo/web@${await digestOf(image(tag))}`;
/** What `cluster` runs for a tag: pinned, from the cluster's regional registry. */
const runs = async (cluster: string, tag: string) => expectedRef(inventory, cluster, await pinnedImage(tag));


let workers: WorkersHandle;
let connection: Connection;
let api: Express;
const clients = new Map<string, ClusterClients>();
const namespaces = new Set<string>();

beforeAll(async () => {
  const silent = createLogger('silent');
  const config = parseConfig({
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    logLevel: 'warn',
  });
  workers = await startWorkers(config, { inventory, logger: silent });
  connection = await Connection.connect({ address: stack.temporal.address });
  const temporal = new Client({ connection, namespace: stack.temporal.namespace });
  api = createApp({ temporal, inventory, tokens, logger: silent });
  for (const c of inventory.clusters)
    clients.set(c.name, createClusterClients(c, { requestTimeoutMs: 5_000 }));
});

afterAll(async () => {
  await deleteNamespaces(clients, namespaces);
  await workers?.shutdown();
  await connection?.close();
});

function freshNamespace(prefix: string): string {
  const ns = `api-${prefix}-${randomUUID().slice(0, 8)}`;
  namespaces.add(ns);
  return ns;
}

const clusters = ['beijing', 'shenzhen', 'cloud-hk'];
function deployBody(
  ns: string,
  img: string,
  extra: Record<string, unknown> = {},
  template?: Record<string, unknown>,
) {
  return {
    type: 'deploy',
    app: {
      name: 'web',
      namespace: ns,
      image: img,
      replicas: 4,
      placement: { clusters },
      ...(template ? { template } : {}),
    },
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    rolloutTimeout: '2m',
    // Pods the stack's simulations keep unready fail soon, not after the 3-minute default.
    grace: { unready: '5s', unschedulable: '10s' },
    ...extra,
  };
}

/** Each cluster's Deployment web in `ns`: image, replicas and ready replicas, or null when there is none. */
async function deployments(ns: string) {
  const all = await deploymentsIn(clients, ns);
  return Object.fromEntries(
    Object.entries(all).map(([n, d]) => [n, d && { image: d.image, ready: d.ready, replicas: d.replicas }]),
  );
}

async function until(id: string, phases: string[], timeoutMs = 180_000): Promise<DeliveryStatus> {
  const end = Date.now() + timeoutMs;
  let last: DeliveryStatus | undefined;
  while (Date.now() < end) {
    const res = await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER);
    expect(res.status).toBe(200);
    last = res.body as DeliveryStatus;
    if (phases.includes(last.phase)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`delivery ${id} not in ${phases.join('|')} after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

describe('HTTP API on the local stack', () => {
  it('answers bad input, bad tokens and wrong roles, and nothing changes in any cluster', async () => {
    const ns = freshNamespace('bad');
    const good = deployBody(ns, image('v1'));
    const answers: [string, number][] = [];
    const send = async (label: string, body: unknown, auth?: string) => {
      const r = request(api).post('/v1/deliveries');
      const res = await (auth ? r.set('Authorization', auth) : r).send(body as object);
      answers.push([label, res.status]);
    };
    await send('no token', good);
    await send('unknown token', good, 'Bearer 0123456789abcdef-unknown');
    await send('viewer', good, VIEWER);
    await send('replicas as text', { ...good, app: { ...good.app, replicas: 'four' } }, CI);
    await send(
      'unknown cluster',
      { ...good, app: { ...good.app, placement: { clusters: ['beijing', 'atlantis'] } }, waves: undefined },
      CI,
    );
    await send('bad image', { ...good, app: { ...good.app, image: 'UPPER/Case::bad' } }, CI);
    expect(answers).toEqual([
      ['no token', 401],
      ['unknown token', 401],
      ['viewer', 403],
      ['replicas as text', 400],
      ['unknown cluster', 422],
      ['bad image', 422],
    ]);
    expect(await deployments(ns)).toEqual({ beijing: null, shenzhen: null, 'cloud-hk': null });
    expect((await request(api).get(`/v1/apps/web?namespace=${ns}`).set('Authorization', VIEWER)).status).toBe(
      404,
    );
  });

  it('delivers to three clusters in two waves: every Deployment runs the image with its replicas, all ready', async () => {
    const ns = freshNamespace('deploy');
    const res = await request(api)
      .post('/v1/deliveries')
      .set('Authorization', CI)
      .send(deployBody(ns, image('v1')));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const done = await until(res.body.id as string, [
      'Healthy',
      'Degraded',
      'NeedsAttention',
      'RolledBack',
      'Aborted',
    ]);
    expect(done.phase, done.message).toBe('Healthy');
    // 4 replicas over capacities 2:1:1, every cluster on the digest v1 had when the delivery was planned.
    const v1 = await pinnedImage('v1');
    expect(res.body.digests).toEqual({ [image('v1')]: v1.split('@')[1] });
    expect(await deployments(ns)).toEqual({
      beijing: { image: await runs('beijing', 'v1'), ready: 2, replicas: 2 },
      shenzhen: { image: await runs('shenzhen', 'v1'), ready: 1, replicas: 1 },
      'cloud-hk': { image: await runs('cloud-hk', 'v1'), ready: 1, replicas: 1 },
    });
    const app = (await request(api).get(`/v1/apps/web?namespace=${ns}`).set('Authorization', VIEWER))
      .body as { clusters: Record<string, { image: string }> };
    expect(Object.values(app.clusters).map((x) => x.image)).toEqual(
      await Promise.all(Object.keys(app.clusters).map((c) => runs(c, 'v1'))),
    );
  });

  it('refuses a second delivery while one waits for an SRE, returns the same delivery for a repeated key, and frees the lock on abort', async () => {
    const ns = freshNamespace('lock');
    const unready = { annotations: { 'flotilla.dev/simulate': 'unready' } };
    const first = await request(api)
      .post('/v1/deliveries')
      .set('Authorization', CI)
      .set('Idempotency-Key', `build-${ns}`)
      .send(deployBody(ns, image('v1'), {}, unready));
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const id = first.body.id as string;
    const paused = await until(id, ['NeedsAttention', 'Healthy', 'Degraded']);
    expect(paused.phase).toBe('NeedsAttention');
    expect(paused.clusters.beijing!.failureType).toBe('RolloutFailed');

    const second = await request(api)
      .post('/v1/deliveries')
      .set('Authorization', CI)
      .send(deployBody(ns, image('v2')));
    expect(second.status).toBe(409);
    expect(second.body.details.activeDelivery).toBe(id);
    const repeat = await request(api)
      .post('/v1/deliveries')
      .set('Authorization', CI)
      .set('Idempotency-Key', `build-${ns}`)
      .send(deployBody(ns, image('v1'), {}, unready));
    expect(repeat.status).toBe(200);
    expect(repeat.body.id).toBe(id);
    // Only the first delivery's wave 1 ever reached a cluster.
    const now = await deployments(ns);
    expect(now.beijing?.image).toBe(await runs('beijing', 'v1'));
    expect([now.shenzhen, now['cloud-hk']]).toEqual([null, null]);

    const abort = await request(api)
      .post(`/v1/deliveries/${id}/actions`)
      .set('Authorization', SRE)
      .send({ action: 'abort', comment: 'bad build' });
    expect(abort.status, JSON.stringify(abort.body)).toBe(200);
    await until(id, ['Aborted']);
    const next = await request(api)
      .post('/v1/deliveries')
      .set('Authorization', CI)
      .send(deployBody(ns, image('v2')));
    expect(next.status, JSON.stringify(next.body)).toBe(202);
    expect((await until(next.body.id as string, ['Healthy', 'Degraded', 'NeedsAttention'])).phase).toBe(
      'Healthy',
    );
    expect(Object.values(await deployments(ns)).map((d) => [d?.image, d?.ready])).toEqual([
      [await runs('beijing', 'v2'), 2],
      [await runs('shenzhen', 'v2'), 1],
      [await runs('cloud-hk', 'v2'), 1],
    ]);
  });
});
