/**
 * Blue-green on the real stack through the HTTP API and the real worker, read back from each
 * cluster's API server: before promotion the preview Service's EndpointSlices list the new pods
 * while the active Service's list only the old ones (its selector pinned to the old pods'
 * pod-template-hash); on promote the active Service's selector switches to the preview's pods
 * (the old version still running); after scaleDownDelay the old version is gone and the preview
 * objects too. An abort before the switch puts the active Service's own selector back and
 * deletes the preview.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { deploymentOf, endpointIps, get, harness, podsOf, SRE, until, type Harness } from './progressive-support.ts';

const stack = inject('stack');
let h: Harness;

beforeAll(async () => {
  h = await harness(stack);
});
afterAll(async () => {
  await h?.stop();
});

const CLUSTERS = ['beijing', 'shenzhen'];
const app = (ns: string, img: string) => ({ name: 'web', namespace: ns, image: img, replicas: 3, distribution: 'duplicated', placement: { clusters: CLUSTERS } });
const OWN = { 'app.kubernetes.io/name': 'web' };

const selectorOf = async (cluster: string, ns: string, name: string) => (await get(h.clients.get(cluster)!, `/api/v1/namespaces/${ns}/services/${name}`))?.spec.selector as Record<string, string> | undefined;
/** Ready pods of the application running `image`, their IPs sorted. */
const readyIps = async (cluster: string, ns: string, image: string) =>
  (await podsOf(h.clients.get(cluster)!, ns, 'app.kubernetes.io/name=web')).filter((p) => p.ready && p.image === image).map((p) => p.ip!).sort();
/** Until the Service's EndpointSlices list exactly `ips`. */
const lists = (cluster: string, ns: string, service: string, ips: string[]) =>
  until(() => endpointIps(h.clients.get(cluster)!, ns, service), (got) => JSON.stringify(got) === JSON.stringify(ips), `${cluster}: Service ${service} lists ${ips.join(', ')}`, 30_000);

describe('blue-green through the API', () => {
  it('preview served by its Service before promotion, the active Service switched on promote, the old version gone after scaleDownDelay; abort before the switch restores the selector', async () => {
    const ns = h.fresh('bg');
    const [v1, v2, v3] = [await h.pinned('v1'), await h.pinned('v2'), await h.pinned('v3')];
    const base = await h.finished(await h.start({ type: 'deploy', app: app(ns, h.image('v1')), waves: [CLUSTERS], onFailure: 'pause' }));
    expect(base.phase, base.message).toBe('Healthy');

    const id = await h.start({ type: 'blueGreen', app: app(ns, h.image('v2')), waves: [CLUSTERS], onFailure: 'pause', rolloutTimeout: '2m', blueGreen: { autoPromotion: false, scaleDownDelay: '15s' } });
    const paused = await h.waitFor(id, (x) => x.phase === 'Paused', 'waiting for promote');
    expect(paused.steps).toEqual(['replicate', 'preview', 'pause', 'switch', 'finish after 15s', 'prune']);
    for (const c of CLUSTERS) {
      expect(await deploymentOf(h.clients.get(c)!, ns, 'web-preview'), c).toEqual({ image: h.at(c, v2), replicas: 3, ready: 3 });
      expect(await deploymentOf(h.clients.get(c)!, ns, 'web'), c).toEqual({ image: h.at(c, v1), replicas: 3, ready: 3 });
      // The active Service pinned to the old pods' ReplicaSet; the preview Service on the preview track.
      const oldPods = await h.clients.get(c)!.core.listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/name=web' });
      const oldHash = oldPods.items.find((p) => p.spec!.containers[0]!.image === h.at(c, v1))!.metadata!.labels!['pod-template-hash'];
      expect(await selectorOf(c, ns, 'web'), c).toEqual({ ...OWN, 'pod-template-hash': oldHash });
      expect(await selectorOf(c, ns, 'web-preview'), c).toEqual({ ...OWN, 'flotilla.dev/track': 'preview' });
      const newIps = await readyIps(c, ns, h.at(c, v2));
      const oldIps = await readyIps(c, ns, h.at(c, v1));
      expect([newIps.length, oldIps.length]).toEqual([3, 3]);
      await lists(c, ns, 'web-preview', newIps);
      await lists(c, ns, 'web', oldIps);
    }

    expect((await h.act(id, SRE, { action: 'promote', comment: 'preview checked' })).status).toBe(200);
    // Switched in both clusters: the active Service selects the preview's pods while the old version still runs.
    await until(() => Promise.all(CLUSTERS.map((c) => selectorOf(c, ns, 'web'))), (sels) => sels.every((sel) => sel?.['flotilla.dev/track'] === 'preview'), 'web switched in every cluster', 60_000);
    for (const c of CLUSTERS) expect(await readyIps(c, ns, h.at(c, v1)), `${c}: the old version still runs after the switch`).toHaveLength(3);
    for (const c of CLUSTERS) await lists(c, ns, 'web', await readyIps(c, ns, h.at(c, v2)));
    const done = await h.finished(id);
    expect(done.phase, done.message).toBe('Healthy');
    for (const c of CLUSTERS) {
      expect(await deploymentOf(h.clients.get(c)!, ns, 'web'), c).toEqual({ image: h.at(c, v2), replicas: 3, ready: 3 });
      expect(await deploymentOf(h.clients.get(c)!, ns, 'web-preview'), c).toBeNull();
      expect(await get(h.clients.get(c)!, `/api/v1/namespaces/${ns}/services/web-preview`), c).toBeNull();
      expect(await selectorOf(c, ns, 'web'), c).toEqual(OWN);
      const pods = await until(() => podsOf(h.clients.get(c)!, ns, 'app.kubernetes.io/name=web'), (p) => p.every((x) => x.image === h.at(c, v2)), `${c}: the old version gone`, 60_000);
      expect(pods.filter((p) => p.ready)).toHaveLength(3);
      await lists(c, ns, 'web', await readyIps(c, ns, h.at(c, v2)));
    }

    // Abort before the switch: the selector back on its own, the preview deleted, v2 still serving.
    const next = await h.start({ type: 'blueGreen', app: app(ns, h.image('v3')), waves: [CLUSTERS], onFailure: 'pause', rolloutTimeout: '2m', blueGreen: { autoPromotion: false } });
    await h.waitFor(next, (x) => x.phase === 'Paused', 'the second preview waiting');
    for (const c of CLUSTERS) {
      expect((await deploymentOf(h.clients.get(c)!, ns, 'web-preview'))?.image, c).toBe(h.at(c, v3));
      expect((await selectorOf(c, ns, 'web'))?.['pod-template-hash'], c).toBeDefined();
    }
    expect((await h.act(next, SRE, { action: 'abort', comment: 'preview looks wrong' })).status).toBe(200);
    const aborted = await h.finished(next);
    expect(aborted.phase, aborted.message).toBe('Aborted');
    for (const c of CLUSTERS) {
      expect(await selectorOf(c, ns, 'web'), c).toEqual(OWN);
      expect(await deploymentOf(h.clients.get(c)!, ns, 'web'), c).toEqual({ image: h.at(c, v2), replicas: 3, ready: 3 });
      expect(await deploymentOf(h.clients.get(c)!, ns, 'web-preview'), c).toBeNull();
      expect(await get(h.clients.get(c)!, `/api/v1/namespaces/${ns}/services/web-preview`), c).toBeNull();
      await until(() => podsOf(h.clients.get(c)!, ns, 'app.kubernetes.io/name=web'), (p) => p.length === 3 && p.every((x) => x.image === h.at(c, v2)), `${c}: only v2 pods`, 60_000);
      await lists(c, ns, 'web', await readyIps(c, ns, h.at(c, v2)));
    }
  });
});
