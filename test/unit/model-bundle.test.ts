/**
 * Sources and bundles (pure): what a request may carry, how rendered objects
 * are checked, how replicas and autoscaler bounds are divided, how overrides
 * and patches land per cluster, how images are pinned and what is pruned.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AppSpecSchema,
  ClusterSchema,
  compactSpec,
  customizeForCluster,
  DeployRequestSchema,
  effectiveOverride,
  markBundle,
  normalizeBundle,
  pinBundle,
  planBundleReplicas,
  planPlacement,
  PlanError,
  prepareBundle,
  toClusterInfo,
  toPrune,
  type AppSpecInput,
  type KubeObject,
} from '../../model/index.ts';

const fleet = [
  ['beijing', 'cn-north', 'private', 2],
  ['shenzhen', 'cn-south', 'private', 1],
  ['cloud-hk', 'ap-east', 'public', 1],
].map(([name, region, provider, capacity]) => toClusterInfo(ClusterSchema.parse({ name, region, provider, capacity, kubeconfig: { path: '/k' } })));

const deployment = (name: string, replicas?: number, image = 'reg.local:5000/demo/web:v1'): KubeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: { ...(replicas !== undefined ? { replicas } : {}), selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'web', image, env: [{ name: 'A', value: '1' }] }], initContainers: [{ name: 'init', image: 'reg.local:5000/tools:1' }] } } },
});
const configMap = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { REGION: 'x' } });
const hpa = (target: string, min: number, max: number): KubeObject => ({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: target }, spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: target }, minReplicas: min, maxReplicas: max } });
const app = (over: Partial<AppSpecInput> = {}) => AppSpecSchema.parse({ name: 'shop', namespace: 'shop', source: { manifests: [configMap('c')] }, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] }, ...over });

describe('sources', () => {
  it('reads multi-document YAML (and a List) into objects, each checked; a bad document is named', () => {
    const ok = AppSpecSchema.parse({ ...app(), source: { manifests: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\n' } });
    expect((ok.source as { manifests: KubeObject[] }).manifests.map((o) => o.metadata.name)).toEqual(['a', 'b']);
    const bad = AppSpecSchema.safeParse({ ...app(), source: { manifests: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [unclosed' } });
    expect(bad.error?.issues[0]?.message).toMatch(/document 2 is not valid YAML/);
    const noName = AppSpecSchema.safeParse({ ...app(), source: { manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {} }] } });
    expect(noName.error?.issues[0]?.path).toEqual(['source', 'manifests', 0, 'metadata', 'name']);
  });

  it('a kustomization needs its kustomization.yaml, paths stay inside; Helm needs exactly one of chart and archive', () => {
    expect(AppSpecSchema.safeParse({ ...app(), source: { kustomize: { files: { 'base/x.yaml': '' }, path: 'base' } } }).error?.issues[0]?.message).toMatch(/no kustomization.yaml in base/);
    expect(AppSpecSchema.safeParse({ ...app(), source: { kustomize: { files: { '../etc/passwd': '', 'kustomization.yaml': '' } } } }).success).toBe(false);
    expect(AppSpecSchema.safeParse({ ...app(), source: { helm: { version: '1.0.0' } } }).error?.issues[0]?.message).toMatch(/exactly one of chart/);
    expect(AppSpecSchema.safeParse({ ...app(), source: { helm: { chart: 'https://x/y' } } }).error?.issues[0]?.message).toMatch(/oci:\/\//);
    expect(AppSpecSchema.safeParse({ ...app(), source: { helm: { chart: 'oci://reg.local/charts/shop', version: '1.0.0' } } }).success).toBe(true);
  });

  it('refuses a Secret that carries values (they would be kept in workflow history), in a request or in what a tool rendered', () => {
    const withData = AppSpecSchema.safeParse({ ...app(), source: { manifests: [configMap('c'), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, stringData: { password: 'hunter2' } }] } });
    expect(withData.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['source.manifests.1.stringData', expect.stringMatching(/by reference/)]]);
    expect(JSON.stringify(withData.error?.issues)).not.toContain('hunter2');
    // A Secret without values (a placeholder an operator fills) is an object like any other.
    expect(AppSpecSchema.safeParse({ ...app(), source: { manifests: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' } }] } }).success).toBe(true);
    const rendered: KubeObject[] = [configMap('c'), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db-7fk2' }, data: { password: 'aHVudGVyMg==' } }];
    expect(() => normalizeBundle(rendered, { namespace: 'shop' })).toThrow(/Secret db-7fk2 \(object 2\) carries data: Secrets are delivered by reference/);
  });

  it('the inline spec needs image and replicas; a source takes no template; Helm values only on a Helm source', () => {
    const noImage = AppSpecSchema.safeParse({ name: 'w', placement: { clusters: ['beijing'] }, replicas: 1 });
    expect(noImage.error?.issues.map((i) => i.path.join('.'))).toEqual(['image']);
    expect(AppSpecSchema.safeParse({ ...app(), template: {} }).error?.issues[0]?.path).toEqual(['template']);
    expect(AppSpecSchema.safeParse({ ...app(), overrides: { beijing: { values: { a: 1 } } } }).error?.issues[0]?.path).toEqual(['overrides', 'beijing', 'values']);
  });
});

describe('normalizeBundle', () => {
  it('fills the namespace of namespaced objects, leaves cluster-scoped ones (built-in or declared by a definition) without', () => {
    const crd: KubeObject = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'globals.x.io' }, spec: { names: { kind: 'Global' }, scope: 'Cluster' } };
    const out = normalizeBundle([configMap('c'), crd, { apiVersion: 'x.io/v1', kind: 'Global', metadata: { name: 'g', namespace: 'shop' } }, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }], { namespace: 'shop' });
    expect(out.map((o) => [o.kind, o.metadata.namespace])).toEqual([['ConfigMap', 'shop'], ['CustomResourceDefinition', undefined], ['Global', undefined], ['Namespace', undefined]]);
  });

  it.each([
    ['an object in another namespace', [{ ...configMap('c'), metadata: { name: 'c', namespace: 'other' } }], /outside the application's namespace/],
    ['a Namespace other than its own', [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } }], /only its own namespace/],
    ['the same object twice', [configMap('c'), configMap('c')], /twice/],
  ])('refuses %s', (_n, objects, message) => {
    expect(() => normalizeBundle(objects as KubeObject[], { namespace: 'shop' })).toThrow(message);
  });
});

describe('replicas and autoscalers across clusters', () => {
  const placed = planPlacement(app(), fleet);

  it('divides each replicated workload by capacity (at least one each), or duplicates it; app.replicas sets every total', () => {
    const objects = [deployment('web', 4), deployment('api', 3)];
    expect(planBundleReplicas(objects, app(), placed.clusters, placed.overrides).workloads).toEqual({
      'Deployment/web': { beijing: 2, shenzhen: 1, 'cloud-hk': 1 },
      'Deployment/api': { beijing: 1, shenzhen: 1, 'cloud-hk': 1 },
    });
    expect(planBundleReplicas(objects, app({ replicas: 8 }), placed.clusters, placed.overrides).workloads['Deployment/api']).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 2 });
  });

  it('refuses a total too small to give every cluster one, naming the field', () => {
    expect(() => planBundleReplicas([deployment('web', 2)], app(), placed.clusters, placed.overrides)).toThrow(PlanError);
    try {
      planBundleReplicas([deployment('web', 2)], app(), placed.clusters, placed.overrides);
    } catch (e) {
      expect((e as PlanError).path).toEqual(['source', 0, 'spec', 'replicas']);
    }
  });

  it('an autoscaled workload keeps no replicas of Flotilla: the autoscaler bounds are divided instead, max never below min', () => {
    const objects = [deployment('api', 5), hpa('api', 4, 12)];
    const plan = planBundleReplicas(objects, app(), placed.clusters, placed.overrides);
    expect(plan.workloads).toEqual({});
    expect(plan.autoscalers.api).toEqual({ beijing: { min: 2, max: 6 }, shenzhen: { min: 1, max: 3 }, 'cloud-hk': { min: 1, max: 3 } });
    const hk = customizeForCluster(objects, 'cloud-hk', {}, plan);
    expect((hk[0]!.spec as { replicas?: number }).replicas).toBeUndefined();
    expect(hk[1]!.spec).toMatchObject({ minReplicas: 1, maxReplicas: 3 });
  });

  it('duplicated: every cluster gets the whole total and the whole bounds', () => {
    const dup = app({ distribution: 'duplicated' });
    const plan = planBundleReplicas([deployment('web', 4), deployment('api'), hpa('api', 2, 8)], dup, placed.clusters, placed.overrides);
    expect(plan.workloads['Deployment/web']).toEqual({ beijing: 4, shenzhen: 4, 'cloud-hk': 4 });
    expect(plan.autoscalers.api!['cloud-hk']).toEqual({ min: 2, max: 8 });
  });

  it('property: divided totals add up to the total, every cluster has at least one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 500 }), (total) => {
        const w = planBundleReplicas([deployment('web', total)], app(), placed.clusters, placed.overrides).workloads['Deployment/web']!;
        expect(Object.values(w).reduce((a, b) => a + b, 0)).toBe(total);
        expect(Math.min(...Object.values(w))).toBeGreaterThanOrEqual(1);
      }),
    );
  });
});

describe('per-cluster overrides', () => {
  it('selector overrides apply where labels match, in order; the cluster\'s own wins; env and images merge, patches add up', () => {
    const a = app({
      selectorOverrides: [
        { clusterSelector: { provider: 'private' }, env: { TIER: 'private', X: '1' }, patches: [{ target: { kind: 'ConfigMap', name: 'c' }, path: '/data/REGION', value: 'cn' }] },
        { clusterSelector: { region: 'cn-south' }, env: { TIER: 'south' } },
      ],
      overrides: { shenzhen: { env: { X: '2' }, images: { web: 'reg.local:5000/demo/web:v9' } } },
    });
    const sz = effectiveOverride(a, fleet[1]!);
    expect(sz).toEqual({ env: { TIER: 'south', X: '2' }, images: { web: 'reg.local:5000/demo/web:v9' }, patches: [expect.objectContaining({ path: '/data/REGION' })] });
    expect(effectiveOverride(a, fleet[2]!)).toEqual({});
  });

  it('lands images, env and JSON patches in one cluster\'s copy only', () => {
    const base = [deployment('web', 3), configMap('c')];
    const out = customizeForCluster(base, 'cloud-hk', { env: { A: '2', B: '3' }, images: { web: 'reg.local:5000/demo/web:v2' }, patches: [{ target: { kind: 'ConfigMap', name: 'c' }, op: 'add', path: '/data/HK', value: 'yes' }] }, { workloads: {}, autoscalers: {} });
    const c = (out[0]!.spec as { template: { spec: { containers: { image: string; env: unknown[] }[] } } }).template.spec.containers[0]!;
    expect([c.image, c.env]).toEqual(['reg.local:5000/demo/web:v2', [{ name: 'A', value: '2' }, { name: 'B', value: '3' }]]);
    expect(out[1]!.data).toEqual({ REGION: 'x', HK: 'yes' });
    expect(base[1]!.data).toEqual({ REGION: 'x' }); // the base is not touched
  });

  it('a patch on an object the bundle does not have, or one that fails, names the override', () => {
    const f = (patch: object) => {
      try {
        customizeForCluster([configMap('c')], 'beijing', { patches: [patch as never] }, { workloads: {}, autoscalers: {} });
      } catch (e) {
        return (e as PlanError).path;
      }
      return undefined;
    };
    expect(f({ target: { kind: 'ConfigMap', name: 'nope' }, op: 'replace', path: '/data/x', value: 1 })).toEqual(['overrides', 'beijing', 'patches', 0, 'target']);
    expect(f({ target: { kind: 'ConfigMap', name: 'c' }, op: 'replace', path: '/data/missing/deep', value: 1 })).toEqual(['overrides', 'beijing', 'patches', 0, 'path']);
  });
});

describe('pinning, marking, pruning', () => {
  it('pins every container image (init containers too) by digest, then moves it to the cluster\'s mirror', () => {
    const objects = [deployment('web', 1)];
    pinBundle(objects, { 'reg.local:5000/demo/web:v1': `sha256:${'a'.repeat(64)}`, 'reg.local:5000/tools:1': `sha256:${'b'.repeat(64)}` }, 'mirror.hk:5000', 'cloud-hk');
    const spec = (objects[0]!.spec as { template: { spec: { containers: { image: string }[]; initContainers: { image: string }[] } } }).template.spec;
    expect([spec.initContainers[0]!.image, spec.containers[0]!.image]).toEqual([`mirror.hk:5000/tools@sha256:${'b'.repeat(64)}`, `mirror.hk:5000/demo/web@sha256:${'a'.repeat(64)}`]);
  });

  it('marks every object as the application\'s, by this delivery, in this cluster', () => {
    const objects = [configMap('c')];
    markBundle(objects, { namespace: 'shop', name: 'shop' }, 'delivery-1', 'beijing');
    expect(objects[0]!.metadata).toMatchObject({ labels: { 'app.kubernetes.io/managed-by': 'flotilla' }, annotations: { 'flotilla.dev/app': 'shop/shop', 'flotilla.dev/delivery': 'delivery-1', 'flotilla.dev/cluster': 'beijing' } });
  });

  it('prunes what the last delivery left and this one does not have (whatever the version), newest first', () => {
    const prev = [
      { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'shop', name: 'a' },
      { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'shop', name: 'b' },
      { apiVersion: 'apps/v1beta2', kind: 'Deployment', namespace: 'shop', name: 'web' },
    ];
    const next = normalizeBundle([configMap('a'), deployment('web')], { namespace: 'shop' });
    expect(toPrune(prev, next)).toEqual([prev[1]]);
  });

  it('prepareBundle: each cluster its own copy, its replicas, its patches, pinned and marked, with what to wait for and prune', () => {
    const request = DeployRequestSchema.parse({ type: 'deploy', app: { ...app(), source: { manifests: [deployment('web', 4), configMap('c'), hpa('web2', 3, 4), deployment('web2')] }, overrides: { 'cloud-hk': { patches: [{ target: { kind: 'ConfigMap', name: 'c' }, path: '/data/REGION', value: 'hk' }] } } } });
    const placed = planPlacement(request.app, fleet);
    const base = normalizeBundle((request.app.source as { manifests: KubeObject[] }).manifests, request.app);
    const bases = Object.fromEntries(placed.clusters.map((c) => [c.name, base]));
    const digests = { 'reg.local:5000/demo/web:v1': `sha256:${'1'.repeat(64)}`, 'reg.local:5000/tools:1': `sha256:${'2'.repeat(64)}` };
    const p = prepareBundle(request, placed, bases, digests, 'delivery-x', { beijing: [{ apiVersion: 'v1', kind: 'Secret', namespace: 'shop', name: 'old' }] });
    expect(Object.fromEntries(Object.values(p.clusters).map((c) => [c.cluster, [c.replicas, c.objects.map((o) => o.kind), c.workloads.map((w) => w.name), c.prune.map((r) => r.name)]]))).toEqual({
      beijing: [2, ['ConfigMap', 'Deployment', 'Deployment', 'HorizontalPodAutoscaler'], ['web', 'web2'], ['old']],
      shenzhen: [1, ['ConfigMap', 'Deployment', 'Deployment', 'HorizontalPodAutoscaler'], ['web', 'web2'], []],
      'cloud-hk': [1, ['ConfigMap', 'Deployment', 'Deployment', 'HorizontalPodAutoscaler'], ['web', 'web2'], []],
    });
    expect(p.clusters['cloud-hk']!.objects[0]!.data).toEqual({ REGION: 'hk' });
    expect(p.clusters.beijing!.objects[0]!.data).toEqual({ REGION: 'x' });
    expect(p.clusters.beijing!.image).toBe(`reg.local:5000/demo/web@sha256:${'1'.repeat(64)}`); // the first workload's own container
    expect(p.waves).toEqual([{ clusters: ['beijing', 'shenzhen', 'cloud-hk'], steps: [{ kind: 'apply' }, { kind: 'wait' }, { kind: 'prune' }] }]);
  });
});

describe('the spec an application record keeps', () => {
  it('keeps a small source whole and names a large one by its version, which is itself a valid source', () => {
    const small = app();
    expect(compactSpec(small, 3)).toBe(small);
    const big = app({ source: { manifests: Array.from({ length: 200 }, (_, i) => configMap(`c-${i}`)) } });
    const kept = compactSpec(big, 3);
    expect(kept.source).toEqual({ version: 3 });
    expect(kept.placement).toEqual(big.placement);
    expect(AppSpecSchema.safeParse(kept).success).toBe(true);
  });
});
