/**
 * Canaries that go wrong, on the real stack through the HTTP API and the real worker:
 *  - an analysis against the stack's real Prometheus: wave 1's canary sees no errors and is
 *    promoted, wave 2's sees a 50 % error rate (the stack's metrics target, setTraffic for the
 *    canary's version in that cluster) and the delivery aborts: phase Aborted, both touched waves
 *    back on the stable image at their replicas, no canary left;
 *  - a version that turns unready only after its canary reached 50 % (the stack's behaviour
 *    table, "unready-after" on its image): the next weight cannot get its canary ready, the step
 *    fails (RolloutTimeout), the delivery waits for an SRE as onFailure "pause" says, and an abort
 *    restores the stable version.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clearBehaviour, clearTraffic, setBehaviour, setTraffic, stackOptions } from '../../stack/index.ts';
import { harness, podsOf, SRE, splitIn, until, type Harness } from './progressive-support.ts';

const stack = inject('stack');
const opts = stackOptions(stack);
let h: Harness;
const trafficApps: string[] = [];

beforeAll(async () => {
  h = await harness(stack);
});
afterAll(async () => {
  for (const app of trafficApps) await clearTraffic({ app }, opts).catch(() => undefined);
  await clearBehaviour({ image: 'demo/web:v3' }, opts).catch(() => undefined);
  await h?.stop();
});

const WAVES = [['beijing'], ['shenzhen']];
const app = (ns: string, img: string) => ({ name: 'web', namespace: ns, image: img, replicas: 4, distribution: 'duplicated', placement: { clusters: ['beijing', 'shenzhen'] } });

describe('analysis against the stack Prometheus', () => {
  it('a high error rate for the canary version in wave 2 aborts: both touched waves back on the stable version', async () => {
    const ns = h.fresh('analysis');
    const appName = `${ns}/web`;
    trafficApps.push(appName);
    // The canary's version is healthy in beijing and failing in shenzhen; set first, so the series are older than the rate window.
    await setTraffic({ app: appName, version: 'v2', cluster: 'beijing', rps: 50, errorRate: 0 }, opts);
    await setTraffic({ app: appName, version: 'v2', cluster: 'shenzhen', rps: 50, errorRate: 0.5 }, opts);
    const v1 = await h.pinned('v1');
    const base = await h.finished(await h.start({ type: 'deploy', app: app(ns, h.image('v1')), waves: WAVES, onFailure: 'pause' }));
    expect(base.phase, base.message).toBe('Healthy');

    const sel = 'app="{{namespace}}/{{app}}",version="{{version}}",cluster="{{cluster}}"';
    const id = await h.start({
      type: 'canary',
      app: app(ns, h.image('v2')),
      waves: WAVES,
      onFailure: 'pause',
      rolloutTimeout: '2m',
      canary: {
        steps: [
          { setWeight: 25 },
          {
            analysis: [
              {
                name: 'error-rate',
                provider: { prometheus: { query: `sum(rate(http_requests_total{${sel},code=~"5.."}[5s])) / sum(rate(http_requests_total{${sel}}[5s]))` } },
                interval: '1s',
                count: 3,
                successCondition: 'result < 0.05',
                failureCondition: 'result >= 0.2',
                failureLimit: 0,
              },
            ],
          },
        ],
      },
    });
    // Wave 2's canary stands at 25 % before its analysis fails: the abort must undo it and the promoted wave 1.
    const atCanary = await h.waitFor(id, (x) => x.currentWave === 1 && x.clusters.shenzhen?.weight === 25, 'wave 2 at 25 %');
    expect(atCanary.clusters.beijing).toMatchObject({ phase: 'Healthy', weight: 100 });
    const final = await h.finished(id);
    expect(final.phase, final.message).toBe('Aborted');
    expect(final.message).toMatch(/analysis of wave 2 failed: error-rate: Failed/);
    expect(final.audit.filter((a) => a.who === 'flotilla').map((a) => a.action)).toEqual(['analysis:Successful', 'analysis:Failed']);
    expect(await splitIn(h.clients, ns, ['beijing', 'shenzhen'])).toEqual(h.mirrored({
      beijing: { stable: { image: v1, replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: v1, replicas: 4, ready: 4 }, canary: null },
    }));
    for (const c of ['beijing', 'shenzhen']) {
      const pods = await until(() => podsOf(h.clients.get(c)!, ns, 'app.kubernetes.io/name=web'), (p) => p.every((x) => x.image === h.at(c, v1)), `${c}: only v1 pods`, 60_000);
      expect(pods.filter((p) => p.ready)).toHaveLength(4);
    }
  });
});

describe('a version that turns unready after its canary reached 50 %', () => {
  it('detected at the next weight (the canary never gets ready), paused for an SRE as onFailure says, the abort restores the stable version', async () => {
    const ns = h.fresh('unready');
    const v1 = await h.pinned('v1');
    const v3 = await h.pinned('v3');
    const base = await h.finished(await h.start({ type: 'deploy', app: app(ns, h.image('v1')), waves: WAVES, onFailure: 'pause' }));
    expect(base.phase, base.message).toBe('Healthy');
    // Only v3's pods misbehave: Ready, then not Ready 15 s later, for good.
    await setBehaviour({ image: h.image('v3'), behaviour: 'unready-after=15s' }, opts);

    const id = await h.start({
      type: 'canary',
      app: app(ns, h.image('v3')),
      waves: WAVES,
      onFailure: 'pause',
      rolloutTimeout: '20s',
      canary: { steps: [{ setWeight: 25 }, { setWeight: 50 }, { pause: { duration: '25s' } }, { setWeight: 75 }] },
    });
    // It reached 50 %: 2 of 4 canary pods, ready.
    const at50 = await h.waitFor(id, (x) => x.currentStep === 4 && x.clusters.beijing?.weight === 50, 'paused at 50 %');
    expect(at50.phase).toBe('Paused');
    expect((await splitIn(h.clients, ns, ['beijing'])).beijing).toEqual({ stable: { image: h.at('beijing', v1), replicas: 2, ready: 2 }, canary: { image: h.at('beijing', v3), replicas: 2, ready: 2 } });
    // Then its pods turn unready, read from the API server.
    await until(async () => (await splitIn(h.clients, ns, ['beijing'])).beijing, (b) => b?.canary?.ready === 0, 'the canary pods unready', 60_000);

    const failed = await h.waitFor(id, (x) => x.phase === 'NeedsAttention', 'the failure noticed', 120_000);
    expect(failed.clusters.beijing!.failureType, failed.clusters.beijing!.message).toBe('RolloutTimeout');
    expect(failed.clusters.beijing!.message).toMatch(/web-canary/);
    expect(failed.currentStep).toBe(5); // setWeight 75 (after replicate, canary, 25, 50, pause)
    expect(failed.clusters.shenzhen!.phase).toBe('Pending'); // wave 2 never touched
    expect((await splitIn(h.clients, ns, ['shenzhen'])).shenzhen).toEqual({ stable: { image: h.at('shenzhen', v1), replicas: 4, ready: 4 }, canary: null });

    expect((await h.act(id, SRE, { action: 'abort', comment: 'v3 goes unready' })).status).toBe(200);
    const final = await h.finished(id);
    expect(final.phase, final.message).toBe('Aborted');
    expect(await splitIn(h.clients, ns, ['beijing', 'shenzhen'])).toEqual(h.mirrored({
      beijing: { stable: { image: v1, replicas: 4, ready: 4 }, canary: null },
      shenzhen: { stable: { image: v1, replicas: 4, ready: 4 }, canary: null },
    }));
    await until(() => podsOf(h.clients.get('beijing')!, ns, 'app.kubernetes.io/name=web'), (p) => p.length === 4 && p.every((x) => x.image === h.at('beijing', v1) && x.ready), 'beijing: only ready v1 pods', 60_000);
  });
});

describe('a canary that turned unready during its last pause', () => {
  // The promotion reads the canary first: one that turned unready during the pause fails the wave (RolloutFailed),
  // which waits for an SRE (onFailure pause) with the stable version untouched. (Before 2026-11-25 it was promoted.)
  it('is not promoted: the unready canary is noticed at the promotion and the stable version stays', async () => {
    const ns = h.fresh('unready-pause');
    const v1 = await h.pinned('v1');
    const body = (img: string) => ({ app: { name: 'web', namespace: ns, image: img, replicas: 4, placement: { clusters: ['beijing'] } }, onFailure: 'pause', rolloutTimeout: '20s' });
    const base = await h.finished(await h.start({ type: 'deploy', ...body(h.image('v1')) }));
    expect(base.phase, base.message).toBe('Healthy');
    await setBehaviour({ image: h.image('v3'), behaviour: 'unready-after=15s' }, opts);
    const id = await h.start({ type: 'canary', ...body(h.image('v3')), canary: { steps: [{ setWeight: 50 }, { pause: { duration: '25s' } }] } });
    await h.waitFor(id, (x) => x.phase === 'Paused' && x.clusters.beijing?.weight === 50, 'paused at 50 %');
    // The canary turns unready during the pause, read from the API server.
    await until(async () => (await splitIn(h.clients, ns, ['beijing'])).beijing, (b) => b?.canary?.ready === 0, 'the canary pods unready', 60_000);
    const s = await h.waitFor(id, (x) => x.phase === 'NeedsAttention' || ['Healthy', 'Degraded', 'Aborted', 'RolledBack'].includes(x.phase), 'the promotion decided', 120_000);
    const web = (await splitIn(h.clients, ns, ['beijing'])).beijing;
    expect({ phase: s.phase, stable: web?.stable?.image }).toEqual({ phase: 'NeedsAttention', stable: h.at('beijing', v1) });
    expect((await h.act(id, SRE, { action: 'abort' })).status).toBe(200);
    expect((await h.finished(id)).phase).toBe('Aborted');
  });
});
