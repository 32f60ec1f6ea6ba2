/**
 * The canary of progressive.test.ts with the Gateway API router (an HTTPRoute in the bundle;
 * its backendRefs' weights read back from each API server, and the stable and canary Services'
 * EndpointSlices), and once for a Deployment that comes from a Helm chart (packaged by the real
 * helm, pushed to the stack's registry, rendered on the hub), through the HTTP API and the real
 * worker.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runHelm } from '../../stack/tools.ts';
import { get, harness, RM, servicesFollowTracks, SRE, splitIn, webDeployment, webService, type Harness, type Json } from './progressive-support.ts';

const stack = inject('stack');
let h: Harness;
const work = mkdtempSync(path.join(tmpdir(), 'flotilla-progressive-'));

beforeAll(async () => {
  h = await harness(stack);
});
afterAll(async () => {
  await h?.stop();
  rmSync(work, { recursive: true, force: true });
});

const httpRoute = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'web' },
  spec: { parentRefs: [{ name: 'edge' }], hostnames: ['web.example.com'], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'web', port: 80 }] }] },
};

/** Each rule's backendRefs as [name, weight], read from the API server. */
const backendRefs = async (cluster: string, ns: string) => {
  const r = await get(h.clients.get(cluster)!, `/apis/gateway.networking.k8s.io/v1/namespaces/${ns}/httproutes/web`);
  return {
    refs: (r!.spec.rules as Json[]).map((rule) => (rule.backendRefs as Json[]).map((b) => [b.name, b.weight])),
    recorded: r!.metadata.annotations?.['flotilla.dev/routing-original'] !== undefined,
  };
};

describe('canary with the Gateway API router', () => {
  it('an HTTPRoute in the bundle: backendRefs weighted 80/20 then 50/50 in each wave, stable replicas kept, the route restored after promotion', async () => {
    const ns = h.fresh('gw');
    const v1 = await h.pinned('v1');
    const v2 = await h.pinned('v2');
    const body = (img: string) => ({
      app: { name: 'web', namespace: ns, source: { manifests: [webDeployment(img, 4), webService, httpRoute] }, placement: { clusters: ['beijing', 'shenzhen'] }, distribution: 'duplicated' },
      waves: [['beijing'], ['shenzhen']],
      onFailure: 'pause',
      rolloutTimeout: '2m',
    });
    const base = await h.finished(await h.start({ type: 'deploy', ...body(h.image('v1')) }));
    expect(base.phase, base.message).toBe('Healthy');
    expect((await backendRefs('beijing', ns)).refs).toEqual([[['web', 1]]]); // the API server's default weight

    const id = await h.start({
      type: 'canary',
      ...body(h.image('v2')),
      canary: { trafficRouting: { gatewayAPI: { httpRoute: 'web' } }, steps: [{ setWeight: 20 }, { approval: { name: 'go', roles: ['release-manager'] } }, { setWeight: 50 }, { pause: {} }] },
    });
    for (const [wave, cluster] of [[0, 'beijing'], [1, 'shenzhen']] as const) {
      const other = cluster === 'beijing' ? 'shenzhen' : 'beijing';
      let s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentWave === wave && x.currentStep === 3, `wave ${wave + 1} at the gate`);
      expect(s.clusters[cluster]!.weight).toBe(20);
      expect(await backendRefs(cluster, ns)).toEqual({ refs: [[['web-stable', 80], ['web-canary', 20]]], recorded: true });
      // A traffic router keeps every stable replica until promotion; the canary runs ceil(4 * 20 %) = 1.
      expect((await splitIn(h.clients, ns, [cluster]))[cluster]).toEqual({ stable: { image: h.at(cluster, v1), replicas: 4, ready: 4 }, canary: { image: h.at(cluster, v2), replicas: 1, ready: 1 } });
      await servicesFollowTracks(h.clients.get(cluster)!, cluster, ns);
      // The other wave: before its turn untouched (its route unweighted), after its promotion all v2, route restored.
      expect(await backendRefs(other, ns)).toEqual({ refs: [[['web', 1]]], recorded: false });
      expect((await splitIn(h.clients, ns, [other]))[other]).toEqual({ stable: { image: h.at(other, wave === 0 ? v1 : v2), replicas: 4, ready: 4 }, canary: null });

      expect((await h.act(id, RM, { action: 'approve', gate: 'go' })).status).toBe(200);
      s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentWave === wave && x.currentStep === 5, `wave ${wave + 1} at 50 %`);
      expect(s.clusters[cluster]!.weight).toBe(50);
      expect(await backendRefs(cluster, ns)).toEqual({ refs: [[['web-stable', 50], ['web-canary', 50]]], recorded: true });
      expect((await splitIn(h.clients, ns, [cluster]))[cluster]).toEqual({ stable: { image: h.at(cluster, v1), replicas: 4, ready: 4 }, canary: { image: h.at(cluster, v2), replicas: 2, ready: 2 } });
      await servicesFollowTracks(h.clients.get(cluster)!, cluster, ns);
      expect((await h.act(id, SRE, { action: 'promote' })).status).toBe(200);
    }
    const final = await h.finished(id);
    expect(final.phase, final.message).toBe('Healthy');
    for (const cluster of ['beijing', 'shenzhen']) {
      expect(await backendRefs(cluster, ns), cluster).toEqual({ refs: [[['web', 1]]], recorded: false });
      expect((await splitIn(h.clients, ns, [cluster]))[cluster]).toEqual({ stable: { image: h.at(cluster, v2), replicas: 4, ready: 4 }, canary: null });
      const services = ((await get(h.clients.get(cluster)!, `/api/v1/namespaces/${ns}/services`))!.items as Json[]).map((x) => x.metadata.name).sort();
      expect(services, `${cluster}: the canary's Services are gone`).toEqual(['web']);
    }
  });
});

describe('canary of a Deployment from a Helm chart', () => {
  it('the chart from the stack registry, v1 then v2 by values: 25 % (1 of 4) in both clusters of the wave, then promoted; the canary gone', async () => {
    const ns = h.fresh('helm');
    const chart = path.join(work, 'canary-web');
    mkdirSync(path.join(chart, 'templates'), { recursive: true });
    writeFileSync(path.join(chart, 'Chart.yaml'), stringify({ apiVersion: 'v2', name: 'canary-web', version: '1.0.0' }));
    writeFileSync(path.join(chart, 'values.yaml'), stringify({ image: h.image('v1'), replicas: 4 }));
    writeFileSync(
      path.join(chart, 'templates', 'app.yaml'),
      [
        'apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  selector: {app: {{ .Release.Name }}}\n  ports: [{port: 80, targetPort: 8080}]',
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  labels: {helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n  template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      containers:\n        - name: web\n          image: {{ .Values.image }}',
      ].join('\n---\n'),
    );
    await runHelm(stack.dataDir, ['package', chart, '--destination', work]);
    const tgz = path.join(work, readdirSync(work).find((f) => f.startsWith('canary-web') && f.endsWith('.tgz'))!);
    await runHelm(stack.dataDir, ['push', tgz, `oci://${h.central}/charts`, '--plain-http']);
    const CLUSTERS = ['beijing', 'cloud-hk'];
    const body = (values: Record<string, unknown>) => ({
      app: { name: 'web', namespace: ns, source: { helm: { chart: `oci://${h.central}/charts/canary-web`, version: '1.0.0', releaseName: 'web', values } }, placement: { clusters: CLUSTERS }, distribution: 'duplicated' },
      waves: [CLUSTERS],
      onFailure: 'pause',
      rolloutTimeout: '2m',
    });
    const v1 = await h.pinned('v1');
    const v2 = await h.pinned('v2');
    const base = await h.finished(await h.start({ type: 'deploy', ...body({}) }));
    expect(base.phase, base.message).toBe('Healthy');
    expect(base.source).toBe('helm');

    const id = await h.start({ type: 'canary', ...body({ image: h.image('v2') }), canary: { steps: [{ setWeight: 25 }, { pause: {} }] } });
    const s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentStep === 3, 'paused at 25 %');
    expect(CLUSTERS.map((c) => s.clusters[c]!.weight)).toEqual([25, 25]);
    const split = await splitIn(h.clients, ns, CLUSTERS);
    for (const c of CLUSTERS) expect(split[c], c).toEqual({ stable: { image: h.at(c, v1), replicas: 3, ready: 3 }, canary: { image: h.at(c, v2), replicas: 1, ready: 1 } });
    // The canary Deployment is the chart's Deployment with the canary track (its labels came from the chart).
    const canary = await get(h.clients.get('beijing')!, `/apis/apps/v1/namespaces/${ns}/deployments/web-canary`);
    expect(canary!.metadata.labels).toMatchObject({ 'helm.sh/chart': 'canary-web-1.0.0', 'flotilla.dev/canary-of': 'web' });
    expect(canary!.spec.selector.matchLabels).toEqual({ app: 'web', 'flotilla.dev/track': 'canary' });
    expect((await h.act(id, SRE, { action: 'promote' })).status).toBe(200);

    const final = await h.finished(id);
    expect(final.phase, final.message).toBe('Healthy');
    const done = await splitIn(h.clients, ns, CLUSTERS);
    for (const c of CLUSTERS) expect(done[c], c).toEqual({ stable: { image: h.at(c, v2), replicas: 4, ready: 4 }, canary: null });
  });
});

describe('canary with a Gateway API route the bundle does not carry', () => {
  // The route is the platform team's (created here by the test, not delivered by Flotilla): only the router knows what it changed in it.
  async function stopAt30(action: 'abort' | 'rollback') {
    const ns = h.fresh(`gw-${action}`);
    const v1 = await h.pinned('v1');
    const bj = h.clients.get('beijing')!;
    const body = (img: string) => ({ app: { name: 'web', namespace: ns, image: img, replicas: 4, distribution: 'duplicated', placement: { clusters: ['beijing'] } }, onFailure: 'pause', rolloutTimeout: '2m' });
    const base = await h.finished(await h.start({ type: 'deploy', ...body(h.image('v1')) }));
    expect(base.phase, base.message).toBe('Healthy');
    await bj.rest('POST', `/apis/gateway.networking.k8s.io/v1/namespaces/${ns}/httproutes`, { body: { ...httpRoute, metadata: { name: 'web', namespace: ns } } });
    expect((await backendRefs('beijing', ns)).refs).toEqual([[['web', 1]]]);

    const id = await h.start({ type: 'canary', ...body(h.image('v2')), canary: { trafficRouting: { gatewayAPI: { httpRoute: 'web' } }, steps: [{ setWeight: 30 }, { pause: {} }] } });
    await h.waitFor(id, (x) => x.phase === 'Paused' && x.clusters.beijing?.weight === 30, `${action}: paused at 30 %`);
    expect(await backendRefs('beijing', ns)).toEqual({ refs: [[['web-stable', 70], ['web-canary', 30]]], recorded: true });
    expect((await h.act(id, SRE, { action, comment: `${action} the canary` })).status).toBe(200);
    const final = await h.finished(id);
    const services = ((await get(bj, `/api/v1/namespaces/${ns}/services`))!.items as Json[]).map((x) => x.metadata.name).sort();
    expect({ phase: final.phase, route: await backendRefs('beijing', ns), services, web: (await splitIn(h.clients, ns, ['beijing'])).beijing }).toEqual({
      phase: action === 'abort' ? 'Aborted' : 'RolledBack',
      route: { refs: [[['web', 1]]], recorded: false },
      services: ['web'],
      web: { stable: { image: h.at('beijing', v1), replicas: 4, ready: 4 }, canary: null },
    });
  }

  it('abort at 30 % puts the route back on the user Service, drops the canary Services and restores v1', () => stopAt30('abort'));

  // A rollback, like an abort, has the router revert the route before the captured objects are restored.
  it('rollback at 30 % does the same', () => stopAt30('rollback'));
});
