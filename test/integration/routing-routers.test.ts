/**
 * The traffic routers on the real stack: for each router, a stable Deployment and its
 * Service (and the HTTPRoute, VirtualService or Ingress in front), the canary objects
 * added, the weight set to 20, 50 and 100 through the cluster activities, and after each
 * step read back from the API server: the route's weights, the Deployments' replicas and
 * the EndpointSlices of the stable and canary Services (each lists only its own side's
 * pods). removeCanary leaves the cluster as it was before the canary.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { pino } from 'pino';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { createClusterActivities } from '../../activities/index.ts';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { applyObjects, readObject } from '../../activities/kubernetes/objects.ts';
import type { CanaryClusterActivities } from '../../activities/types.ts';
import type { TrafficState } from '../../activities/routing/index.ts';
import {
  ANNOTATION_APP,
  ANNOTATION_ROUTING_ORIGINAL,
  canaryObjects,
  canaryTarget,
  FailureType,
  LABEL_APP,
  LABEL_MANAGED_BY,
  LABEL_TRACK,
  MANAGED_BY,
  NGINX_CANARY_WEIGHT,
  PlanError,
  withStableTrack,
  type CanaryTarget,
  type KubeObject,
  type Owner,
  type TrafficRouting,
} from '../../model/index.ts';
import { clearBehaviour, setBehaviour, stackOptions } from '../../stack/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';
import { eventually } from './support.ts';

const stack: StackInfo = inject('stack');
const inventory = inventoryFromStack(stack);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const silent = pino({ level: 'silent' });
const run = randomUUID().slice(0, 6);

interface Handle {
  clients: ClusterClients;
  acts: CanaryClusterActivities;
}
const handles = new Map<string, Handle>();
function on(name: string): Handle {
  let h = handles.get(name);
  if (!h) {
    const cluster = inventory.clusters.find((c) => c.name === name)!;
    const clients = createClusterClients(cluster, { requestTimeoutMs: 10_000 });
    h = { clients, acts: createClusterActivities({ cluster, logger: silent, clients }) as CanaryClusterActivities };
    handles.set(name, h);
  }
  return h;
}
const namespaces: { cluster: string; ns: string }[] = [];

afterAll(async () => {
  for (const { cluster, ns } of namespaces) await on(cluster).clients.core.deleteNamespace({ name: ns }).catch(() => undefined);
});

function activity<A extends unknown[], R>(fn: (...a: A) => Promise<R>, ...args: A): Promise<R> {
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 60_000 }, { logger: new DefaultLogger('ERROR') });
  return env.run(fn, ...args) as Promise<R>;
}


/** The application as Flotilla renders it: Service and Deployment carrying its ownership, the stable track on the pods. */
function app(ns: string, tag: string, replicas: number): KubeObject[] {
  const selector = { [LABEL_APP]: 'web' };
  const meta = (name: string) => ({
    name,
    namespace: ns,
    labels: { ...selector, [LABEL_MANAGED_BY]: MANAGED_BY },
    annotations: { [ANNOTATION_APP]: `${ns}/web`, 'flotilla.dev/delivery': `d-${tag}` },
  });
  const objects: KubeObject[] = [
    { apiVersion: 'v1', kind: 'Service', metadata: meta('web'), spec: { selector, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta('web'),
      spec: {
        replicas,
        selector: { matchLabels: selector },
        template: { metadata: { labels: { ...selector } }, spec: { containers: [{ name: 'web', image: image(tag), ports: [{ containerPort: 8080 }] }] } },
      },
    },
  ];
  return withStableTrack(objects, 'web');
}

const routeObjects = (ns: string): Record<string, KubeObject> => ({
  gatewayAPI: {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: ns },
    spec: {
      parentRefs: [{ name: 'edge' }],
      hostnames: ['web.example.com'],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'web', port: 80 }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/static' } }], backendRefs: [{ name: 'cdn', port: 80 }] },
      ],
    },
  },
  istio: {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'web', namespace: ns },
    spec: {
      hosts: ['web.example.com'],
      http: [
        { name: 'primary', route: [{ destination: { host: `web.${ns}.svc.cluster.local`, port: { number: 80 } } }] },
        { name: 'other', route: [{ destination: { host: 'cdn' } }] },
      ],
    },
  },
  nginx: {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'web', namespace: ns, annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/' } },
    spec: {
      ingressClassName: 'nginx',
      rules: [{ host: 'web.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }],
    },
  },
});

const ready = (p: { status?: { conditions?: { type: string; status: string }[] } }) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** Ready pod IPs of one track, and the ready addresses an EndpointSlice of `service` lists. */
async function podIps(h: Handle, ns: string, track: string): Promise<string[]> {
  const pods = await h.clients.core.listNamespacedPod({ namespace: ns, labelSelector: `${LABEL_APP}=web,${LABEL_TRACK}=${track}` });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp && ready(p)).map((p) => p.status!.podIP!).sort();
}
async function endpointIps(h: Handle, ns: string, service: string): Promise<string[]> {
  const slices = await h.clients.rest<{ items: { endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[] }[] }>(
    'GET',
    `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
    { query: { labelSelector: `kubernetes.io/service-name=${service}` } },
  );
  return slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses).sort();
}

async function deploymentReplicas(h: Handle, ns: string, name: string): Promise<{ replicas: number; ready: number } | undefined> {
  const d = await readObject(h.clients, { apiVersion: 'apps/v1', kind: 'Deployment', name, namespace: ns });
  if (!d) return undefined;
  return { replicas: (d.spec as { replicas: number }).replicas, ready: (d.status as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0 };
}

/** What stands in the namespace, for "as before": the objects' names by kind and the route's spec. */
async function snapshot(h: Handle, ns: string, route?: KubeObject): Promise<unknown> {
  const names = async (path: string) => ((await h.clients.rest<{ items: KubeObject[] }>('GET', path)).items.map((o) => o.metadata.name).sort());
  const r = route ? await readObject(h.clients, { apiVersion: route.apiVersion, kind: route.kind, name: route.metadata.name, namespace: ns }) : undefined;
  return {
    deployments: await names(`/apis/apps/v1/namespaces/${ns}/deployments`),
    services: await names(`/api/v1/namespaces/${ns}/services`),
    ingresses: await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`),
    web: await deploymentReplicas(h, ns, 'web'),
    route: r ? { spec: r.spec, annotations: r.metadata.annotations ?? {} } : undefined,
  };
}

interface Case {
  name: string;
  routing: TrafficRouting;
  replicas: number;
  /** Stable and canary replicas expected at each weight. */
  expect: Record<number, { stable: number; canary: number }>;
  /** The route's weights read straight from the API server. */
  routeWeights?: (o: KubeObject, ns: string) => unknown;
  wantWeights?: (w: number, ns: string) => unknown;
}

const cases: Case[] = [
  {
    name: 'replica ratio',
    routing: { replicaRatio: {} },
    replicas: 10,
    expect: { 20: { stable: 8, canary: 2 }, 50: { stable: 5, canary: 5 }, 100: { stable: 0, canary: 10 } },
  },
  {
    name: 'Gateway API',
    routing: { gatewayAPI: { httpRoute: 'web' } },
    replicas: 4,
    expect: { 20: { stable: 4, canary: 1 }, 50: { stable: 4, canary: 2 }, 100: { stable: 4, canary: 4 } },
    routeWeights: (o) => (o.spec as { rules: { backendRefs: { name: string; weight?: number }[] }[] }).rules.map((r) => r.backendRefs.map((b) => [b.name, b.weight])),
    wantWeights: (w) => [
      [
        ['web-stable', 100 - w],
        ['web-canary', w],
      ],
      [['cdn', 1]], // the Gateway API's default weight, filled in by the API server
    ],
  },
  {
    name: 'Istio',
    routing: { istio: { virtualService: 'web' } },
    replicas: 4,
    expect: { 20: { stable: 4, canary: 1 }, 50: { stable: 4, canary: 2 }, 100: { stable: 4, canary: 4 } },
    routeWeights: (o) => (o.spec as { http: { route: { destination: { host: string }; weight?: number }[] }[] }).http.map((r) => r.route.map((d) => [d.destination.host, d.weight])),
    wantWeights: (w, ns) => [
      [
        [`web-stable.${ns}.svc.cluster.local`, 100 - w],
        [`web-canary.${ns}.svc.cluster.local`, w],
      ],
      [['cdn', undefined]],
    ],
  },
  {
    name: 'NGINX',
    routing: { nginx: { ingress: 'web' } },
    replicas: 4,
    expect: { 20: { stable: 4, canary: 1 }, 50: { stable: 4, canary: 2 }, 100: { stable: 4, canary: 4 } },
  },
];

describe.each(cases.map((c, i) => ({ ...c, cluster: inventory.clusters[i % inventory.clusters.length]!.name })))('router: $name', (tc) => {
  const ns = `rt-${tc.name.toLowerCase().replace(/[^a-z]/g, '')}-${run}`;
  const owner: Owner = { namespace: ns, name: 'web' };
  it(`sets 20, 50, 100 and reads them back from the API server; removeCanary leaves ${tc.cluster} as before`, async () => {
    namespaces.push({ cluster: tc.cluster, ns });
    const h = on(tc.cluster);
    const stableObjects = app(ns, 'v1', tc.replicas);
    const route = 'replicaRatio' in tc.routing ? undefined : routeObjects(ns)[Object.keys(tc.routing)[0]!]!;
    await applyObjects(h.clients, { objects: [...stableObjects, ...(route ? [route] : [])], owner, adopt: true, protectedNamespaces: [] }, silent);
    await eventually('the stable version ready', 90_000, async () => ((await deploymentReplicas(h, ns, 'web'))?.ready === tc.replicas ? true : undefined));
    const before = await snapshot(h, ns, route);

    const target = canaryTarget(stableObjects) as CanaryTarget;
    expect(target).not.toBeInstanceOf(PlanError);
    expect(target).toMatchObject({ deployment: 'web', service: 'web', stableService: 'web-stable', canaryService: 'web-canary', canaryDeployment: 'web-canary', replicas: tc.replicas });
    const added = canaryObjects(target, app(ns, 'v2', tc.replicas), tc.routing, route ? [route] : []) as KubeObject[];
    expect(added).not.toBeInstanceOf(PlanError);
    await applyObjects(h.clients, { objects: added, owner, adopt: false, protectedNamespaces: [] }, silent);

    for (const weight of [20, 50, 100]) {
      const state: TrafficState = await activity(h.acts.setTrafficWeight, { cluster: tc.cluster, owner, routing: tc.routing, target, weight, totalReplicas: tc.replicas });
      const want = tc.expect[weight]!;
      // What the activity read back ...
      expect(state.stable).toMatchObject({ replicas: want.stable, readyReplicas: want.stable });
      expect(state.canary).toMatchObject({ replicas: want.canary, readyReplicas: want.canary });
      if ('replicaRatio' in tc.routing) expect(state.weight).toBe(Math.round((100 * want.canary) / tc.replicas));
      else expect(state.weight).toBe(weight);
      // ... and what the API server says, read here.
      expect(await deploymentReplicas(h, ns, 'web')).toEqual({ replicas: want.stable, ready: want.stable });
      expect(await deploymentReplicas(h, ns, 'web-canary')).toEqual({ replicas: want.canary, ready: want.canary });
      const canaryPods = await podIps(h, ns, 'canary');
      expect(canaryPods).toHaveLength(want.canary);
      // The canary pods run the new version.
      const pods = await h.clients.core.listNamespacedPod({ namespace: ns, labelSelector: `${LABEL_TRACK}=canary` });
      expect(new Set(pods.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.spec!.containers[0]!.image))).toEqual(new Set(want.canary ? [image('v2')] : []));
      if (route) {
        const stablePods = await podIps(h, ns, 'stable');
        await eventually(`web-canary lists exactly the canary pods at ${weight}%`, 30_000, async () => (JSON.stringify(await endpointIps(h, ns, 'web-canary')) === JSON.stringify(canaryPods) ? true : undefined));
        await eventually(`web-stable lists exactly the stable pods at ${weight}%`, 30_000, async () => (JSON.stringify(await endpointIps(h, ns, 'web-stable')) === JSON.stringify(stablePods) ? true : undefined));
        const live = (await readObject(h.clients, { apiVersion: route.apiVersion, kind: route.kind, name: 'web', namespace: ns }))!;
        if (tc.routeWeights) expect(tc.routeWeights(live, ns)).toEqual(tc.wantWeights!(weight, ns));
        if ('nginx' in tc.routing) {
          const canaryIngress = (await readObject(h.clients, { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: 'web-canary', namespace: ns }))!;
          expect(canaryIngress.metadata.annotations).toMatchObject({ 'nginx.ingress.kubernetes.io/canary': 'true', [NGINX_CANARY_WEIGHT]: String(weight) });
          const paths = (o: KubeObject) => (o.spec as { rules: { host: string; http: { paths: { path: string; backend: { service: { name: string } } }[] } }[] }).rules.flatMap((r) => r.http.paths.map((p) => [r.host, p.path, p.backend.service.name]));
          expect(paths(canaryIngress)).toEqual([['web.example.com', '/', 'web-canary']]);
          // The rest of the traffic goes to the stable pods only.
          expect(paths(live)).toEqual([['web.example.com', '/', 'web-stable']]);
        }
        expect(live.metadata.annotations?.[ANNOTATION_ROUTING_ORIGINAL]).toBeDefined();
      } else {
        // Replica ratio: the user's Service lists both sides' pods.
        const all = [...(await podIps(h, ns, 'stable')), ...canaryPods].sort();
        await eventually(`web lists both sides' pods at ${weight}%`, 30_000, async () => (JSON.stringify(await endpointIps(h, ns, 'web')) === JSON.stringify(all) ? true : undefined));
      }
    }

    // Setting the same weight again (a retried step) changes nothing: no object gets a new resourceVersion.
    const versions = async () => {
      const refs = [
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: ns },
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web-canary', namespace: ns },
        ...(route ? [{ apiVersion: route.apiVersion, kind: route.kind, name: 'web', namespace: ns }] : []),
        ...('nginx' in tc.routing ? [{ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: 'web-canary', namespace: ns }] : []),
      ];
      return Promise.all(refs.map(async (r) => (await readObject(h.clients, r))!.metadata.resourceVersion));
    };
    const rv = await versions();
    const again = await activity(h.acts.setTrafficWeight, { cluster: tc.cluster, owner, routing: tc.routing, target, weight: 100, totalReplicas: tc.replicas });
    expect(again.weight).toBe(100);
    expect(await versions()).toEqual(rv);
    expect((await activity(h.acts.readTrafficWeight, { cluster: tc.cluster, owner, routing: tc.routing, target })).weight).toBe(100);

    const removed = await activity(h.acts.removeCanary, { cluster: tc.cluster, owner, routing: tc.routing, target, totalReplicas: tc.replicas });
    expect(removed.kept).toEqual([]);
    expect(removed.state.weight).toBe(0);
    expect(removed.state.canary.exists).toBe(false);
    await eventually('the canary pods gone', 60_000, async () => ((await podIps(h, ns, 'canary')).length === 0 ? true : undefined));
    expect(await snapshot(h, ns, route)).toEqual(before);
    // And again: nothing left to do.
    const twice = await activity(h.acts.removeCanary, { cluster: tc.cluster, owner, routing: tc.routing, target, totalReplicas: tc.replicas });
    expect(twice.removed).toEqual([]);
    expect(await snapshot(h, ns, route)).toEqual(before);
  });
});

describe('router failures', () => {
  const cluster = inventory.clusters[0]!.name;
  const ns = `rt-fail-${run}`;
  const owner: Owner = { namespace: ns, name: 'web' };

  async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
    try {
      await p;
    } catch (err) {
      if (err instanceof ApplicationFailure) return err;
      throw err;
    }
    throw new Error('expected a failure');
  }

  it('a named route that does not exist is NotFound, one with nothing to split InvalidManifest, no canary Deployment NotFound; all non-retryable', async () => {
    namespaces.push({ cluster, ns });
    const h = on(cluster);
    const objects = app(ns, 'v1', 2);
    await applyObjects(h.clients, { objects: [...objects, routeObjects(ns).gatewayAPI!], owner, adopt: true, protectedNamespaces: [] }, silent);
    const target = canaryTarget(objects) as CanaryTarget;
    const set = (routing: TrafficRouting) => activity(h.acts.setTrafficWeight, { cluster, owner, routing, target, weight: 20 });

    const noCanary = await failureOf(set({ gatewayAPI: { httpRoute: 'web' } }));
    expect(noCanary.type).toBe(FailureType.NotFound);
    expect(noCanary.message).toMatch(/web-canary does not exist: apply the canary objects/);

    await applyObjects(h.clients, { objects: canaryObjects(target, objects, { gatewayAPI: { httpRoute: 'web' } }) as KubeObject[], owner, adopt: false, protectedNamespaces: [] }, silent);
    const missing = await failureOf(set({ gatewayAPI: { httpRoute: 'nope' } }));
    expect(missing.type).toBe(FailureType.NotFound);
    expect(missing.nonRetryable).toBe(true);
    expect(missing.message).toMatch(/HTTPRoute .*\/nope does not exist/);

    const vs = { ...routeObjects(ns).istio!, spec: { hosts: ['x'], http: [{ name: 'primary', route: [{ destination: { host: 'elsewhere' } }] }] } };
    await applyObjects(h.clients, { objects: [vs], owner, adopt: true, protectedNamespaces: [] }, silent);
    const nothing = await failureOf(set({ istio: { virtualService: 'web' } }));
    expect(nothing.type).toBe(FailureType.InvalidManifest);
    expect(nothing.nonRetryable).toBe(true);
    expect(nothing.message).toMatch(/no http route with a destination on Service web/);
    const badName = await failureOf(set({ istio: { virtualService: 'web', routes: ['missing'] } }));
    expect(badName.message).toMatch(/no http route named missing/);
    // Nothing was changed by the refused calls.
    const live = (await readObject(h.clients, { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', name: 'web', namespace: ns }))!;
    expect(live.metadata.annotations?.[ANNOTATION_ROUTING_ORIGINAL]).toBeUndefined();
    expect((await deploymentReplicas(h, ns, 'web-canary'))?.replicas).toBe(0);
  });
});

describe('a canary that is not ready, and a weight going back', () => {
  const cluster = inventory.clusters[1]!.name;
  const ns = `rt-bad-${run}`;
  const owner: Owner = { namespace: ns, name: 'web' };
  const routing: TrafficRouting = { gatewayAPI: { httpRoute: 'web' } };
  afterAll(() => clearBehaviour({ image: 'demo/web:v3' }, stackOptions(stack)));

  it('a canary whose pods never turn ready takes no traffic (RolloutTimeout, route untouched); 50 back to 0 moves the route first, then the canary goes', async () => {
    namespaces.push({ cluster, ns });
    const h = on(cluster);
    await setBehaviour({ image: 'demo/web:v3', behaviour: 'unready' }, stackOptions(stack));
    const objects = app(ns, 'v1', 4);
    const route = routeObjects(ns).gatewayAPI!;
    await applyObjects(h.clients, { objects: [...objects, route], owner, adopt: true, protectedNamespaces: [] }, silent);
    await eventually('the stable version ready', 90_000, async () => ((await deploymentReplicas(h, ns, 'web'))?.ready === 4 ? true : undefined));
    const before = await snapshot(h, ns, route);
    const target = canaryTarget(objects) as CanaryTarget;
    const set = (weight: number, version: string) => activity(h.acts.setTrafficWeight, { cluster, owner, routing, target, weight, timeoutMs: 8_000, deliveryId: version });

    // The bad version: its canary pod never turns ready, so the route never moves.
    await applyObjects(h.clients, { objects: canaryObjects(target, app(ns, 'v3', 4), routing, [route]) as KubeObject[], owner, adopt: false, protectedNamespaces: [] }, silent);
    let failure: unknown;
    await set(20, 'v3').catch((e: unknown) => (failure = e));
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).type).toBe(FailureType.RolloutTimeout);
    expect((failure as ApplicationFailure).message).toMatch(/web-canary has 0 of 1 replicas ready/);
    const untouched = (await readObject(h.clients, { apiVersion: route.apiVersion, kind: 'HTTPRoute', name: 'web', namespace: ns }))!;
    expect(untouched.metadata.annotations?.[ANNOTATION_ROUTING_ORIGINAL]).toBeUndefined();
    expect(await endpointIps(h, ns, 'web-canary')).toEqual([]);
    const aborted = await activity(h.acts.removeCanary, { cluster, owner, routing, target, totalReplicas: 4 });
    expect(aborted.state.weight).toBe(0);
    await eventually('the bad canary pods gone', 60_000, async () => ((await podIps(h, ns, 'canary')).length === 0 && (await h.clients.core.listNamespacedPod({ namespace: ns, labelSelector: `${LABEL_TRACK}=canary` })).items.length === 0 ? true : undefined));
    expect(await snapshot(h, ns, route)).toEqual(before);

    // A good version to 50 %, then back to 0 (what an abort asks): the route is all stable again and the canary at 0.
    await applyObjects(h.clients, { objects: canaryObjects(target, app(ns, 'v2', 4), routing, [route]) as KubeObject[], owner, adopt: false, protectedNamespaces: [] }, silent);
    expect((await set(50, 'v2')).weight).toBe(50);
    const back = await set(0, 'v2');
    expect(back).toMatchObject({ weight: 0, routes: [{ name: 'rule 0', stable: 100, canary: 0 }], canary: { replicas: 0, readyReplicas: 0 }, stable: { replicas: 4, readyReplicas: 4 } });
    await eventually('web-canary lists no pod', 30_000, async () => ((await endpointIps(h, ns, 'web-canary')).length === 0 ? true : undefined));
    await activity(h.acts.removeCanary, { cluster, owner, routing, target, totalReplicas: 4 });
    expect(await snapshot(h, ns, route)).toEqual(before);
  });
});
