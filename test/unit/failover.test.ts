/**
 * The failover calculators: health from probe results (thresholds, cooldown, flapping) and the spec
 * an application is moved with (placement respected, replicas divided over what is left) and moved
 * back with.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AppSpecSchema,
  ClusterActionSchema,
  failbackSpec,
  failoverPlan,
  FailoverSettingsSchema,
  InventorySchema,
  newHealth,
  observeProbe,
  probeTiming,
  type ClusterHealthState,
  type ProbeTiming,
} from '../../model/index.ts';
import { fleet } from '../support/fleet.ts';
import { openApiDocument } from '../../api/openapi.ts';
import { clusterRouteTable } from '../../api/clusters.ts';

const t: ProbeTiming = { intervalMs: 5000, timeoutMs: 2000, failureThreshold: 3, successThreshold: 3, cooldownMs: 30_000 };

/** Runs probes 5 s apart from t=0; returns each health and the events. */
function run(results: boolean[], timing = t, from: ClusterHealthState = newHealth('beijing', 0)) {
  let s = from;
  const healths: string[] = [];
  const events: string[] = [];
  results.forEach((ok, i) => {
    const r = observeProbe(s, { ok, at: (i + 1) * 5000 }, timing);
    s = r.state;
    healths.push(s.health);
    if (r.event) events.push(`${i}:${r.event}`);
  });
  return { s, healths, events };
}

describe('health from probes', () => {
  it('Unknown -> Healthy at the first answer; 3 failures in a row make it Unhealthy once', () => {
    const r = run([true, false, false, false, false, false]);
    expect(r.healths).toEqual(['Healthy', 'Healthy', 'Healthy', 'Unhealthy', 'Unhealthy', 'Unhealthy']);
    expect(r.events).toEqual(['3:failed']);
    expect(r.s.consecutiveFailures).toBe(5);
  });

  it('a cluster down from the start fails too (an Unknown cluster that never answers)', () => {
    expect(run([false, false, false]).events).toEqual(['2:failed']);
  });

  it('flapping below the threshold never changes anything', () => {
    const r = run([true, false, false, true, false, false, true, false, true, false, false, true]);
    expect(new Set(r.healths)).toEqual(new Set(['Healthy']));
    expect(r.events).toEqual([]);
  });

  it('recovery: 3 successes start the cooldown; Healthy once it passed without a failure; a failure meanwhile goes back to Unhealthy', () => {
    const down = run([true, false, false, false]).s;
    // 3 answers -> Recovering; cooldown 30 s at 5 s a probe -> Healthy 6 probes later.
    const r = run([true, true, true, true, true, true, true, true, true], t, down);
    expect(r.healths).toEqual(['Unhealthy', 'Unhealthy', 'Recovering', 'Recovering', 'Recovering', 'Recovering', 'Recovering', 'Recovering', 'Healthy']);
    expect(r.events).toEqual(['8:recovered']);
    const flap = run([true, true, true, true, false, true, true, true], t, down);
    expect(flap.healths).toEqual(['Unhealthy', 'Unhealthy', 'Recovering', 'Recovering', 'Unhealthy', 'Unhealthy', 'Unhealthy', 'Recovering']);
    expect(flap.events).toEqual([]); // no second "failed": it never recovered
  });

  it('a zero cooldown is Healthy at the successThreshold-th answer', () => {
    const down = run([true, false, false, false]).s;
    expect(run([true, true, true], { ...t, cooldownMs: 0 }, down).events).toEqual(['2:recovered']);
  });

  it('property: at most one failed event per outage, and failed and recovered alternate', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 200 }), (probes) => {
        const kinds = run(probes).events.map((e) => e.split(':')[1]);
        kinds.forEach((k, i) => expect(k).toBe(i % 2 === 0 ? 'failed' : 'recovered'));
      }),
    );
  });
});

describe('settings', () => {
  it('defaults: off, 5 s probes with a 2 s bound, thresholds 3 and 3, 30 s cooldown, automatic failback', () => {
    const s = FailoverSettingsSchema.parse({});
    expect(s).toMatchObject({ enabled: false, failback: 'automatic', probeInterval: '5s', probeTimeout: '2s', failureThreshold: 3, successThreshold: 3, cooldown: '30s' });
    expect(probeTiming(s)).toEqual({ intervalMs: 5000, timeoutMs: 2000, failureThreshold: 3, successThreshold: 3, cooldownMs: 30_000 });
  });

  it('refuses bad settings with the field named, in the inventory', () => {
    const r = InventorySchema.safeParse({ clusters: [{ name: 'a', region: 'r', provider: 'p', kubeconfig: { path: '/k' } }], failover: { failureThreshold: 0, failback: 'sometimes', probeInterval: '5' } });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.')).sort()).toEqual(['failover.failback', 'failover.failureThreshold', 'failover.probeInterval']);
  });

  it('cluster actions: the four verbs only', () => {
    expect(ClusterActionSchema.safeParse({ action: 'drain' }).success).toBe(true);
    const bad = ClusterActionSchema.safeParse({ action: 'explode', extra: 1 });
    expect(bad.error!.issues.map((i) => i.path.join('.') || i.code).sort()).toEqual(['action', 'unrecognized_keys']);
  });
});

const app = (over: Record<string, unknown>) => AppSpecSchema.parse({ name: 'web', namespace: 'shop', image: 'reg/web:v1', replicas: 8, placement: { clusters: ['beijing', 'tianjin', 'shenzhen', 'cloud-hk'] }, ...over });

describe('failover plan', () => {
  it('moves the failed cluster share to the clusters left, divided by capacity, with the pinned image', () => {
    const p = failoverPlan(app({}), fleet, new Set(['beijing']), 'reg/web@sha256:abc');
    expect(p).toMatchObject({ kind: 'move', before: { beijing: 2, tianjin: 2, shenzhen: 2, 'cloud-hk': 2 }, after: { tianjin: 3, shenzhen: 3, 'cloud-hk': 2 }, to: ['tianjin', 'shenzhen', 'cloud-hk'] });
    if (p.kind !== 'move') return;
    expect(p.spec.image).toBe('reg/web@sha256:abc');
    expect(p.spec.placement).toEqual({ clusters: ['tianjin', 'shenzhen', 'cloud-hk'] });
    expect(p.restore.placement).toEqual({ clusters: ['beijing', 'tianjin', 'shenzhen', 'cloud-hk'] });
  });

  it('respects placement: an application confined to cn-north and cn-south never lands on cloud-hk', () => {
    for (const placement of [{ clusters: ['beijing', 'shenzhen'] }, { selector: { tier: 'core' } }]) {
      const p = failoverPlan(app({ placement, replicas: 6 }), fleet, new Set(['beijing']));
      expect(p).toMatchObject({ kind: 'move', after: { shenzhen: 6 }, to: ['shenzhen'] });
    }
    const north = failoverPlan(app({ placement: { selector: { region: 'cn-north' } }, replicas: 6 }), fleet, new Set(['beijing']));
    expect(north).toMatchObject({ kind: 'move', after: { tianjin: 6 } });
  });

  it('skips what it cannot or need not move, saying why', () => {
    expect(failoverPlan(app({}), fleet, new Set(['atlantis']))).toEqual({ kind: 'skip', reason: 'not placed on a failed cluster' });
    expect(failoverPlan(app({ placement: { clusters: ['beijing'] } }), fleet, new Set(['beijing']))).toMatchObject({ kind: 'skip', reason: expect.stringMatching(/allows no healthy cluster/) });
    expect(failoverPlan(app({ distribution: 'duplicated' }), fleet, new Set(['beijing']))).toMatchObject({ kind: 'skip', reason: expect.stringMatching(/duplicated/) });
    const fixed = app({ placement: { clusters: ['beijing', 'shenzhen'] }, overrides: { shenzhen: { replicas: 2 } } });
    expect(failoverPlan(fixed, fleet, new Set(['beijing']))).toMatchObject({ kind: 'skip', reason: expect.stringMatching(/fixed replicas/) });
  });

  it("drops the failed cluster's own override and keeps it for the failback", () => {
    const a = app({ overrides: { beijing: { replicas: 5 }, shenzhen: { env: { A: '1' } } } });
    const p = failoverPlan(a, fleet, new Set(['beijing']));
    expect(p).toMatchObject({ kind: 'move', after: { tianjin: 3, shenzhen: 3, 'cloud-hk': 2 } });
    if (p.kind !== 'move') return;
    expect(Object.keys(p.spec.overrides)).toEqual(['shenzhen']);
    const back = failbackSpec(p.spec, p.spec.placement, p.restore);
    expect(back?.placement).toEqual(a.placement);
    expect(back?.overrides).toEqual(a.overrides);
  });

  it('property: the total is kept and no replica lands outside the placement or on a failed cluster', () => {
    fc.assert(
      fc.property(fc.subarray(fleet.map((c) => c.name), { minLength: 1 }), fc.subarray(fleet.map((c) => c.name)), fc.integer({ min: 4, max: 50 }), (placed, failed, replicas) => {
        const p = failoverPlan(app({ placement: { clusters: placed }, replicas }), fleet, new Set(failed));
        if (p.kind === 'skip') return;
        expect(Object.values(p.after).reduce((a, b) => a + b, 0)).toBe(replicas);
        for (const c of Object.keys(p.after)) {
          expect(placed).toContain(c);
          expect(failed).not.toContain(c);
        }
      }),
    );
  });

  it('a drained (reachable) cluster stays placed with 0 replicas, so what ran there stops; failback takes the 0 away', () => {
    const a = app({ overrides: { tianjin: { env: { A: '1' } } } });
    const p = failoverPlan(a, fleet, new Set(['tianjin']), undefined, new Set(['tianjin']));
    expect(p).toMatchObject({ kind: 'move', before: { beijing: 2, tianjin: 2, shenzhen: 2, 'cloud-hk': 2 }, after: { beijing: 4, tianjin: 0, shenzhen: 2, 'cloud-hk': 2 }, to: ['beijing', 'shenzhen', 'cloud-hk'] });
    if (p.kind !== 'move') return;
    expect(p.spec.placement).toEqual({ clusters: ['beijing', 'tianjin', 'shenzhen', 'cloud-hk'] });
    expect(p.spec.overrides).toEqual({ tianjin: { replicas: 0 } });
    expect(failbackSpec(p.spec, p.spec.placement, p.restore)?.overrides).toEqual({ tianjin: { env: { A: '1' } } });
  });

  it('failback leaves an application alone whose placement a later delivery changed', () => {
    const p = failoverPlan(app({}), fleet, new Set(['beijing']));
    if (p.kind !== 'move') throw new Error('expected a move');
    expect(failbackSpec({ ...p.spec, placement: { clusters: ['shenzhen'] } }, p.spec.placement, p.restore)).toBeUndefined();
    // A newer version delivered with the failover's placement: failback keeps its image.
    expect(failbackSpec({ ...p.spec, image: 'reg/web:v2' }, p.spec.placement, p.restore)?.image).toBe('reg/web:v2');
  });
});

describe('the cluster routes in the OpenAPI document', () => {
  it('lists GET /v1/clusters and POST /v1/clusters/{name}/actions with their answers and the action schema', () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { schemas: Record<string, { properties?: Record<string, { enum?: string[] }> }> } };
    for (const r of clusterRouteTable) {
      const op = doc.paths[r.path.replace(/:(\w+)/g, '{$1}')]?.[r.method];
      expect(op, `${r.method} ${r.path}`).toBeDefined();
      expect(Object.keys(op!.responses)).toEqual(expect.arrayContaining(['200', '401', '403']));
    }
    expect(Object.keys(doc.paths['/v1/clusters/{name}/actions']!.post!.responses)).toEqual(expect.arrayContaining(['400', '404', '409']));
    expect(doc.components.schemas.ClusterAction!.properties!.action!.enum).toEqual(['drain', 'undrain', 'failover', 'failback']);
  });
});
