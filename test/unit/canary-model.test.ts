/**
 * model/canary.ts: the traffic-routing schema, the canary target, the objects a canary
 * adds, and the replica calculators (tables and properties).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ANNOTATION_APP,
  canaryObjects,
  canaryScale,
  CanaryScaleSchema,
  canaryTarget,
  hasStableTrack,
  LABEL_CANARY_OF,
  LABEL_MANAGED_BY,
  LABEL_TRACK,
  NGINX_CANARY,
  NGINX_CANARY_WEIGHT,
  PlanError,
  replicaSplit,
  RouterKind,
  routerKind,
  TrafficRoutingSchema,
  weightOf,
  withStableTrack,
  type CanaryTarget,
  type KubeObject,
} from '../../model/index.ts';

const ns = 'shop';
const deployment = (name: string, image: string, labels = { app: name }, replicas: number | null = 4): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: ns, labels: { [LABEL_MANAGED_BY]: 'flotilla' }, annotations: { [ANNOTATION_APP]: `${ns}/web`, 'flotilla.dev/delivery': 'd-2' } },
  spec: {
    ...(replicas !== null ? { replicas } : {}),
    selector: { matchLabels: labels },
    strategy: { type: 'RollingUpdate' },
    template: { metadata: { labels: { ...labels, team: 'blue' } }, spec: { containers: [{ name, image }] } },
  },
});
const service = (name: string, selector: Record<string, string>, type = 'ClusterIP'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: ns },
  spec: { type, clusterIP: '10.0.0.7', selector, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }] },
});
const ingress: KubeObject = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name: 'web', namespace: ns, annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/' } },
  spec: {
    tls: [{ hosts: ['web.example.com'], secretName: 'tls' }],
    rules: [
      { host: 'web.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } },
      { host: 'other.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'other', port: { number: 80 } } } }] } },
    ],
  },
};
const bundle = [service('web', { app: 'web' }), deployment('web', 'r/web:v1')];
const target = canaryTarget(bundle) as CanaryTarget;

describe('TrafficRoutingSchema', () => {
  it.each([
    [undefined, { replicaRatio: {} }],
    [{ replicaRatio: {} }, { replicaRatio: {} }],
    [{ gatewayAPI: { httpRoute: 'web' } }, { gatewayAPI: { httpRoute: 'web' } }],
    [{ istio: { virtualService: 'web', routes: ['primary'] } }, { istio: { virtualService: 'web', routes: ['primary'] } }],
    [{ nginx: { ingress: 'web' } }, { nginx: { ingress: 'web' } }],
  ])('takes %j', (input, want) => {
    expect(TrafficRoutingSchema.parse(input)).toEqual(want);
  });

  it.each([
    [{}, [], /exactly one router/],
    [{ gatewayAPI: { httpRoute: 'web' }, nginx: { ingress: 'web' } }, [], /exactly one router.*got gatewayAPI, nginx/],
    [{ gatewayAPI: {} }, ['gatewayAPI', 'httpRoute'], /expected string/i],
    [{ gatewayAPI: { httpRoute: 'Web_1' } }, ['gatewayAPI', 'httpRoute'], /object name/],
    [{ istio: { virtualService: 'web', routes: [] } }, ['istio', 'routes'], /too small|at least/i],
    [{ nginx: { ingress: 'web', weight: 3 } }, ['nginx'], /unrecognized/i],
    [{ linkerd: {} }, [], /unrecognized/i],
  ])('refuses %j at its field', (input, path, message) => {
    const r = TrafficRoutingSchema.safeParse(input);
    expect(r.success).toBe(false);
    const issue = r.error!.issues[0]!;
    expect(issue.path).toEqual(path);
    expect(issue.message).toMatch(message);
  });

  it('names the router kind', () => {
    expect(routerKind({ replicaRatio: {} })).toBe(RouterKind.replicaRatio);
    expect(routerKind({ istio: { virtualService: 'x' } })).toBe(RouterKind.istio);
  });
});

describe('canaryTarget', () => {
  it('picks the only Deployment and the Service selecting its pods, and names the canary objects', () => {
    expect(target).toEqual({
      namespace: ns,
      deployment: 'web',
      service: 'web',
      selector: { app: 'web' },
      ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
      replicas: 4,
      stableService: 'web-stable',
      canaryService: 'web-canary',
      canaryDeployment: 'web-canary',
    });
  });

  it('takes the named Deployment and Service among several; leaves replicas out when an autoscaler owns them', () => {
    const objects = [service('web', { app: 'web' }), service('web-admin', { app: 'web' }), deployment('web', 'a', { app: 'web' }, null), deployment('worker', 'b')];
    const t = canaryTarget(objects, { deployment: 'web', service: 'web-admin' }) as CanaryTarget;
    expect(t).toMatchObject({ deployment: 'web', service: 'web-admin', canaryService: 'web-admin-canary' });
    expect(t.replicas).toBeUndefined();
  });

  it.each([
    [[service('web', { app: 'web' })], {}, ['deployment'], /no Deployment to canary/],
    [[deployment('a', 'x'), deployment('b', 'y'), service('a', { app: 'a' })], {}, ['deployment'], /2 Deployments \(a, b\): name the one/],
    [bundle, { deployment: 'api' }, ['deployment'], /no Deployment api in the application \(has: web\)/],
    [[deployment('web', 'x')], {}, ['service'], /no Service of the application selects the pods of Deployment web/],
    [[deployment('web', 'x'), service('a', { app: 'web' }), service('b', { team: 'blue' })], {}, ['service'], /2 Services select.*name one/],
    [[deployment('web', 'x'), service('db', { app: 'db' })], { service: 'db' }, ['service'], /does not select the pods/],
    [[deployment('web', 'x'), service('w'.repeat(58), { app: 'web' })], {}, ['service'], /too long/],
  ])('refuses what is not one Deployment and one Service (%#)', (objects, opts, path, message) => {
    const r = canaryTarget(objects, opts);
    expect(r).toBeInstanceOf(PlanError);
    expect((r as PlanError).path).toEqual(path);
    expect((r as PlanError).message).toMatch(message);
  });
});

describe('canaryObjects', () => {
  const next = [service('web', { app: 'web' }), deployment('web', 'r/web:v2')];

  it('replica ratio adds only the canary Deployment: the new template, the canary track on selector and template, 0 replicas, owned like the app', () => {
    const out = canaryObjects(target, next, { replicaRatio: {} }) as KubeObject[];
    expect(out.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Deployment/web-canary']);
    const d = out[0]!;
    expect(d.spec).toMatchObject({
      replicas: 0,
      strategy: { type: 'RollingUpdate' },
      selector: { matchLabels: { app: 'web', [LABEL_TRACK]: 'canary' } },
      template: { metadata: { labels: { app: 'web', team: 'blue', [LABEL_TRACK]: 'canary' } }, spec: { containers: [{ image: 'r/web:v2' }] } },
    });
    expect(d.metadata.labels).toMatchObject({ [LABEL_MANAGED_BY]: 'flotilla', [LABEL_CANARY_OF]: 'web' });
    expect(d.metadata.annotations).toEqual({ [ANNOTATION_APP]: 'shop/web', 'flotilla.dev/delivery': 'd-2' });
    // The input is left as it was.
    expect((next[1]!.spec as { template: { metadata: { labels: object } } }).template.metadata.labels).toEqual({ app: 'web', team: 'blue' });
  });

  it.each([{ gatewayAPI: { httpRoute: 'web' } }, { istio: { virtualService: 'web' } }])('%j adds the stable and canary Services (the user ports, selector + track)', (routing) => {
    const out = canaryObjects(target, next, routing) as KubeObject[];
    expect(out.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Service/web-stable', 'Service/web-canary', 'Deployment/web-canary']);
    expect(out[0]!.spec).toEqual({ type: 'ClusterIP', selector: { app: 'web', [LABEL_TRACK]: 'stable' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] });
    expect((out[1]!.spec as { selector: object }).selector).toEqual({ app: 'web', [LABEL_TRACK]: 'canary' });
  });

  it('NGINX adds the canary Ingress: the rules reaching the Service, pointed at the canary Service, canary annotations at weight 0, no TLS', () => {
    const out = canaryObjects(target, next, { nginx: { ingress: 'web' } }, [ingress]) as KubeObject[];
    const ing = out.find((o) => o.kind === 'Ingress')!;
    expect(ing.metadata).toMatchObject({
      name: 'web-canary',
      namespace: ns,
      annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/', [NGINX_CANARY]: 'true', [NGINX_CANARY_WEIGHT]: '0' },
      labels: { [LABEL_CANARY_OF]: 'web', [LABEL_MANAGED_BY]: 'flotilla' },
    });
    expect(ing.metadata.annotations).toMatchObject({ [ANNOTATION_APP]: 'shop/web' }); // owned like the app, so removeCanary may delete it
    expect(ing.spec).toEqual({
      rules: [{ host: 'web.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web-canary', port: { number: 80 } } } }] } }],
    });
  });

  it('refuses an NGINX canary without the Ingress, an Ingress not on the Service, a new version without the Deployment', () => {
    expect(canaryObjects(target, next, { nginx: { ingress: 'web' } }, [])).toBeInstanceOf(PlanError);
    const other = { ...ingress, spec: { rules: [ingress.spec && (ingress.spec as { rules: unknown[] }).rules[1]] } } as KubeObject;
    expect((canaryObjects(target, next, { nginx: { ingress: 'web' } }, [other]) as PlanError).message).toMatch(/no backend on Service web/);
    expect((canaryObjects(target, [service('web', { app: 'web' })], { replicaRatio: {} }) as PlanError).message).toMatch(/no Deployment web/);
  });

  it('withStableTrack puts the stable track on the named Deployment template only (not its immutable selector)', () => {
    const out = withStableTrack(next, 'web');
    expect(hasStableTrack(out[1]!)).toBe(true);
    expect(hasStableTrack(next[1]!)).toBe(false);
    expect((out[1]!.spec as { selector: object }).selector).toEqual({ matchLabels: { app: 'web' } });
    expect(out[0]).toBe(next[0]);
  });
});

describe('replicaSplit', () => {
  it.each([
    [10, 0, 10, 0],
    [10, 20, 8, 2],
    [10, 25, 7, 3],
    [10, 50, 5, 5],
    [10, 99, 1, 9],
    [2, 51, 1, 1],
    [10, 100, 0, 10],
    [1, 20, 1, 1],
    [1, 100, 0, 1],
    [3, 1, 2, 1],
    [0, 50, 0, 0],
  ])('%i replicas at %i percent: stable %i, canary %i', (total, weight, stable, canary) => {
    expect(replicaSplit(total, weight)).toEqual({ stable, canary });
  });

  it('refuses a weight or total out of range', () => {
    expect(() => replicaSplit(10, 101)).toThrow(/weight must be a whole number from 0 to 100/);
    expect(() => replicaSplit(10, 2.5)).toThrow(RangeError);
    expect(() => replicaSplit(-1, 5)).toThrow(/total replicas/);
  });

  it('property: canary + stable = total (but 1 + 1 for a single replica during its canary); one of each while 0 < w < 100', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 100 }), (total, w) => {
        const { stable, canary } = replicaSplit(total, w);
        if (total !== 1 || w === 0 || w === 100) expect(stable + canary).toBe(total);
        else expect(stable + canary).toBe(total + 1);
        if (w > 0 && total > 0) expect(canary).toBeGreaterThanOrEqual(1);
        if (w < 100 && total > 0) expect(stable).toBeGreaterThanOrEqual(1);
      }),
    );
  });

  it('property: the canary never shrinks and the stable never grows as the weight rises', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), (total, a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(replicaSplit(total, lo).canary).toBeLessThanOrEqual(replicaSplit(total, hi).canary);
        expect(replicaSplit(total, lo).stable).toBeGreaterThanOrEqual(replicaSplit(total, hi).stable);
      }),
    );
  });
});

describe('canaryScale (setCanaryScale)', () => {
  it('a traffic router keeps the stable side whole; the canary follows the weight, a count or a percentage', () => {
    expect(canaryScale(RouterKind.gatewayAPI, 10, 20)).toEqual({ stable: 10, canary: 2 });
    expect(canaryScale(RouterKind.istio, 10, 0)).toEqual({ stable: 10, canary: 0 });
    expect(canaryScale(RouterKind.nginx, 4, 5)).toEqual({ stable: 4, canary: 1 });
    expect(canaryScale(RouterKind.gatewayAPI, 10, 20, { replicas: 5 })).toEqual({ stable: 10, canary: 5 });
    expect(canaryScale(RouterKind.gatewayAPI, 10, 20, { weight: 60 })).toEqual({ stable: 10, canary: 6 });
    expect(canaryScale(RouterKind.gatewayAPI, 10, 20, { matchTrafficWeight: true })).toEqual({ stable: 10, canary: 2 });
  });

  it('replica ratio takes no setCanaryScale but matchTrafficWeight', () => {
    expect(canaryScale(RouterKind.replicaRatio, 10, 20)).toEqual({ stable: 8, canary: 2 });
    expect(canaryScale(RouterKind.replicaRatio, 10, 20, { matchTrafficWeight: true })).toEqual({ stable: 8, canary: 2 });
    expect(() => canaryScale(RouterKind.replicaRatio, 10, 20, { replicas: 3 })).toThrow(/needs a traffic router/);
  });

  it('CanaryScaleSchema wants exactly one of replicas, weight, matchTrafficWeight', () => {
    expect(CanaryScaleSchema.parse({ replicas: 3 })).toEqual({ replicas: 3 });
    expect(CanaryScaleSchema.safeParse({}).error?.issues[0]?.message).toMatch(/exactly one/);
    expect(CanaryScaleSchema.safeParse({ replicas: 1, weight: 2 }).success).toBe(false);
    expect(CanaryScaleSchema.safeParse({ weight: 101 }).error?.issues[0]?.path).toEqual(['weight']);
    expect(CanaryScaleSchema.safeParse({ matchTrafficWeight: false }).success).toBe(false);
  });

  it('weightOf reads a share back', () => {
    expect(weightOf(80, 20)).toBe(20);
    expect(weightOf(0, 0)).toBe(0);
    expect(weightOf(7, 3)).toBe(30);
  });
});
