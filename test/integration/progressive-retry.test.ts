/**
 * `retry` after an abort (issue 8), on the real stack through the HTTP API and the real worker:
 * a canary over two waves is aborted at wave 2's gate, after wave 1 was promoted and wave 2 had
 * reached 50 %. The abort puts both waves back on the stable version (read back from each API
 * server). `retry` of the aborted delivery starts a new delivery (202, retryOf) that resumes there:
 * wave 1 is put back on the new version without its gates, wave 2's canary comes back at 50 %
 * (not 25 %) and waits at the gate it stopped at; approved, it ends Healthy on the same digest.
 * A retry of a delivery that did not end Aborted (DeliveryFinished), or no longer the application's
 * last (NotResumable), is a 409.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CI, harness, RM, SRE, splitIn, type Harness } from './progressive-support.ts';

const stack = inject('stack');
let h: Harness;

beforeAll(async () => {
  h = await harness(stack);
});
afterAll(async () => {
  await h?.stop();
});

const WAVES = [['beijing'], ['shenzhen']];
const app = (ns: string, img: string) => ({ name: 'web', namespace: ns, image: img, replicas: 6, placement: { clusters: ['beijing', 'shenzhen'] } });

describe('retry after an abort', () => {
  it('resumes at the aborted step: wave 1 put back without its gates, wave 2 back at 50 % at the same gate, then Healthy', async () => {
    const ns = h.fresh('retry');
    const v1 = await h.pinned('v1');
    const v2 = await h.pinned('v2');
    const base = await h.finished(await h.start({ type: 'deploy', app: app(ns, h.image('v1')), waves: WAVES, onFailure: 'pause' }));
    expect(base.phase, base.message).toBe('Healthy');

    const canary = { steps: [{ setWeight: 25 }, { approval: { name: 'qa', roles: ['release-manager'] } }, { setWeight: 50 }, { approval: { name: 'go', roles: ['release-manager'] } }] };
    const id = await h.start({ type: 'canary', app: app(ns, h.image('v2')), waves: WAVES, onFailure: 'pause', rolloutTimeout: '2m', canary });
    for (const gate of ['qa', 'go']) {
      await h.waitFor(id, (x) => (x.gates ?? []).some((g) => g.wave === 0 && g.name === gate && g.state === 'Waiting'), `wave 1 at gate ${gate}`);
      expect((await h.act(id, RM, { action: 'approve', gate })).status).toBe(200);
    }
    await h.waitFor(id, (x) => (x.gates ?? []).some((g) => g.wave === 1 && g.name === 'qa' && g.state === 'Waiting'), 'wave 2 at gate qa');
    expect((await h.act(id, RM, { action: 'approve', gate: 'qa' })).status).toBe(200);
    await h.waitFor(id, (x) => (x.gates ?? []).some((g) => g.wave === 1 && g.name === 'go' && g.state === 'Waiting'), 'wave 2 at gate go');
    // Wave 2 at 50 %: 1 stable + 1 canary pod in shenzhen (6 replicas over capacities 2:1); wave 1 promoted.
    expect(await splitIn(h.clients, ns, ['beijing', 'shenzhen'])).toEqual({
      beijing: { stable: { image: h.at('beijing', v2), replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: h.at('shenzhen', v1), replicas: 1, ready: 1 }, canary: { image: h.at('shenzhen', v2), replicas: 1, ready: 1 } },
    });

    // A retry applies to a finished, Aborted delivery only.
    const early = await h.act(id, SRE, { action: 'retry' });
    expect(early.status).toBe(409);
    expect((await h.act(id, SRE, { action: 'abort', comment: 'latency alert in shenzhen' })).status).toBe(200);
    const aborted = await h.finished(id);
    expect(aborted.phase, aborted.message).toBe('Aborted');
    expect(aborted.steps).toEqual(['replicate', 'canary', 'setWeight 25', 'approval qa', 'setWeight 50', 'approval go', 'promote', 'prune']);
    expect(aborted.resumeAt).toEqual({ wave: 1, step: 5, label: 'approval go' });
    expect(await splitIn(h.clients, ns, ['beijing', 'shenzhen'])).toEqual({
      beijing: { stable: { image: h.at('beijing', v1), replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: h.at('shenzhen', v1), replicas: 2, ready: 2 }, canary: null },
    });

    // ci may not retry (an SRE action); an SRE's retry starts the resumed delivery.
    expect((await h.act(id, CI, { action: 'retry' })).status).toBe(403);
    const res = await h.act(id, SRE, { action: 'retry', comment: 'alert was a false positive' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ retryOf: id, status: `/v1/deliveries/${res.body.id}` });
    const retry = res.body.id as string;

    const s = await h.waitFor(retry, (x) => x.currentWave === 1 && (x.gates ?? []).some((g) => g.state === 'Waiting'), 'the retry at wave 2 gate go');
    expect(s.retryOf).toBe(id);
    // No gate of wave 1 asked again; wave 2 waits where it stopped, its canary at 50 % as it stood.
    expect((s.gates ?? []).map((g) => [g.wave, g.name, g.state])).toEqual([[1, 'go', 'Waiting']]);
    expect(s.clusters.shenzhen).toMatchObject({ weight: 50, step: 5 });
    expect(await splitIn(h.clients, ns, ['beijing', 'shenzhen'])).toEqual({
      beijing: { stable: { image: h.at('beijing', v2), replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: h.at('shenzhen', v1), replicas: 1, ready: 1 }, canary: { image: h.at('shenzhen', v2), replicas: 1, ready: 1 } },
    });
    // The aborted delivery is no longer the application's last: a second retry of it is refused.
    const twice = await h.act(id, SRE, { action: 'retry' });
    expect(twice).toMatchObject({ status: 409, body: { error: 'NotResumable' } });

    expect((await h.act(retry, RM, { action: 'approve', gate: 'go' })).status).toBe(200);
    const done = await h.finished(retry);
    expect(done.phase, done.message).toBe('Healthy');
    expect(done.digest).toBe(aborted.digest);
    expect(await splitIn(h.clients, ns, ['beijing', 'shenzhen'])).toEqual({
      beijing: { stable: { image: h.at('beijing', v2), replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: h.at('shenzhen', v2), replicas: 2, ready: 2 }, canary: null },
    });
    // A Healthy delivery is not retried: rollback applies to it.
    const healthy = await h.act(retry, SRE, { action: 'retry' });
    expect(healthy).toMatchObject({ status: 409, body: { error: 'DeliveryFinished' } });
  });
});
