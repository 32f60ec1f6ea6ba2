/**
 * The canary of the issue (20 %, an approval gate, 50 %, then full) over two waves with the Istio
 * router (a VirtualService in the bundle) and with the NGINX router (an Ingress in the bundle),
 * through the HTTP API and the real worker. After each step every cluster of the wave is read
 * back from its API server: the VirtualService's route weights or the canary Ingress's
 * canary-weight, the stable and canary Deployments, the Services' EndpointSlices. The other
 * wave is untouched before its turn and fully promoted after; at the end the new version serves
 * 100 % everywhere and no canary object is left. Meanwhile every cluster's new-version share is
 * sampled every 200 ms: it never goes back, and wave 2 has a canary only after wave 1 has none.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { get, harness, meshRoutes, newVersionShare, RM, sampleShares, servicesFollowTracks, shareSteps, SRE, splitIn, webDeployment, webService, type Harness, type Json } from './progressive-support.ts';

const stack = inject('stack');
let h: Harness;

beforeAll(async () => {
  h = await harness(stack);
});
afterAll(async () => {
  await h?.stop();
});

const CLUSTERS = ['beijing', 'shenzhen', 'cloud-hk'];
const WAVES = [['beijing', 'shenzhen'], ['cloud-hk']];

describe.each(meshRoutes)('canary over two waves with the $router router', (tc) => {
  it('20 %, approval, 50 %, promote: each step read back from every cluster of the wave; wave 2 only after wave 1 is promoted; the canary objects gone', async () => {
    const ns = h.fresh(tc.router);
    const v1 = await h.pinned('v1');
    const v2 = await h.pinned('v2');
    const body = (img: string) => ({
      app: { name: 'web', namespace: ns, source: { manifests: [webDeployment(img), webService, tc.route] }, placement: { clusters: CLUSTERS }, distribution: 'duplicated' },
      waves: WAVES,
      onFailure: 'pause',
      rolloutTimeout: '2m',
    });
    const base = await h.finished(await h.start({ type: 'deploy', ...body(h.image('v1')) }));
    expect(base.phase, base.message).toBe('Healthy');
    for (const c of CLUSTERS) expect(await tc.read(h.direct.get(c)!, ns), c).toEqual(tc.want(null));

    const sampler = sampleShares(CLUSTERS, (c) => newVersionShare(h.direct.get(c)!, tc.router, ns, h.at(c, v2)));
    try {
      const id = await h.start({
        type: 'canary',
        ...body(h.image('v2')),
        canary: { trafficRouting: tc.trafficRouting, steps: [{ setWeight: 20 }, { approval: { name: 'go', roles: ['release-manager'] } }, { setWeight: 50 }, { pause: {} }] },
      });
      for (const [wave, clusters] of WAVES.entries()) {
        const others = CLUSTERS.filter((c) => !clusters.includes(c));
        for (const [weight, step] of [
          [20, 3],
          [50, 5],
        ] as const) {
          const s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentWave === wave && x.currentStep === step, `wave ${wave + 1} paused at ${weight} %`);
          for (const c of clusters) {
            expect(s.clusters[c]!.weight, c).toBe(weight);
            expect(await tc.read(h.direct.get(c)!, ns), `${c} at ${weight} %`).toEqual(tc.want(weight));
            // A traffic router keeps every stable replica until promotion; the canary follows the weight: ceil(4 * w %).
            expect((await splitIn(h.direct, ns, [c]))[c], c).toEqual({ stable: { image: h.at(c, v1), replicas: 4, ready: 4 }, canary: { image: h.at(c, v2), replicas: weight === 20 ? 1 : 2, ready: weight === 20 ? 1 : 2 } });
            await servicesFollowTracks(h.direct.get(c)!, c, ns);
          }
          // The other wave: before its turn as the baseline left it, after its promotion all v2 with the route as delivered.
          for (const c of others) {
            expect(await tc.read(h.direct.get(c)!, ns), `${c} (not this wave)`).toEqual(tc.want(null));
            expect((await splitIn(h.direct, ns, [c]))[c], c).toEqual({ stable: { image: h.at(c, wave === 0 ? v1 : v2), replicas: 4, ready: 4 }, canary: null });
          }
          const act = weight === 20 ? await h.act(id, RM, { action: 'approve', gate: 'go' }) : await h.act(id, SRE, { action: 'promote' });
          expect(act.status, JSON.stringify(act.body)).toBe(200);
        }
      }
      const final = await h.finished(id);
      expect(final.phase, final.message).toBe('Healthy');
      expect(CLUSTERS.map((c) => final.clusters[c]!.weight)).toEqual([100, 100, 100]);
      for (const c of CLUSTERS) {
        const k = h.direct.get(c)!;
        const names = async (p: string) => ((await get(k, p))!.items as Json[]).map((x) => x.metadata.name).sort();
        expect(
          {
            route: await tc.read(h.direct.get(c)!, ns),
            web: (await splitIn(h.direct, ns, [c]))[c],
            services: await names(`/api/v1/namespaces/${ns}/services`),
            ingresses: await names(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`),
            images: [...new Set((await k.core.listNamespacedPod({ namespace: ns })).items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.spec!.containers[0]!.image))],
          },
          c,
        ).toEqual({
          route: tc.want(null),
          web: { stable: { image: h.at(c, v2), replicas: 4, ready: 4 }, canary: null },
          services: ['web'],
          ingresses: tc.router === 'nginx' ? ['web'] : [],
          images: [h.at(c, v2)],
        });
      }
    } finally {
      await sampler.stop();
    }
    // Over the whole run, every cluster's new-version share only went up: 0, 20, 50, 100.
    expect(shareSteps(sampler.samples)).toEqual({ beijing: [0, 20, 50, 100], shenzhen: [0, 20, 50, 100], 'cloud-hk': [0, 20, 50, 100] });
    // Wave 2 had a canary only after the last look that saw one in wave 1.
    const lastWave1 = Math.max(...sampler.samples.filter((s) => s.canary && WAVES[0]!.includes(s.cluster)).map((s) => s.t));
    const firstWave2 = Math.min(...sampler.samples.filter((s) => s.canary && s.cluster === 'cloud-hk').map((s) => s.t));
    expect(firstWave2).toBeGreaterThan(lastWave1);
  });
});
