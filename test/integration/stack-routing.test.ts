/**
 * What traffic routing needs from the stack's clusters: the Gateway API's and Istio's
 * resource definitions are registered in every cluster by `up` (a weighted HTTPRoute and a
 * weighted VirtualService are accepted and read back as written; invalid ones are refused
 * by their schemas), and Services select real endpoints: an EndpointSlice lists the ready
 * pods a Service selects, with their IPs, and stops counting a pod that turns unready.
 */
import { randomUUID } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { definitionNames, upBundles } from '../../stack/crds.ts';
import type { StackClusterInfo, StackInfo } from '../../stack/types.ts';
import { eventually } from './support.ts';

const stack: StackInfo = inject('stack');
const ns = `routing-${randomUUID().slice(0, 8)}`;

interface Kube {
  objects: k8s.KubernetesObjectApi;
  core: k8s.CoreV1Api;
  discovery: k8s.DiscoveryV1Api;
  ext: k8s.ApiextensionsV1Api;
}
const kubes = new Map<string, Kube>();
function kube(c: StackClusterInfo): Kube {
  let k = kubes.get(c.name);
  if (!k) {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(c.kubeconfig);
    k = {
      objects: k8s.KubernetesObjectApi.makeApiClient(kc),
      core: kc.makeApiClient(k8s.CoreV1Api),
      discovery: kc.makeApiClient(k8s.DiscoveryV1Api),
      ext: kc.makeApiClient(k8s.ApiextensionsV1Api),
    };
    kubes.set(c.name, k);
  }
  return k;
}
const apply = (c: StackClusterInfo, obj: k8s.KubernetesObject) =>
  kube(c).objects.patch(obj, undefined, undefined, 'stack-test', true, k8s.PatchStrategy.ServerSideApply);


beforeAll(async () => {
  await Promise.all(
    stack.clusters.map((c) => apply(c, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })),
  );
});
afterAll(async () => {
  await Promise.all(
    stack.clusters.map((c) =>
      kube(c)
        .core.deleteNamespace({ name: ns })
        .catch(() => undefined),
    ),
  );
});

const httpRoute = (weights: [number, number]) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'web', namespace: ns },
  spec: {
    parentRefs: [{ name: 'edge', kind: 'Gateway', group: 'gateway.networking.k8s.io' }],
    hostnames: ['web.example.com'],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' } }],
        backendRefs: [
          { name: 'web-stable', port: 80, weight: weights[0] },
          { name: 'web-canary', port: 80, weight: weights[1] },
        ],
      },
    ],
  },
});

const virtualService = (weights: [number, number]) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'web', namespace: ns },
  spec: {
    hosts: ['web'],
    http: [
      {
        name: 'primary',
        route: [
          { destination: { host: 'web', subset: 'stable' }, weight: weights[0] },
          { destination: { host: 'web', subset: 'canary' }, weight: weights[1] },
        ],
      },
    ],
  },
});

describe('traffic-routing resource definitions', () => {
  it('are registered and Established in every cluster: the Gateway API standard channel and Istio', async () => {
    const want = [...definitionNames('gateway-api'), ...definitionNames('istio')];
    expect(want).toContain('httproutes.gateway.networking.k8s.io');
    expect(want).toContain('virtualservices.networking.istio.io');
    expect(want.length).toBe(10 + 15);
    for (const c of stack.clusters) {
      const list = await kube(c).ext.listCustomResourceDefinition();
      const established = list.items
        .filter((d) => d.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True'))
        .map((d) => d.metadata!.name!);
      expect(
        want.filter((n) => !established.includes(n)),
        c.name,
      ).toEqual([]);
    }
  });

  it('take an HTTPRoute with two weighted backends and a VirtualService with two weighted routes, read back as written, in each cluster', async () => {
    for (const c of stack.clusters) {
      await apply(c, httpRoute([80, 20]));
      await apply(c, virtualService([80, 20]));
      // Shift the weights, as a router would at a canary step.
      await apply(c, httpRoute([60, 40]));
      await apply(c, virtualService([60, 40]));
      const route = (await kube(c).objects.read({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'web', namespace: ns },
      })) as k8s.KubernetesObject & { spec: ReturnType<typeof httpRoute>['spec'] };
      expect(route.spec.rules[0]!.backendRefs.map((b) => [b.name, b.weight])).toEqual([
        ['web-stable', 60],
        ['web-canary', 40],
      ]);
      const vs = (await kube(c).objects.read({
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'web', namespace: ns },
      })) as k8s.KubernetesObject & { spec: ReturnType<typeof virtualService>['spec'] };
      expect(vs.spec.http[0]!.route.map((r) => [r.destination.subset, r.weight])).toEqual([
        ['stable', 60],
        ['canary', 40],
      ]);
    }
  });

  it('FLOTILLA_STACK_CRDS narrows what up registers (a stack that routes no traffic spares the cost)', () => {
    expect(upBundles(undefined)).toEqual(['gateway-api', 'istio']);
    expect(upBundles('istio')).toEqual(['istio']);
    expect(upBundles(' gateway-api , istio ')).toEqual(['gateway-api', 'istio']);
    expect(upBundles('none')).toEqual([]);
    expect(() => upBundles('linkerd')).toThrow(/FLOTILLA_STACK_CRDS: unknown linkerd/);
  });

  it('validate with their schemas: a weight out of range is refused with the field', async () => {
    const c = stack.clusters[0]!;
    const err = await apply(c, {
      ...httpRoute([80, 20]),
      metadata: { name: 'bad', namespace: ns },
    } as never).then(
      () => undefined,
      (e: { code?: number; body?: unknown }) => e,
    );
    expect(err).toBeUndefined(); // sanity: the same route under another name is fine
    const bad = httpRoute([80, 20]);
    bad.metadata.name = 'too-heavy';
    bad.spec.rules[0]!.backendRefs[1]!.weight = 1_000_001; // the schema's maximum is 1000000
    const refused = await apply(c, bad).then(
      () => undefined,
      (e: { code?: number; body?: unknown }) => e,
    );
    expect(refused?.code).toBe(422);
    expect(String(refused?.body)).toMatch(/weight/);
  });
});

describe('Services with real endpoints', () => {
  it('an EndpointSlice lists the ready pods a Service selects, and stops counting one that turns unready', async () => {
    const c = stack.clusters[1]!;
    const central = stack.registries.find((r) => r.name === 'central')!.host;
    await apply(c, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'api', namespace: ns },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'api' } },
        template: {
          metadata: { labels: { app: 'api' } },
          spec: {
            containers: [{ name: 'api', image: `${central}/demo/web:v1`, ports: [{ containerPort: 8080 }] }],
          },
        },
      },
    } as k8s.KubernetesObject);
    await apply(c, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'api', namespace: ns },
      spec: { selector: { app: 'api' }, ports: [{ port: 80, targetPort: 8080 }] },
    } as k8s.KubernetesObject);

    const readyIps = async () => {
      const slices = await kube(c).discovery.listNamespacedEndpointSlice({
        namespace: ns,
        labelSelector: 'kubernetes.io/service-name=api',
      });
      return slices.items
        .flatMap((s) => s.endpoints ?? [])
        .filter((e) => e.conditions?.ready)
        .flatMap((e) => e.addresses)
        .sort();
    };
    const pods = await eventually('3 ready pods', 60_000, async () => {
      const list = (await kube(c).core.listNamespacedPod({ namespace: ns, labelSelector: 'app=api' })).items;
      const ready = list.filter((p) =>
        p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'),
      );
      return ready.length === 3 ? ready : undefined;
    });
    const ips = pods.map((p) => p.status!.podIP!).sort();
    expect(new Set(ips).size).toBe(3);
    const listed = await eventually('the EndpointSlice lists the 3 pods', 30_000, async () => {
      const got = await readyIps();
      return got.length === 3 ? got : undefined;
    });
    expect(listed).toEqual(ips);
    const slices = await kube(c).discovery.listNamespacedEndpointSlice({
      namespace: ns,
      labelSelector: 'kubernetes.io/service-name=api',
    });
    expect(slices.items[0]!.ports?.[0]?.port).toBe(8080);
    expect(slices.items[0]!.endpoints!.every((e) => e.nodeName?.startsWith(`${c.name}-node-`))).toBe(true);

    // One pod turns unready (its readiness probe fails, as a kubelet would report it).
    const victim = pods[0]!;
    await kube(c).core.patchNamespacedPodStatus(
      {
        name: victim.metadata!.name!,
        namespace: ns,
        body: {
          status: { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: new Date() }] },
        },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const after = await eventually('the unready pod dropped from the ready endpoints', 30_000, async () => {
      const got = await readyIps();
      return got.length === 2 ? got : undefined;
    });
    expect(after).toEqual(ips.filter((ip) => ip !== victim.status!.podIP));
    // The old Endpoints API follows too (its controller runs for tools that still read it).
    const ep = await kube(c).core.readNamespacedEndpoints({ name: 'api', namespace: ns });
    expect(ep.subsets?.[0]?.addresses?.map((a) => a.ip).sort()).toEqual(after);
    expect(ep.subsets?.[0]?.notReadyAddresses?.map((a) => a.ip)).toEqual([victim.status!.podIP]);
  });
});
