/**
 * The holes issue #6 found in the engine core, each shown on the real stack
 * through the HTTP API and read back from the clusters: what a user would see.
 */
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { Client, Connection } from '@temporalio/client';
import type { ClusterClients } from '../../activities/kubernetes/clients.ts';
import type { DeliveryStatus } from '../../model/index.ts';
import { fault, stackOptions } from '../../stack/index.ts';
import { parseConfig } from '../../worker/config.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import { CI, SRE, VIEWER, tokens } from '../support/tokens.ts';
import { clusterClients, cordon, deleteNamespaces, deploymentsIn, digestOf, expectedRef, runInventory, until } from './support.ts';

const run = promisify(execFile);
const stack = inject('stack');
const inventory = runInventory(stack);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const CLUSTERS = ['beijing', 'shenzhen', 'cloud-hk'];

let workers: WorkersHandle;
let connection: Connection;
let api: Express;
let clients: Map<string, ClusterClients>;
const namespaces = new Set<string>();

beforeAll(async () => {
  const silent = createLogger('silent');
  const config = parseConfig({
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    logLevel: 'silent',
    shutdownGraceMs: 2_000,
  });
  workers = await startWorkers(config, { inventory, logger: silent });
  connection = await Connection.connect({ address: stack.temporal.address });
  const temporal = new Client({ connection, namespace: stack.temporal.namespace });
  api = createApp({ temporal, inventory, tokens, logger: silent });
  clients = clusterClients(inventory);
});

afterAll(async () => {
  await deleteNamespaces(clients, namespaces);
  await workers?.shutdown();
  await connection?.close();
});

function freshNamespace(prefix: string): string {
  const ns = `h-${prefix}-${randomUUID().slice(0, 6)}`;
  namespaces.add(ns);
  return ns;
}

function body(ns: string, img: string, extra: Record<string, unknown> = {}, app: Record<string, unknown> = {}) {
  return {
    type: 'deploy',
    app: { name: 'web', namespace: ns, image: img, replicas: 4, placement: { clusters: CLUSTERS }, ...app },
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    rolloutTimeout: '2m',
    ...extra,
  };
}

const post = (b: object, auth = CI, key?: string) => {
  const r = request(api).post('/v1/deliveries').set('Authorization', auth);
  return (key ? r.set('Idempotency-Key', key) : r).send(b);
};
const act = (id: string, b: object, key?: string) => {
  const r = request(api).post(`/v1/deliveries/${id}/actions`).set('Authorization', SRE);
  return (key ? r.set('Idempotency-Key', key) : r).send(b);
};
const statusOf = async (id: string): Promise<DeliveryStatus> => {
  const res = await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER);
  if (res.status !== 200) throw new Error(`GET ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as DeliveryStatus;
};
const untilPhase = (id: string, phases: string[], timeoutMs = 180_000) =>
  until(() => statusOf(id), (s) => phases.includes(s.phase), `delivery ${id} in ${phases.join('|')}`, timeoutMs);
const finished = ['Healthy', 'Degraded', 'Aborted', 'RolledBack'];

async function deliver(b: object, auth = CI): Promise<DeliveryStatus> {
  const res = await post(b, auth);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return untilPhase(res.body.id as string, [...finished, 'NeedsAttention']);
}

/** image, replicas, ready per cluster (null: no Deployment). */
async function view(ns: string, name = 'web') {
  const all = await deploymentsIn(clients, ns, name);
  return Object.fromEntries(
    Object.entries(all).map(([n, d]) => [n, d && { image: d.image, replicas: d.replicas, ready: d.ready }]),
  );
}


describe('hole 12/13: what an API server or an owner would refuse is refused at POST, and nothing changes', () => {
  it('an annotation key the API server rejects: 422 naming the cluster and the field', async () => {
    const ns = freshNamespace('annot');
    const res = await post(body(ns, image('v1'), {}, { template: { annotations: { '!!!': 'x' } } }));
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    expect(JSON.stringify(res.body.details)).toMatch(/beijing/);
    expect(JSON.stringify(res.body.details)).toMatch(/annotations/);
    expect(await view(ns)).toEqual({ beijing: null, shenzhen: null, 'cloud-hk': null });
  });

  it('a kube-system namespace: 403, nothing created', async () => {
    const res = await post(body('kube-system', image('v1'), {}, { name: `coredns-${randomUUID().slice(0, 4)}` }));
    expect(res.status, JSON.stringify(res.body)).toBe(403);
    expect(res.body.message).toMatch(/kube-system/);
  });

  it('an existing Deployment that Flotilla did not create: 409 naming its manager, left as it was', async () => {
    const ns = freshNamespace('foreign');
    const bj = clients.get('beijing')!;
    await bj.core.createNamespace({ body: { metadata: { name: ns } } });
    await bj.apps.createNamespacedDeployment({
      namespace: ns,
      fieldManager: 'kubectl-create',
      body: {
        metadata: { name: 'web', namespace: ns },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'theirs' } },
          template: { metadata: { labels: { app: 'theirs' } }, spec: { containers: [{ name: 'c', image: image('v3') }] } },
        },
      },
    });
    const res = await post(body(ns, image('v1')));
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.message).toMatch(/kubectl-create/);
    expect(res.body.message).toMatch(/beijing/);
    const v = await view(ns);
    expect(v.beijing?.image).toBe(image('v3'));
    expect([v.shenzhen, v['cloud-hk']]).toEqual([null, null]);
  });
});

describe('hole 3: rollback restores everything the delivery changed, and only removes what it created', () => {
  it('a delivery that changed only replicas, rolled back: the replicas return', async () => {
    const ns = freshNamespace('replicas');
    expect((await deliver(body(ns, image('v1')))).phase).toBe('Healthy');
    const before = await view(ns);
    const shenzhen = clients.get('shenzhen')!;
    await cordon(shenzhen, true); // shenzhen's new replicas find no node
    try {
      const s = await deliver(body(ns, image('v1'), { onFailure: 'rollback', grace: { unschedulable: '5s' } }, { replicas: 8 }));
      expect(s.phase, s.message).toBe('RolledBack');
    } finally {
      await cordon(shenzhen, false);
    }
    await until(() => view(ns), (v) => JSON.stringify(v) === JSON.stringify(before), 'replicas back', 60_000);
    expect(await view(ns)).toEqual(before);
  });

  it("a Service that existed before a first deploy is restored, not deleted, by that deploy's rollback", async () => {
    const ns = freshNamespace('svc');
    for (const c of clients.values()) await c.core.createNamespace({ body: { metadata: { name: ns } } });
    const svc = {
      metadata: { name: 'web', namespace: ns, labels: { team: 'shop' } },
      spec: { selector: { app: 'legacy' }, ports: [{ name: 'legacy', port: 9000, targetPort: 9000 }] },
    };
    for (const c of clients.values()) await c.core.createNamespacedService({ namespace: ns, body: svc, fieldManager: 'kubectl-create' });
    const shenzhen = clients.get('shenzhen')!;
    await cordon(shenzhen, true);
    try {
      const s = await deliver(body(ns, image('v1'), { onFailure: 'rollback', adopt: true, grace: { unschedulable: '5s' } }), SRE);
      expect(s.phase, s.message).toBe('RolledBack');
    } finally {
      await cordon(shenzhen, false);
    }
    for (const c of clients.values()) {
      const now = await c.core.readNamespacedService({ name: 'web', namespace: ns });
      expect([c.cluster, now.spec?.selector, now.spec?.ports?.map((p) => [p.name, p.port])]).toEqual([
        c.cluster,
        { app: 'legacy' },
        [['legacy', 9000]],
      ]);
    }
    expect(await view(ns)).toEqual({ beijing: null, shenzhen: null, 'cloud-hk': null });
  });
});

describe('hole 4: the application record tells what each cluster really runs', () => {
  it('after a Degraded delivery, GET /v1/apps shows the image and readiness read back from each cluster', async () => {
    const ns = freshNamespace('record');
    expect((await deliver(body(ns, image('v1')))).phase).toBe('Healthy');
    const hk = clients.get('cloud-hk')!;
    await cordon(hk, true);
    let s: DeliveryStatus;
    try {
      s = await deliver(body(ns, image('v2'), { onFailure: 'fail', grace: { unschedulable: '5s' } }));
    } finally {
      await cordon(hk, false);
    }
    expect(s.phase).toBe('Degraded');
    const running = await view(ns);
    const res = await request(api).get(`/v1/apps/web?namespace=${ns}`).set('Authorization', VIEWER);
    expect(res.status).toBe(200);
    const recorded = res.body.clusters as Record<string, { image: string }>;
    // cloud-hk's Deployment now has the v2 template (its rollout stalled): the record must say so.
    expect(running['cloud-hk']?.image).toMatch(/demo\/web/);
    for (const n of CLUSTERS) expect([n, recorded[n]?.image]).toEqual([n, running[n]?.image]);
  });
});

describe('hole 5: applications whose names only look alike keep apart', () => {
  it('shop-eu/web and shop/eu-web delivered at the same time: two locks, two records, both Healthy', async () => {
    const base = freshNamespace('ids');
    const a = `${base}-eu`;
    namespaces.add(a);
    const [ra, rb] = await Promise.all([
      post(body(a, image('v1'), {}, { name: 'web' })),
      post(body(base, image('v2'), {}, { name: 'eu-web' })),
    ]);
    expect([ra.status, rb.status], JSON.stringify([ra.body, rb.body])).toEqual([202, 202]);
    const [sa, sb] = await Promise.all([untilPhase(ra.body.id, finished), untilPhase(rb.body.id, finished)]);
    expect([sa.phase, sb.phase]).toEqual(['Healthy', 'Healthy']);
    const appA = await request(api).get(`/v1/apps/web?namespace=${a}`).set('Authorization', VIEWER);
    const appB = await request(api).get(`/v1/apps/eu-web?namespace=${base}`).set('Authorization', VIEWER);
    expect([appA.body.namespace, appA.body.name, appB.body.namespace, appB.body.name]).toEqual([a, 'web', base, 'eu-web']);
    expect((await view(a, 'web')).beijing?.image).toMatch(/v1|@sha256/);
    expect((await view(base, 'eu-web')).beijing?.image).toMatch(/v2|@sha256/);
  });
});

describe('hole 8: an action repeated with the same Idempotency-Key gets the first answer', () => {
  it('abort twice with one key: 200 both times, the same delivery, Aborted', async () => {
    const ns = freshNamespace('actkey');
    const res = await post(body(ns, image('v1'), {}, { template: { annotations: { 'flotilla.dev/simulate': 'unready' } } }));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.id as string;
    await until(() => statusOf(id), (s) => s.clusters.beijing?.phase === 'Progressing', 'beijing rolling out');
    const key = `abort-${ns}`;
    const first = await act(id, { action: 'abort', comment: 'stop' }, key);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    await untilPhase(id, ['Aborted']);
    const again = await act(id, { action: 'abort', comment: 'stop' }, key);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect([again.body.id, again.body.audit.length]).toEqual([first.body.id, first.body.audit.length]);
  });
});

describe('hole 9: readiness settings follow the delivery', () => {
  it("the Deployment's progressDeadlineSeconds follows rolloutTimeout", async () => {
    const ns = freshNamespace('deadline');
    const s = await deliver(body(ns, image('v1'), { rolloutTimeout: '90s', waves: undefined }));
    expect(s.phase).toBe('Healthy');
    for (const c of clients.values()) {
      const d = await c.apps.readNamespacedDeployment({ name: 'web', namespace: ns });
      expect([c.cluster, d.spec?.progressDeadlineSeconds]).toEqual([c.cluster, 90]);
    }
  });
});

describe('hole 10: a tag is resolved once; every wave runs the same bits', () => {
  it('the tag moved in the registry between wave 1 and wave 2: every cluster runs the digest it had at planning', async () => {
    const ns = freshNamespace('digest');
    const tag = `moving-${ns}`;
    const copy = (from: string, to: string) =>
      run('skopeo', ['copy', '--insecure-policy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${from}`, `docker://${to}`]);
    await copy(image('v1'), image(tag));
    const planned = await digestOf(image(tag));
    const opts = stackOptions(stack);
    await fault('cluster-down', 'shenzhen', opts);
    let id: string;
    try {
      const res = await post(body(ns, image(tag), { unreachableTimeout: '5m' }));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      id = res.body.id as string;
      await until(() => statusOf(id), (s) => s.clusters['cloud-hk']?.phase === 'Healthy', 'wave 2 under way, shenzhen waiting');
      await copy(image('v2'), image(tag)); // the tag moves while shenzhen is still to come
      expect(await digestOf(image(tag))).not.toBe(planned);
    } finally {
      await fault('cluster-up', 'shenzhen', opts);
    }
    expect((await untilPhase(id, finished)).phase).toBe('Healthy');
    const v = await view(ns);
    for (const n of CLUSTERS) expect([n, v[n]?.image]).toEqual([n, expectedRef(inventory, n, `${central}/demo/web@${planned}`)]);
  });
});
