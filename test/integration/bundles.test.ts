/**
 * Delivering what teams already have (issue #7), on the real stack through the
 * HTTP API: plain manifests, a Helm chart rendered by the real helm (from the
 * stack's registry over OCI), a Kustomize overlay rendered by the real
 * kustomize; per-cluster overrides of any object; readiness per kind; a custom
 * resource with its definition; pruning; versions and a rollback two versions
 * back. Every outcome is read back from each cluster's API server.
 */
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import type { ClusterClients } from '../../activities/kubernetes/clients.ts';
import type { DeliveryStatus } from '../../model/index.ts';
import { runHelm } from '../../stack/tools.ts';
import { parseConfig } from '../../worker/config.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import { CI, SRE, VIEWER, tokens } from '../support/tokens.ts';
import { clusterClients, deleteNamespaces, digestOf, expectedRef, runInventory, until } from './support.ts';

const stack = inject('stack');
const inventory = runInventory(stack);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const pinned = async (tag: string) => `${central}/demo/web@${await digestOf(image(tag))}`;
/** What `cluster` runs for a tag: pinned, from the cluster's regional registry (the inventory's mirror). */
const runs = async (cluster: string, tag: string) => expectedRef(inventory, cluster, await pinned(tag));
const CLUSTERS = ['beijing', 'shenzhen', 'cloud-hk'];
const work = mkdtempSync(path.join(tmpdir(), 'flotilla-bundles-'));

let workers: WorkersHandle;
let connection: Connection;
let api: Express;
let clients: Map<string, ClusterClients>;
const namespaces = new Set<string>();

beforeAll(async () => {
  const silent = createLogger('silent');
  const config = parseConfig({ temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace }, inventoryPath: '(given)', logLevel: 'silent', shutdownGraceMs: 2_000 });
  workers = await startWorkers(config, { inventory, logger: silent });
  connection = await Connection.connect({ address: stack.temporal.address });
  api = createApp({ temporal: new Client({ connection, namespace: stack.temporal.namespace }), inventory, tokens, logger: silent });
  clients = clusterClients(inventory);
});

afterAll(async () => {
  await deleteNamespaces(clients, namespaces);
  await workers?.shutdown();
  await connection?.close();
  rmSync(work, { recursive: true, force: true });
});

const fresh = (prefix: string) => {
  const ns = `b-${prefix}-${randomUUID().slice(0, 6)}`;
  namespaces.add(ns);
  return ns;
};
const finished = ['Healthy', 'Degraded', 'Aborted', 'RolledBack', 'NeedsAttention'];
const statusOf = async (id: string): Promise<DeliveryStatus> => (await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER)).body as DeliveryStatus;

async function deliver(body: object, auth = CI): Promise<DeliveryStatus> {
  const res = await request(api).post('/v1/deliveries').set('Authorization', auth).send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return until(() => statusOf(res.body.id), (s) => finished.includes(s.phase), `delivery ${res.body.id}`, 240_000);
}

// Objects of any kind, read as JSON and checked field by field below.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;
const get = (c: ClusterClients, apiPath: string) => c.rest<Json>('GET', apiPath).catch((e: { code?: number }) => (e.code === 404 ? null : Promise.reject(e)));
const each = async <T>(fn: (c: ClusterClients, name: string) => Promise<T>) => Object.fromEntries(await Promise.all([...clients].map(async ([n, c]) => [n, await fn(c, n)] as const)));

const deployment = (name: string, img: string, replicas: number, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, labels: { app: name } },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: img, ports: [{ containerPort: 8080 }] }] } },
    ...extra,
  },
});

describe('a bundle of plain manifests', () => {
  it('Deployment, ConfigMap, Service, Ingress, HPA and PDB to three clusters in two waves, with per-cluster overrides of the ConfigMap and the HPA bounds', async () => {
    const ns = fresh('bundle');
    const manifests = [
      deployment('web', image('v1'), 4),
      deployment('api', image('v2'), 1),
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web-config' }, data: { REGION: 'default', LOG: 'info' } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } },
      { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'web' }, spec: { rules: [{ host: 'web.example', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] } },
      { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'api' }, spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' }, minReplicas: 4, maxReplicas: 12, metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }] } },
      { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'web' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } },
    ];
    const s = await deliver({
      type: 'deploy',
      app: {
        name: 'shop',
        namespace: ns,
        // Multi-document YAML, as teams keep it.
        source: { manifests: manifests.map((m) => stringify(m)).join('---\n') },
        placement: { clusters: CLUSTERS },
        overrides: {
          'cloud-hk': { patches: [{ target: { kind: 'ConfigMap', name: 'web-config' }, path: '/data/REGION', value: 'hk' }, { target: { kind: 'HorizontalPodAutoscaler', name: 'api' }, path: '/spec/maxReplicas', value: 3 }] },
        },
        selectorOverrides: [{ clusterSelector: { provider: 'private' }, patches: [{ target: { kind: 'ConfigMap', name: 'web-config' }, path: '/data/REGION', value: 'cn' }] }],
      },
      waves: [['beijing'], ['shenzhen', 'cloud-hk']],
      onFailure: 'fail',
    });
    expect(s.phase, s.message).toBe('Healthy');
    expect(s.source).toBe('manifests');
    const v = await each(async (c) => ({
      web: (await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/web`))?.spec.replicas,
      webImage: (await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/web`))?.spec.template.spec.containers[0].image,
      ready: (await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/web`))?.status.readyReplicas,
      region: (await get(c, `/api/v1/namespaces/${ns}/configmaps/web-config`))?.data.REGION,
      hpa: await get(c, `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers/api`).then((h) => [h?.spec.minReplicas, h?.spec.maxReplicas]),
      kinds: [
        (await get(c, `/api/v1/namespaces/${ns}/services/web`))?.kind,
        (await get(c, `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`))?.kind,
        (await get(c, `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/web`))?.kind,
      ],
      managedBy: (await get(c, `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`))?.metadata.labels['app.kubernetes.io/managed-by'],
    }));
    const img = await pinned('v1');
    // web: 4 replicas over capacities 2:1:1; the HPA's 4..12 divided the same way (cloud-hk's max patched to 3).
    expect(v).toEqual({
      beijing: { web: 2, webImage: expectedRef(inventory, 'beijing', img), ready: 2, region: 'cn', hpa: [2, 6], kinds: ['Service', 'Ingress', 'PodDisruptionBudget'], managedBy: 'flotilla' },
      shenzhen: { web: 1, webImage: expectedRef(inventory, 'shenzhen', img), ready: 1, region: 'cn', hpa: [1, 3], kinds: ['Service', 'Ingress', 'PodDisruptionBudget'], managedBy: 'flotilla' },
      'cloud-hk': { web: 1, webImage: expectedRef(inventory, 'cloud-hk', img), ready: 1, region: 'hk', hpa: [1, 3], kinds: ['Service', 'Ingress', 'PodDisruptionBudget'], managedBy: 'flotilla' },
    });
    // The autoscaled Deployment's replicas are not Flotilla's: no field of spec.replicas is owned by it.
    const apiDeployment = await get(clients.get('beijing')!, `/apis/apps/v1/namespaces/${ns}/deployments/api`);
    const owned = JSON.stringify((apiDeployment!.metadata.managedFields as { manager: string; fieldsV1: unknown }[]).filter((f) => f.manager === 'flotilla').map((f) => f.fieldsV1));
    expect(owned).not.toContain('f:replicas');
  });
});

describe('the same application from a Helm chart and from a Kustomize overlay, rendered by the real tools', () => {
  it('a chart the test packages and pushes to central, with a values override per cluster', async () => {
    const ns = fresh('helm');
    const chart = path.join(work, 'shop');
    mkdirSync(path.join(chart, 'templates'), { recursive: true });
    writeFileSync(path.join(chart, 'Chart.yaml'), stringify({ apiVersion: 'v2', name: 'shop', version: '1.0.0' }));
    writeFileSync(path.join(chart, 'values.yaml'), stringify({ image: image('v2'), replicas: 3, greeting: 'hello' }));
    writeFileSync(
      path.join(chart, 'templates', 'app.yaml'),
      [
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\ndata:\n  GREETING: {{ .Values.greeting | quote }}',
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n  template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      containers:\n        - name: web\n          image: {{ .Values.image }}',
      ].join('\n---\n'),
    );
    await runHelm(stack.dataDir, ['package', chart, '--destination', work]);
    const tgz = path.join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);
    await runHelm(stack.dataDir, ['push', tgz, `oci://${central}/charts`, '--plain-http']);

    const s = await deliver({
      type: 'deploy',
      app: {
        name: 'shop',
        namespace: ns,
        source: { helm: { chart: `oci://${central}/charts/shop`, version: '1.0.0', values: { greeting: 'welcome' } } },
        placement: { clusters: CLUSTERS },
        distribution: 'duplicated',
        overrides: { 'cloud-hk': { values: { greeting: 'nei hou' } } },
      },
      onFailure: 'fail',
    });
    expect(s.phase, s.message).toBe('Healthy');
    const v = await each(async (c) => ({
      greeting: (await get(c, `/api/v1/namespaces/${ns}/configmaps/shop-greeting`))?.data.GREETING,
      replicas: (await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/shop`))?.status.readyReplicas,
      image: (await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/shop`))?.spec.template.spec.containers[0].image,
    }));
    const img = await pinned('v2');
    expect(v).toEqual({
      beijing: { greeting: 'welcome', replicas: 3, image: expectedRef(inventory, 'beijing', img) },
      shenzhen: { greeting: 'welcome', replicas: 3, image: expectedRef(inventory, 'shenzhen', img) },
      'cloud-hk': { greeting: 'nei hou', replicas: 3, image: expectedRef(inventory, 'cloud-hk', img) },
    });

    // The same chart uploaded with the request (a packaged .tgz, base64) renders the same.
    const ns2 = fresh('helm-up');
    const up = await deliver({
      type: 'deploy',
      app: { name: 'shop', namespace: ns2, source: { helm: { archive: readFileSync(tgz).toString('base64') } }, placement: { clusters: ['beijing'] } },
      onFailure: 'fail',
    });
    expect(up.phase, up.message).toBe('Healthy');
    expect((await get(clients.get('beijing')!, `/api/v1/namespaces/${ns2}/configmaps/shop-greeting`))?.data.GREETING).toBe('hello');
  });

  it('a Kustomize overlay sent with the request', async () => {
    const ns = fresh('kust');
    const files = {
      'base/kustomization.yaml': stringify({ resources: ['deployment.yaml'], configMapGenerator: [{ name: 'shop-env', literals: ['TIER=base'] }] }),
      'base/deployment.yaml': stringify(deployment('shop', image('v3'), 2)),
      'overlays/prod/kustomization.yaml': stringify({ resources: ['../../base'], commonLabels: { env: 'prod' }, configMapGenerator: [{ name: 'shop-env', behavior: 'merge', literals: ['TIER=prod'] }] }),
    };
    const s = await deliver({
      type: 'deploy',
      app: { name: 'shop', namespace: ns, source: { kustomize: { files, path: 'overlays/prod' } }, placement: { clusters: ['beijing', 'shenzhen'] } },
      onFailure: 'fail',
    });
    expect(s.phase, s.message).toBe('Healthy');
    const bj = clients.get('beijing')!;
    const d = await get(bj, `/apis/apps/v1/namespaces/${ns}/deployments/shop`);
    expect([d?.metadata.labels.env, d?.spec.template.spec.containers[0].image, d?.status.readyReplicas]).toEqual(['prod', await runs('beijing', 'v3'), 1]);
    const maps = (await bj.rest<{ items: { metadata: { name: string }; data: Record<string, string> }[] }>('GET', `/api/v1/namespaces/${ns}/configmaps`)).items.filter((m) => m.metadata.name.startsWith('shop-env'));
    expect(maps.map((m) => m.data.TIER)).toEqual(['prod']); // the generator's hashed name, merged by the overlay
  });
});

describe('readiness per kind', () => {
  it('a StatefulSet (a partitioned update), a DaemonSet and a Job that must complete', async () => {
    const ns = fresh('kinds');
    const sts = (img: string, partition: number) => ({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db' },
      spec: { serviceName: 'db', replicas: 3, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition } }, selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'db', image: img }] } } },
    });
    const bundle = (img: string, partition: number, job: string) => [
      sts(img, partition),
      { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent' }, spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'agent', image: img }] } } } },
      { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: job }, spec: { completions: 2, parallelism: 1, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'migrate', image: img }] } } } },
    ];
    const body = (img: string, partition: number, job: string) => ({ type: 'deploy', app: { name: 'data', namespace: ns, source: { manifests: bundle(img, partition, job) }, placement: { clusters: ['beijing'] }, distribution: 'duplicated' }, onFailure: 'fail' });
    const first = await deliver(body(image('v1'), 0, 'migrate-1'));
    expect(first.phase, first.message).toBe('Healthy');
    const bj = clients.get('beijing')!;
    const read = async () => ({
      sts: await get(bj, `/apis/apps/v1/namespaces/${ns}/statefulsets/db`).then((x) => [x?.status.readyReplicas, x?.status.updatedReplicas]),
      ds: await get(bj, `/apis/apps/v1/namespaces/${ns}/daemonsets/agent`).then((x) => [x?.status.desiredNumberScheduled, x?.status.numberReady]),
      job: (await get(bj, `/apis/batch/v1/namespaces/${ns}/jobs/migrate-1`))?.status.succeeded,
    });
    // Healthy only once every StatefulSet replica is ready, every node runs the agent, and the Job has completed.
    expect(await read()).toEqual({ sts: [3, 3], ds: [3, 3], job: 2 });

    // A partitioned update: only the pods above the partition take v2, and that is the rollout's goal.
    const second = await deliver(body(image('v2'), 2, 'migrate-2'));
    expect(second.phase, second.message).toBe('Healthy');
    const pods = (await bj.core.listNamespacedPod({ namespace: ns, labelSelector: 'app=db' })).items;
    const v2 = await runs('beijing', 'v2');
    expect(pods.map((p) => [p.metadata!.name, p.spec!.containers[0]!.image === v2]).sort()).toEqual([
      ['db-0', false],
      ['db-1', false],
      ['db-2', true],
    ]);
    expect((await get(bj, `/apis/batch/v1/namespaces/${ns}/jobs/migrate-2`))?.status.succeeded).toBe(2);
  });
});

describe('custom resources', () => {
  it('a custom resource delivered together with its definition in the same bundle', async () => {
    const ns = fresh('crd');
    const group = `g${randomUUID().slice(0, 6)}.flotilla.dev`;
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `widgets.${group}` },
      spec: { group, scope: 'Namespaced', names: { plural: 'widgets', singular: 'widget', kind: 'Widget' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } } } }] },
    };
    const widget = { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } };
    // The resource comes first in the request: Flotilla applies the definition first and waits until it is established.
    const s = await deliver({ type: 'deploy', app: { name: 'widgets', namespace: ns, source: { manifests: [widget, crd] }, placement: { clusters: CLUSTERS } }, onFailure: 'fail' });
    expect(s.phase, s.message).toBe('Healthy');
    const sizes = await each(async (c) => (await get(c, `/apis/${group}/v1/namespaces/${ns}/widgets/w1`))?.spec.size);
    expect(sizes).toEqual({ beijing: 3, shenzhen: 3, 'cloud-hk': 3 });
    for (const c of clients.values()) await c.rest('DELETE', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.${group}`).catch(() => undefined);
  });
});

describe('pruning', () => {
  it('an object removed from the bundle between two versions is pruned; one not created by Flotilla is never pruned', async () => {
    const ns = fresh('prune');
    const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: name } });
    const body = (...maps: string[]) => ({ type: 'deploy', app: { name: 'cfg', namespace: ns, source: { manifests: [deployment('cfg', image('v1'), 1), ...maps.map(cm)] }, placement: { clusters: ['beijing', 'shenzhen'] }, distribution: 'duplicated' }, onFailure: 'fail' });
    expect((await deliver(body('a', 'b', 'c'))).phase).toBe('Healthy');
    // Someone takes c over by hand (another tool's label): it is no longer Flotilla's.
    const bj = clients.get('beijing')!;
    await bj.rest('PATCH', `/api/v1/namespaces/${ns}/configmaps/c`, { body: { metadata: { labels: { 'app.kubernetes.io/managed-by': 'helm' } } }, contentType: 'application/merge-patch+json', query: { fieldManager: 'helm' } });
    const second = await deliver(body('a'));
    expect(second.phase, second.message).toBe('Healthy');
    const left = await each(async (c) => (await c.rest<{ items: { metadata: { name: string } }[] }>('GET', `/api/v1/namespaces/${ns}/configmaps`)).items.map((m) => m.metadata.name).filter((n) => n.length === 1).sort());
    expect(left).toEqual({ beijing: ['a', 'c'], shenzhen: ['a'], 'cloud-hk': [] });
    expect(second.clusters.beijing!.message).toMatch(/pruned ConfigMap .*\/b.*kept ConfigMap .*\/c \(not created by Flotilla/);
  });
});

describe('versions', () => {
  it('rollback to a version two deliveries back restores exactly what that version rendered, on every cluster it ran on', async () => {
    const ns = fresh('versions');
    const body = (tag: string, clusters: string[]) => ({
      type: 'deploy',
      app: {
        name: 'web',
        namespace: ns,
        // v3 adds a ConfigMap that v1 never had: restoring v1 must remove it again.
        source: { manifests: [deployment('web', image(tag), 2), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web' }, data: { VERSION: tag } }, ...(tag === 'v3' ? [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web-extra' }, data: { added: 'v3' } }] : [])] },
        placement: { clusters },
        distribution: 'duplicated',
      },
      onFailure: 'fail',
    });
    expect((await deliver(body('v1', ['beijing', 'shenzhen']))).phase).toBe('Healthy');
    const v1 = await each(async (c) => ({
      deployment: (await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/web`))?.spec.template,
      config: (await get(c, `/api/v1/namespaces/${ns}/configmaps/web`))?.data ?? null,
    }));
    expect((await deliver(body('v2', CLUSTERS))).phase).toBe('Healthy');
    expect((await deliver(body('v3', CLUSTERS))).phase).toBe('Healthy');
    const versions = (await request(api).get(`/v1/apps/web/versions?namespace=${ns}`).set('Authorization', VIEWER)).body.items as { number: number; clusters: string[] }[];
    expect(versions.map((v) => [v.number, v.clusters])).toEqual([
      [3, CLUSTERS],
      [2, CLUSTERS],
      [1, ['beijing', 'shenzhen']],
    ]);
    const hkBefore = (await get(clients.get('cloud-hk')!, `/api/v1/namespaces/${ns}/configmaps/web`))?.data;

    expect((await request(api).post(`/v1/apps/web/rollback?namespace=${ns}`).set('Authorization', CI).send({ version: 1 })).status).toBe(403);
    const res = await request(api).post(`/v1/apps/web/rollback?namespace=${ns}`).set('Authorization', SRE).send({ version: 1, comment: 'v2 and v3 leak memory' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const s = await until(() => statusOf(res.body.id), (x) => finished.includes(x.phase), 'rollback to v1', 240_000);
    expect([s.phase, s.type, s.source]).toEqual(['Healthy', 'rollback', 'version 1']);
    const now = await each(async (c) => ({
      deployment: (await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/web`))?.spec.template,
      config: (await get(c, `/api/v1/namespaces/${ns}/configmaps/web`))?.data ?? null,
    }));
    const extra = await each(async (c) => (await get(c, `/api/v1/namespaces/${ns}/configmaps/web-extra`)) !== null);
    expect(extra).toEqual({ beijing: false, shenzhen: false, 'cloud-hk': true });
    // Where version 1 ran: exactly its pod template and ConfigMap; cloud-hk, where it never ran, keeps v3.
    expect({ beijing: now.beijing, shenzhen: now.shenzhen }).toEqual({ beijing: v1.beijing, shenzhen: v1.shenzhen });
    expect(now['cloud-hk']!.config).toEqual(hkBefore);
    // Version 1's objects name the regional reference its delivery replicated (cn-north holds it): re-applied as they are.
    expect(now.beijing!.deployment.spec.containers[0].image).toBe(await runs('beijing', 'v1'));
    expect(now.shenzhen!.deployment.spec.containers[0].image).toBe(await runs('shenzhen', 'v1'));
    expect((await request(api).post(`/v1/apps/web/rollback?namespace=${ns}`).set('Authorization', SRE).send({ version: 9 })).status).toBe(409);
  });
});
