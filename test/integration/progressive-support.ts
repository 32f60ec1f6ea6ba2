/**
 * Shared by the progressive-delivery integration tests (test/integration/progressive*.test.ts):
 * the real worker (hub with the analysis activities pointed at the stack's Prometheus, one queue
 * per cluster) and the HTTP API on the stack's Temporal, tokens for every role that acts on a
 * canary, and readers of what each cluster's API server holds: Deployments (image, replicas,
 * ready), Services' selectors, EndpointSlices, pods of a track, the Istio and NGINX routes, and
 * a sampler of each cluster's new-version share over a whole test (weights must never go back).
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { Client, Connection } from '@temporalio/client';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { parseAnalysisConfig } from '../../activities/analysis/index.ts';
import type { DeliveryStatus, Inventory } from '../../model/index.ts';
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
  /** The run's inventory (its own task queues): what a worker in another process is given. */
  inventory: Inventory;
  temporal: Client;
  clients: Map<string, ClusterClients>;
  /** Straight to each API server, past the stack's proxy: the truth, whatever the proxy is told to do. */
  direct: Map<string, ClusterClients>;
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

export interface HarnessOptions {
  /** Start the worker in this process (default true); false when the test runs its own in another process. */
  worker?: boolean;
}

export async function harness(stack: StackInfo, options: HarnessOptions = {}): Promise<Harness> {
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
  const workers: WorkersHandle | undefined = options.worker === false ? undefined : await startWorkers(config, { inventory, logger: silent, analysis });
  const connection = await Connection.connect({ address: stack.temporal.address });
  const temporal = new Client({ connection, namespace: stack.temporal.namespace });
  const api = createApp({ temporal, inventory, tokens: progressiveTokens, logger: silent });
  const clients = clusterClients(inventory);
  const direct = new Map(stack.clusters.map((c) => [c.name, createClusterClients({ name: c.name, kubeconfig: { path: c.directKubeconfig } }, { requestTimeoutMs: 5_000 })]));
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
    inventory,
    temporal,
    clients,
    direct,
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
      await workers?.shutdown();
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

/** Ready pod IPs of each track, and what the track's Service lists: the same set, read from the API server. */
export async function servicesFollowTracks(c: ClusterClients, cluster: string, ns: string): Promise<void> {
  for (const track of ['stable', 'canary']) {
    const ips = (await podsOf(c, ns, `app=web,flotilla.dev/track=${track}`)).filter((p) => p.ready).map((p) => p.ip!).sort();
    const end = Date.now() + 30_000;
    let listed = await endpointIps(c, ns, `web-${track}`);
    while (JSON.stringify(listed) !== JSON.stringify(ips) && Date.now() < end) {
      await sleep(300);
      listed = await endpointIps(c, ns, `web-${track}`);
    }
    expect(listed, `${cluster}: Service web-${track} lists exactly the ${track} pods`).toEqual(ips);
  }
}

// --- the Istio and NGINX routes of an application `web`, as each API server holds them -------------

/** A VirtualService `web`: each http route's destinations as [host, weight], and whether Flotilla recorded the original. */
export async function virtualServiceOf(c: ClusterClients, ns: string): Promise<{ http: [string, number | undefined][][]; recorded: boolean } | null> {
  const vs = await get(c, `/apis/networking.istio.io/v1/namespaces/${ns}/virtualservices/web`);
  if (!vs) return null;
  return {
    http: (vs.spec.http as Json[]).map((r) => (r.route as Json[]).map((d) => [d.destination.host as string, d.weight as number | undefined])),
    recorded: vs.metadata.annotations?.['flotilla.dev/routing-original'] !== undefined,
  };
}

const ingressServices = (o: Json): string[] => (o.spec.rules as Json[]).flatMap((r) => (r.http.paths as Json[]).map((p) => p.backend.service.name as string));

/**
 * The Ingress `web` (its backends' Services, whether Flotilla recorded the original) and the canary
 * Ingress `web-canary` (its backends and its nginx canary annotations), or null where there is none.
 */
export async function ingressesOf(c: ClusterClients, ns: string): Promise<{ main: string[]; recorded: boolean; canary: { services: string[]; canary?: string; weight?: string } | null } | null> {
  const main = await get(c, `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`);
  if (!main) return null;
  const canary = await get(c, `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web-canary`);
  const ann = (canary?.metadata.annotations ?? {}) as Record<string, string>;
  return {
    main: ingressServices(main),
    recorded: main.metadata.annotations?.['flotilla.dev/routing-original'] !== undefined,
    canary: canary ? { services: ingressServices(canary), canary: ann['nginx.ingress.kubernetes.io/canary'], weight: ann['nginx.ingress.kubernetes.io/canary-weight'] } : null,
  };
}

// --- an application `web` in front of a mesh or an ingress, as a team would send it --------------

/** A Deployment `web` of `replicas` pods (label app: web). */
export const webDeployment = (img: string, replicas = 4) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', labels: { app: 'web' } },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: img, ports: [{ containerPort: 8080 }] }] } },
  },
});
export const webService = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } };

export interface MeshRoute {
  router: MeshRouter;
  /** The route object in the bundle. */
  route: Json;
  /** `canary.trafficRouting` naming it. */
  trafficRouting: Json;
  /** A regular expression for the router's write of a weight (a server-side apply PATCH), not its reads. */
  write: string;
  /** The route as the API server holds it. */
  read: (c: ClusterClients, ns: string) => Promise<unknown>;
  /** What it holds with the canary at `weight`, or (`null`) as delivered. */
  want: (weight: number | null) => unknown;
}

export const meshRoutes: MeshRoute[] = [
  {
    router: 'istio',
    route: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'web' },
      spec: { hosts: ['web.example.com'], http: [{ name: 'primary', route: [{ destination: { host: 'web', port: { number: 80 } } }] }] },
    },
    trafficRouting: { istio: { virtualService: 'web' } },
    write: '/virtualservices/web\\?',
    read: virtualServiceOf,
    want: (w) =>
      w === null
        ? { http: [[['web', undefined]]], recorded: false }
        : {
            http: [
              [
                ['web-stable', 100 - w],
                ['web-canary', w],
              ],
            ],
            recorded: true,
          },
  },
  {
    router: 'nginx',
    route: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'web' },
      spec: { ingressClassName: 'nginx', rules: [{ host: 'web.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] },
    },
    trafficRouting: { nginx: { ingress: 'web' } },
    // The canary Ingress's canary-weight (the main Ingress is written once, at the first weight).
    write: '/ingresses/web-canary\\?',
    read: ingressesOf,
    // While split, the main Ingress sends the rest to the stable pods only.
    want: (w) => (w === null ? { main: ['web'], recorded: false, canary: null } : { main: ['web-stable'], recorded: true, canary: { services: ['web-canary'], canary: 'true', weight: String(w) } }),
  },
];

// --- weights over time --------------------------------------------------------------------------

export type MeshRouter = 'istio' | 'nginx';

export interface Share {
  /** The new version's share of the traffic, 0-100 (see newVersionShare). */
  share: number;
  /** Whether a canary Deployment stands in the cluster. */
  canary: boolean;
}

/**
 * What one cluster sends to the new version, read from its API server: 100 once the stable
 * Deployment runs `newImage` (promoted: whatever the route says, both sides run it), else the
 * canary's weight on the route (the VirtualService's web-canary destinations, or the canary
 * Ingress's canary-weight; 0 while the route is not split). The route is read before the
 * Deployment, so a promotion between the two reads is seen as promoted, never as a step back.
 */
export async function newVersionShare(c: ClusterClients, router: MeshRouter, ns: string, newImage: string): Promise<Share> {
  let weight: number;
  if (router === 'istio') {
    const vs = await virtualServiceOf(c, ns);
    weight = (vs?.http[0] ?? []).filter(([host]) => host.startsWith('web-canary')).reduce((a, [, w]) => a + (w ?? 0), 0);
  } else {
    const ing = await ingressesOf(c, ns);
    weight = ing?.canary?.canary === 'true' ? Number(ing.canary.weight ?? 0) : 0;
  }
  const stable = await deploymentOf(c, ns, 'web');
  const canary = (await deploymentOf(c, ns, 'web-canary')) !== null;
  return { share: stable?.image === newImage ? 100 : weight, canary };
}

export interface Sample extends Share {
  /** Milliseconds since the sampler started. */
  t: number;
  cluster: string;
}

export interface Sampler {
  samples: Sample[];
  /** Reads that failed (a read that fails is not a sample). */
  errors: string[];
  stop: () => Promise<Sample[]>;
}

/** Reads every cluster's share every `intervalMs` (one round at a time) until stopped. */
export function sampleShares(clusters: string[], read: (cluster: string) => Promise<Share>, intervalMs = 200): Sampler {
  const samples: Sample[] = [];
  const errors: string[] = [];
  const t0 = Date.now();
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = Date.now() - t0;
      await Promise.all(
        clusters.map(async (cluster) => {
          try {
            samples.push({ t, cluster, ...(await read(cluster)) });
          } catch (err) {
            errors.push(`${t} ms ${cluster}: ${String(err)}`);
          }
        }),
      );
      await sleep(intervalMs);
    }
  })();
  return {
    samples,
    errors,
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** Each cluster's shares in the order they were read, repeats collapsed: [0, 20, 50, 100]. */
export function shareSteps(samples: Sample[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const s of [...samples].sort((a, b) => a.t - b.t)) {
    const seq = (out[s.cluster] ??= []);
    if (seq[seq.length - 1] !== s.share) seq.push(s.share);
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { until } from './support.ts';
