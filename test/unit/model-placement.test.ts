import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PlanError, planWaves, resolvePlacement } from '../../model/index.ts';
import { fleet } from '../support/fleet.ts';
import type { ClusterInfo } from '../../model/index.ts';

const names = (cs: readonly ClusterInfo[]) => cs.map((c) => c.name);

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

describe('resolvePlacement', () => {
  it('by names, in inventory order', () => {
    expect(names(resolvePlacement({ clusters: ['cloud-hk', 'beijing'] }, fleet))).toEqual([
      'beijing',
      'cloud-hk',
    ]);
  });

  it.each<[Record<string, string>, string[]]>([
    [{ region: 'cn-north' }, ['beijing', 'tianjin']],
    [{ provider: 'idc' }, ['beijing', 'shenzhen']],
    [{ region: 'cn-north', provider: 'cloud' }, ['tianjin']],
    [{ tier: 'core' }, ['beijing', 'shenzhen']],
    [{ tier: 'core', region: 'cn-south' }, ['shenzhen']],
  ])('by selector %j', (selector, want) => {
    expect(names(resolvePlacement({ selector }, fleet))).toEqual(want);
  });

  it('an unknown cluster is a PlanError at its index, naming the known ones', () => {
    const e = planError(() => resolvePlacement({ clusters: ['beijing', 'shanghai'] }, fleet));
    expect(e.path).toEqual(['placement', 'clusters', 1]);
    expect(e.message).toBe('unknown cluster "shanghai" (known: beijing, tianjin, shenzhen, cloud-hk)');
  });

  it('a cluster listed twice is a PlanError at the second mention', () => {
    expect(
      planError(() => resolvePlacement({ clusters: ['beijing', 'tianjin', 'beijing'] }, fleet)).path,
    ).toEqual(['placement', 'clusters', 2]);
  });

  it('a selector that matches nothing is a PlanError at the selector', () => {
    const e = planError(() => resolvePlacement({ selector: { region: 'eu-west' } }, fleet));
    expect(e.path).toEqual(['placement', 'selector']);
    expect(e.message).toMatch(/no cluster matches selector \{"region":"eu-west"\}/);
  });

  it('prefixes a given path', () => {
    expect(planError(() => resolvePlacement({ clusters: ['x'] }, fleet, ['app', 'placement'])).path).toEqual([
      'app',
      'placement',
      'clusters',
      0,
    ]);
  });

  it('by names selects exactly the named clusters, keeping inventory order', () => {
    fc.assert(
      fc.property(
        fc
          .subarray(names(fleet), { minLength: 1 })
          .chain((s) => fc.shuffledSubarray(s, { minLength: s.length })),
        (picked) => {
          const got = names(resolvePlacement({ clusters: picked }, fleet));
          expect(got).toEqual(names(fleet).filter((n) => picked.includes(n)));
        },
      ),
    );
  });
});

describe('planWaves', () => {
  const placed = fleet.slice(0, 3);

  it('defaults to one wave of every placed cluster', () => {
    expect(planWaves(placed)).toEqual([['beijing', 'tianjin', 'shenzhen']]);
  });

  it('keeps valid waves as given, as copies', () => {
    const waves = [['shenzhen'], ['beijing', 'tianjin']];
    const got = planWaves(placed, waves);
    expect(got).toEqual(waves);
    got[0]!.push('x');
    expect(waves[0]).toEqual(['shenzhen']);
  });

  it.each<[string, string[][], (string | number)[], RegExp]>([
    [
      'an unplaced cluster',
      [['beijing'], ['tianjin', 'cloud-hk', 'shenzhen']],
      ['waves', 1, 1],
      /"cloud-hk" is not placed \(placed: beijing, tianjin, shenzhen\)/,
    ],
    [
      'a cluster twice in one wave',
      [['beijing', 'tianjin', 'beijing'], ['shenzhen']],
      ['waves', 0, 2],
      /"beijing" is in more than one wave/,
    ],
    [
      'a cluster in two waves',
      [
        ['beijing', 'tianjin'],
        ['shenzhen', 'tianjin'],
      ],
      ['waves', 1, 1],
      /"tianjin" is in more than one wave/,
    ],
    [
      'a placed cluster missing',
      [['beijing'], ['shenzhen']],
      ['waves'],
      /placed clusters in no wave: tianjin/,
    ],
  ])('rejects %s with its path', (_what, waves, path, message) => {
    const e = planError(() => planWaves(placed, waves));
    expect(e.path).toEqual(path);
    expect(e.message).toMatch(message);
  });

  it('accepts any partition of the placed clusters', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(names(placed), { minLength: 3 }),
        fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
        (order, cuts) => {
          const waves: string[][] = [[order[0]!]];
          order.slice(1).forEach((n, i) => (cuts[i] ? waves.push([n]) : waves[waves.length - 1]!.push(n)));
          expect(planWaves(placed, waves)).toEqual(waves);
        },
      ),
    );
  });
});
