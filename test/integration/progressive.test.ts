/**
 * A canary end to end on the real stack (issue 8, "It must show"), through the HTTP API and
 * the real worker: 20 %, an approval gate, 50 %, a pause, then full, over two waves, with the
 * default router (replica ratio). After each step the stable and canary Deployments of every
 * cluster of the wave are read back from its API server (image, replicas, ready); wave 2 is
 * untouched until wave 1 is promoted; at the end every cluster runs the new image at its planned
 * replicas and no web-canary is left. The gate refuses ci and viewer tokens, a role it does not
 * name (403), and a gate that is not waiting (409).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CI, harness, RM, RM2, SRE, splitIn, VIEWER, get, type Harness } from './progressive-support.ts';

const stack = inject('stack');
let h: Harness;

beforeAll(async () => {
  h = await harness(stack);
});
afterAll(async () => {
  await h?.stop();
});

const CLUSTERS = ['beijing', 'shenzhen', 'cloud-hk'];
const WAVES = [['beijing'], ['shenzhen', 'cloud-hk']];

const app = (ns: string, img: string) => ({
  name: 'web',
  namespace: ns,
  image: img,
  // 8 over capacities 2:1:1: beijing 4, shenzhen 2, cloud-hk 2.
  replicas: 8,
  placement: { clusters: CLUSTERS },
});

describe('canary over two waves, replica ratio, through the API', () => {
  it('20 %, approval, 50 %, pause, promote: each step read back from every cluster of the wave; wave 2 untouched until wave 1 is promoted', async () => {
    const ns = h.fresh('canary');
    const v1 = await h.pinned('v1');
    const v2 = await h.pinned('v2');
    const base = await h.finished(await h.start({ type: 'deploy', app: app(ns, h.image('v1')), waves: WAVES, onFailure: 'pause' }));
    expect(base.phase, base.message).toBe('Healthy');
    const generation = async (cluster: string) => (await get(h.clients.get(cluster)!, `/apis/apps/v1/namespaces/${ns}/deployments/web`))?.metadata.generation as number;
    const wave2Before = { shenzhen: await generation('shenzhen'), 'cloud-hk': await generation('cloud-hk') };

    const id = await h.start({
      type: 'canary',
      app: app(ns, h.image('v2')),
      waves: WAVES,
      onFailure: 'pause',
      rolloutTimeout: '2m',
      canary: { steps: [{ setWeight: 20 }, { approval: { name: 'go', roles: ['release-manager'] } }, { setWeight: 50 }, { pause: {} }] },
    });

    // --- wave 1 at 20 %, waiting at the gate.
    let s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentWave === 0 && x.currentStep === 3, 'wave 1 at the gate');
    expect(s.steps).toEqual(['replicate', 'canary', 'setWeight 20', 'approval go', 'setWeight 50', 'pause', 'promote', 'prune']);
    expect(s.clusters.beijing!.weight).toBe(20);
    expect(s.gates).toEqual([expect.objectContaining({ name: 'go', wave: 0, state: 'Waiting', roles: ['release-manager'], votes: [] })]);
    // 4 replicas at 20 %: 3 stable (v1) + 1 canary (v2), all ready; wave 2 as the baseline left it.
    expect(await splitIn(h.clients, ns, CLUSTERS)).toEqual(h.mirrored({
      beijing: { stable: { image: v1, replicas: 3, ready: 3 }, canary: { image: v2, replicas: 1, ready: 1 } },
      shenzhen: { stable: { image: v1, replicas: 2, ready: 2 }, canary: null },
      'cloud-hk': { stable: { image: v1, replicas: 2, ready: 2 }, canary: null },
    }));

    // --- who may decide the gate.
    const approve = { action: 'approve', gate: 'go', comment: 'dashboards green' };
    const refused = {
      ci: await h.act(id, CI, approve),
      viewer: await h.act(id, VIEWER, approve),
      sre: await h.act(id, SRE, approve), // sre may decide gates, but this one names release-manager only
      wrongGate: await h.act(id, RM, { action: 'approve', gate: 'nope' }),
      promoteAtGate: await h.act(id, SRE, { action: 'promote' }),
      rmPromote: await h.act(id, RM, { action: 'promote' }), // promote is an SRE action
    };
    expect(Object.fromEntries(Object.entries(refused).map(([k, r]) => [k, r.status]))).toEqual({ ci: 403, viewer: 403, sre: 403, wrongGate: 409, promoteAtGate: 409, rmPromote: 403 });
    expect(refused.sre.body.message).toMatch(/gate "go" is decided by release-manager; you are sre/);
    expect(refused.wrongGate.body.message).toMatch(/gate "nope" is not waiting/);
    // Nothing moved meanwhile.
    expect((await h.status(id)).gates?.[0]?.votes).toEqual([]);
    const ok = await h.act(id, RM, approve);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);

    // --- wave 1 at 50 %, paused until promote; the gate is closed now: 409.
    s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentWave === 0 && x.currentStep === 5, 'wave 1 at 50 %, paused');
    expect(s.clusters.beijing!.weight).toBe(50);
    expect(s.gates).toEqual([expect.objectContaining({ name: 'go', state: 'Approved', votes: [expect.objectContaining({ who: 'bob', role: 'release-manager', decision: 'approve', comment: 'dashboards green' })] })]);
    expect((await h.act(id, RM2, approve)).status).toBe(409);
    expect(await splitIn(h.clients, ns, CLUSTERS)).toEqual(h.mirrored({
      beijing: { stable: { image: v1, replicas: 2, ready: 2 }, canary: { image: v2, replicas: 2, ready: 2 } },
      shenzhen: { stable: { image: v1, replicas: 2, ready: 2 }, canary: null },
      'cloud-hk': { stable: { image: v1, replicas: 2, ready: 2 }, canary: null },
    }));
    expect({ shenzhen: await generation('shenzhen'), 'cloud-hk': await generation('cloud-hk') }).toEqual(wave2Before);
    expect((await h.act(id, SRE, { action: 'promote', comment: 'wave 1 looks good' })).status).toBe(200);

    // --- wave 1 promoted (v2 is its stable version, the canary gone); wave 2 at 20 % at its own gate.
    s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentWave === 1 && x.currentStep === 3, 'wave 2 at the gate');
    expect(s.clusters.beijing).toMatchObject({ phase: 'Healthy', weight: 100 });
    expect(s.clusters.shenzhen!.weight).toBe(20);
    // 2 replicas at 20 %: 1 + 1 (the canary is at least one pod, the stable too).
    expect(await splitIn(h.clients, ns, CLUSTERS)).toEqual(h.mirrored({
      beijing: { stable: { image: v2, replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: v1, replicas: 1, ready: 1 }, canary: { image: v2, replicas: 1, ready: 1 } },
      'cloud-hk': { stable: { image: v1, replicas: 1, ready: 1 }, canary: { image: v2, replicas: 1, ready: 1 } },
    }));
    expect((await h.act(id, RM2, approve)).status).toBe(200);
    s = await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentWave === 1 && x.currentStep === 5, 'wave 2 at 50 %, paused');
    expect([s.clusters.shenzhen!.weight, s.clusters['cloud-hk']!.weight]).toEqual([50, 50]);
    const half = await splitIn(h.clients, ns, ['shenzhen', 'cloud-hk']);
    for (const [n, c] of Object.entries(half)) expect(c).toEqual({ stable: { image: h.at(n, v1), replicas: 1, ready: 1 }, canary: { image: h.at(n, v2), replicas: 1, ready: 1 } });
    expect((await h.act(id, SRE, { action: 'promote' })).status).toBe(200);

    const final = await h.finished(id);
    expect(final.phase, final.message).toBe('Healthy');
    expect(await splitIn(h.clients, ns, CLUSTERS)).toEqual(h.mirrored({
      beijing: { stable: { image: v2, replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: v2, replicas: 2, ready: 2 }, canary: null },
      'cloud-hk': { stable: { image: v2, replicas: 2, ready: 2 }, canary: null },
    }));
    // No pod of the old version left anywhere; the user's Service still selects the app's pods.
    for (const c of CLUSTERS) {
      const pods = await h.clients.get(c)!.core.listNamespacedPod({ namespace: ns });
      expect(new Set(pods.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.spec!.containers[0]!.image)), c).toEqual(new Set([h.at(c, v2)]));
    }
    expect(final.gates?.map((g) => [g.wave, g.state, g.votes.map((v) => v.who)])).toEqual([
      [0, 'Approved', ['bob']],
      [1, 'Approved', ['dan']],
    ]);
    expect(final.audit.map((a) => [a.who, a.action])).toEqual(expect.arrayContaining([['bob', 'approve'], ['alice', 'promote'], ['dan', 'approve']]));
  });
});
