import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AppSpecSchema, PlanError, planDeploy } from '../../model/index.ts';
import { fleet } from '../support/fleet.ts';
import type { AppSpecInput } from '../../model/index.ts';

const app = (over: Partial<AppSpecInput> = {}) =>
  AppSpecSchema.parse({
    name: 'web',
    image: 'registry.local:5000/demo/web:v2',
    replicas: 10,
    placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] },
    ...over,
  });

/** Runs fn, expects a PlanError, and returns it for its message and path. */
function planError(fn: () => unknown): PlanError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PlanError);
    return e as PlanError;
  }
  throw new Error('expected a PlanError, nothing was thrown');
}

describe('planDeploy', () => {
  it('divides by capacity over the placed clusters, one wave by default', () => {
    const plan = planDeploy(
      app({ placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] }, replicas: 9 }),
      fleet,
    );
    expect(plan.waves).toEqual([['beijing', 'shenzhen', 'cloud-hk']]);
    expect(plan.targets).toEqual({
      beijing: {
        cluster: 'beijing',
        wave: 0,
        taskQueue: 'flotilla-cluster-beijing',
        replicas: 4,
        image: 'registry.local:5000/demo/web:v2',
        env: {},
      },
      shenzhen: {
        cluster: 'shenzhen',
        wave: 0,
        taskQueue: 'flotilla-cluster-shenzhen',
        replicas: 3,
        image: 'registry.local:5000/demo/web:v2',
        env: {},
      },
      'cloud-hk': {
        cluster: 'cloud-hk',
        wave: 0,
        taskQueue: 'flotilla-cluster-cloud-hk',
        replicas: 2,
        image: 'registry.local:5000/demo/web:v2',
        env: {},
      },
    });
  });

  it('duplicated gives each cluster the full count', () => {
    const plan = planDeploy(
      app({ distribution: 'duplicated', replicas: 3, overrides: { shenzhen: { replicas: 1 } } }),
      fleet,
    );
    expect(Object.values(plan.targets).map((t) => [t.cluster, t.replicas])).toEqual([
      ['beijing', 3],
      ['shenzhen', 1],
      ['cloud-hk', 3],
    ]);
  });

  it('keeps replica overrides and divides the rest over the others', () => {
    const plan = planDeploy(app({ replicas: 10, overrides: { beijing: { replicas: 2 } } }), fleet);
    expect([
      plan.targets.beijing?.replicas,
      plan.targets.shenzhen?.replicas,
      plan.targets['cloud-hk']?.replicas,
    ]).toEqual([2, 4, 4]);
  });

  it('puts each cluster in its wave', () => {
    const plan = planDeploy(app(), fleet, [['beijing'], ['shenzhen', 'cloud-hk']]);
    expect(plan.waves).toEqual([['beijing'], ['shenzhen', 'cloud-hk']]);
    expect(Object.values(plan.targets).map((t) => t.wave)).toEqual([0, 1, 1]);
  });

  it('pulls from an override registry, with the rest of the reference unchanged', () => {
    const plan = planDeploy(app({ overrides: { 'cloud-hk': { registry: 'harbor.hk.local:8443' } } }), fleet);
    expect(plan.targets['cloud-hk']?.image).toBe('harbor.hk.local:8443/demo/web:v2');
    expect(plan.targets.beijing?.image).toBe('registry.local:5000/demo/web:v2');
  });

  it('rejects an override registry that a runtime would read as a Docker Hub path', () => {
    const e = planError(() => planDeploy(app({ overrides: { 'cloud-hk': { registry: 'mirror' } } }), fleet));
    expect(e.path).toEqual(['overrides', 'cloud-hk', 'registry']);
    expect(e.message).toMatch(/registry "mirror" is not a host/);
  });

  it('merges env: the override wins, the rest of the template stays', () => {
    const spec = app({
      template: { env: { MODE: 'prod', REGION: 'any' } },
      overrides: { shenzhen: { env: { REGION: 'south', EXTRA: '1' } } },
    });
    const plan = planDeploy(spec, fleet);
    expect(plan.targets.shenzhen?.env).toEqual({ MODE: 'prod', REGION: 'south', EXTRA: '1' });
    expect(plan.targets.beijing?.env).toEqual({ MODE: 'prod', REGION: 'any' });
    expect(spec.template!.env).toEqual({ MODE: "prod", REGION: "any" });
  });

  it('replaces resources with the override, else takes the template', () => {
    const resources = { requests: { cpu: '100m' } };
    const plan = planDeploy(
      app({ template: { resources }, overrides: { beijing: { resources: { limits: { memory: '1Gi' } } } } }),
      fleet,
    );
    expect(plan.targets.beijing?.resources).toEqual({ limits: { memory: '1Gi' } });
    expect(plan.targets.shenzhen?.resources).toEqual(resources);
    expect(planDeploy(app(), fleet).targets.shenzhen).not.toHaveProperty('resources');
  });

  it('rejects an override for an unplaced cluster', () => {
    const e = planError(() => planDeploy(app({ overrides: { tianjin: { replicas: 1 } } }), fleet));
    expect(e.path).toEqual(['overrides', 'tianjin']);
    expect(e.message).toMatch(/override for cluster "tianjin", which is not placed/);
  });

  it.each<[string, Partial<AppSpecInput>]>([
    ['fewer replicas than clusters', { replicas: 2 }],
    ['overrides above the total', { replicas: 4, overrides: { beijing: { replicas: 5 } } }],
    ['overrides leaving less than one each', { replicas: 4, overrides: { beijing: { replicas: 3 } } }],
    ['overrides leaving none', { replicas: 6, overrides: { beijing: { replicas: 6 } } }],
  ])('rejects %s at replicas', (_what, over) => {
    expect(planError(() => planDeploy(app(over), fleet)).path).toEqual(['replicas']);
  });

  it('a total of 0 gives 0 everywhere', () => {
    expect(Object.values(planDeploy(app({ replicas: 0 }), fleet).targets).map((t) => t.replicas)).toEqual([
      0, 0, 0,
    ]);
  });

  it('passes placement and wave errors through with their paths', () => {
    expect(
      planError(() => planDeploy(app({ placement: { clusters: ['beijing', 'nowhere'] } }), fleet)).path,
    ).toEqual(['placement', 'clusters', 1]);
    expect(planError(() => planDeploy(app(), fleet, [['beijing'], ['shenzhen']])).path).toEqual(['waves']);
  });

  it('divided: the targets sum to the total, fixed overrides kept, at least one each otherwise', () => {
    const placedNames = ['beijing', 'shenzhen', 'cloud-hk'];
    const overrides = fc.dictionary(
      fc.constantFrom(...placedNames),
      fc.record({ replicas: fc.integer({ min: 0, max: 5 }) }),
      { maxKeys: 2 },
    );
    fc.assert(
      fc.property(overrides, fc.integer({ min: 0, max: 40 }), (over, extra) => {
        const fixed = Object.values(over).reduce((a, o) => a + o.replicas, 0);
        const free = placedNames.length - Object.keys(over).length;
        const plan = planDeploy(app({ replicas: fixed + free + extra, overrides: over }), fleet);
        const targets = Object.values(plan.targets);
        expect(targets.reduce((a, t) => a + t.replicas, 0)).toBe(fixed + free + extra);
        for (const t of targets) {
          const o = over[t.cluster];
          if (o) expect(t.replicas).toBe(o.replicas);
          else expect(t.replicas).toBeGreaterThanOrEqual(1);
        }
      }),
    );
  });
});
