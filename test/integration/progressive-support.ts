/**
 * Shared by the progressive-delivery integration tests (test/integration/progressive*.test.ts):
 * the real worker (hub with the analysis activities pointed at the stack's Prometheus, one queue
 * per cluster) and the HTTP API on the stack's Temporal, tokens for every role that acts on a
 * canary, and readers of what each cluster's API server holds: Deployments (image, replicas,
 * ready), Services' selectors, EndpointSlices, pods of a track.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { Client, Connection } from '@temporalio/client';
import type { ClusterClients } from '../../activities/kubernetes/clients.ts';
import { parseAnalysisConfig } from '../../activities/analysis/index.ts';
import type { DeliveryStatus } from '../../model/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import type { TokensFile } from '../../api/auth.ts';
import { parseConfig } from '../../worker/config.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import { atMirrors, clusterClients, deleteNamespaces, digestOf, expectedRef, runInventory } from './support.ts';

/** One token per role (and two release managers, for quorums); the API maps each to {name, role}. */
export const progressiveTokens: TokensFile = {
  'ci-token-0123456789abcdef': { name: 'gitlab-ci', role: 'ci' },
  'sre-token-0123456789abcdef': { name: 'alice', role: 'sre' },
  'viewer-token-0123456789abcdef': { name: 'carol', role: 'viewer' },
  'rm-token-bob-0123456789abcdef': { name: 'bob', role: 'release-manager' },
  'rm-token-dan-0123456789abcdef': { name: 'dan', role: 'release-manager' },
};
export const CI = 'Bearer ci-token-0123456789abcdef';
export const SRE = 'Bearer sre-token-0123456789abcdef';
export const VIEWER = 'Bearer viewer-token-0123456789abcdef';
export const RM = 'Bearer rm-token-bob-0123456789abcdef';
export const RM2 = 'Bearer rm-token-dan-0123456789abcdef';

export const FINISHED = ['Healthy', 'Degraded', 'Aborted', 'RolledBack'];

// Objects of any kind, read as JSON and checked field by field.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

export interface Harness {
  api: Express;
  clients: Map<string, ClusterClients>;
  central: string;
  image: (tag: string) => string;
  pinned: (tag: string) => Promise<string>;
  /** What `cluster` runs for a pinned central reference: the same digest from its regional registry. */
  at: (cluster: string, pinned: string) => string;
  /** An expectation keyed by cluster with each pinned `image` inside moved to that cluster's registry. */
  mirrored: <T>(byCluster: Record<string, T>) => Record<string, T>;
  fresh: (prefix: string) => string;
  /** POST /v1/deliveries as CI: the 202's id. */
  start: (body: object) => Promise<string>;
  status: (id: string) => Promise<DeliveryStatus>;
  /** Polls the status until `pred` holds. */
  waitFor: (id: string, pred: (s: DeliveryStatus) => boolean, what: string, timeoutMs?: number) => Promise<DeliveryStatus>;
  finished: (id: string, timeoutMs?: number) => Promise<DeliveryStatus>;
  /** POST /v1/deliveries/{id}/actions with a token: the HTTP status and body. */
  act: (id: string, auth: string, body: object) => Promise<{ status: number; body: Json }>;
  stop: () => Promise<void>;
}

export async function harness(stack: StackInfo): Promise<Harness> {
  const inventory = runInventory(stack);
  const silent = createLogger('silent');
  const config = parseConfig({
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    logLevel: 'silent',
    shutdownGraceMs: 2_000,
  });
  // What FLOTILLA_PROMETHEUS_URL gives the worker: the stack's Prometheus as the default server.
  const analysis = parseAnalysisConfig({ prometheus: { default: { url: stack.prometheus.url } } });
  const workers: WorkersHandle = await startWorkers(config, { inventory, logger: silent, analysis });
  const connection = await Connection.connect({ address: stack.temporal.address });
  const api = createApp({ temporal: new Client({ connection, namespace: stack.temporal.namespace }), inventory, tokens: progressiveTokens, logger: silent });
  const clients = clusterClients(inventory);
  const namespaces = new Set<string>();
  const central = stack.registries.find((r) => r.region === 'central')!.host;
  const image = (tag: string) => `${central}/demo/web:${tag}`;
  const status = async (id: string) => {
    const res = await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER);
    if (res.status !== 200) throw new Error(`GET ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as DeliveryStatus;
  };
  // Until `pred` holds; a delivery that has finished without it fails at once, with its status.
  const waitFor = async (id: string, pred: (s: DeliveryStatus) => boolean, what: string, timeoutMs = 180_000) => {
    const end = Date.now() + timeoutMs;
    let last: DeliveryStatus | undefined;
    while (Date.now() < end) {
      last = await status(id);
      if (pred(last)) return last;
      if (FINISHED.includes(last.phase)) break;
      await sleep(300);
    }
    throw new Error(`delivery ${id}: ${what}: not reached (${Date.now() < end ? 'finished' : `${timeoutMs} ms`}); last: ${JSON.stringify({ phase: last?.phase, message: last?.message, currentWave: last?.currentWave, currentStep: last?.currentStep, clusters: last?.clusters })}`);
  };
  return {
    api,
    clients,
    central,
    image,
    pinned: async (tag) => `${central}/demo/web@${await digestOf(image(tag))}`,
    at: (cluster, pinned) => expectedRef(inventory, cluster, pinned),
    mirrored: (byCluster) => atMirrors(inventory, byCluster),
    fresh: (prefix) => {
      const ns = `pg-${prefix}-${randomUUID().slice(0, 6)}`;
      namespaces.add(ns);
      return ns;
    },
    start: async (body) => {
      const res = await request(api).post('/v1/deliveries').set('Authorization', CI).send(body);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      return res.body.id as string;
    },
    status,
    waitFor,
    finished: (id, timeoutMs = 240_000) => waitFor(id, (s) => FINISHED.includes(s.phase), 'finished', timeoutMs),
    act: async (id, auth, body) => {
      const res = await request(api).post(`/v1/deliveries/${id}/actions`).set('Authorization', auth).send(body);
      return { status: res.status, body: res.body as Json };
    },
    stop: async () => {
      await deleteNamespaces(clients, namespaces);
      await workers.shutdown();
      await connection.close();
    },
  };
}

// --- reading back from the API servers ---------------------------------------------------------

export const get = (c: ClusterClients, apiPath: string) => c.rest<Json>('GET', apiPath).catch((e: { code?: number }) => (e.code === 404 ? null : Promise.reject(e)));

export interface DeploymentRead {
  image: string;
  replicas: number;
  ready: number;
}

/** A Deployment as its API server has it (null when there is none): image, spec replicas, ready replicas. */
export async function deploymentOf(c: ClusterClients, ns: string, name: string): Promise<DeploymentRead | null> {
  const d = await get(c, `/apis/apps/v1/namespaces/${ns}/deployments/${name}`);
  if (!d) return null;
  return { image: d.spec.template.spec.containers[0].image, replicas: d.spec.replicas ?? 0, ready: d.status?.readyReplicas ?? 0 };
}

/** The stable (`name`) and canary (`name-canary`) Deployments of every cluster given. */
export async function splitIn(clients: Map<string, ClusterClients>, ns: string, clusters: string[], name = 'web'): Promise<Record<string, { stable: DeploymentRead | null; canary: DeploymentRead | null }>> {
  const out: Record<string, { stable: DeploymentRead | null; canary: DeploymentRead | null }> = {};
  for (const n of clusters) {
    const c = clients.get(n)!;
    out[n] = { stable: await deploymentOf(c, ns, name), canary: await deploymentOf(c, ns, `${name}-canary`) };
  }
  return out;
}

const isReady = (p: Json) => (p.status?.conditions ?? []).some((c: Json) => c.type === 'Ready' && c.status === 'True');

/** Pods (not being deleted) matching a label selector: name, IP, image, ready. */
export async function podsOf(c: ClusterClients, ns: string, selector: string): Promise<{ name: string; ip?: string; image: string; ready: boolean }[]> {
  const list = await c.core.listNamespacedPod({ namespace: ns, labelSelector: selector });
  return list.items
    .filter((p) => !p.metadata?.deletionTimestamp)
    .map((p) => ({ name: p.metadata!.name!, ...(p.status?.podIP ? { ip: p.status.podIP } : {}), image: p.spec!.containers[0]!.image!, ready: isReady(p as unknown as Json) }));
}

/** The ready addresses the EndpointSlices of a Service list, sorted. */
export async function endpointIps(c: ClusterClients, ns: string, service: string): Promise<string[]> {
  const slices = await c.rest<{ items: { endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[] }[] }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
    query: { labelSelector: `kubernetes.io/service-name=${service}` },
  });
  return slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses).sort();
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { until } from './support.ts';
