import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { divideReplicas } from '../../model/index.ts';

/** Realistic capacities (whole numbers and fractions) and, apart, the whole range of positive doubles. */
const weight = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.double({ min: 0.01, max: 1000, noNaN: true }));
const anyWeight = fc.double({ min: Number.MIN_VALUE, max: Number.MAX_VALUE, noNaN: true });
/** Weights and a total that can give each at least one. */
const plan = (w: fc.Arbitrary<number>) =>
  fc
    .array(w, { minLength: 1, maxLength: 12 })
    .chain((weights) => fc.tuple(fc.integer({ min: weights.length, max: 10_000 }), fc.constant(weights)));

/** The proportional share 1 + (total - n) * w / W, scaled by the largest weight so huge weights do not overflow. */
function shares(total: number, weights: readonly number[]): number[] {
  const max = Math.max(...weights);
  const scaled = weights.map((w) => w / max);
  const sum = scaled.reduce((a, b) => a + b, 0);
  return scaled.map((w) => 1 + ((total - weights.length) * w) / sum);
}

describe('divideReplicas: table', () => {
  it.each<[number, number[], number[]]>([
    [6, [1, 1, 1], [2, 2, 2]],
    [7, [1, 1, 1], [3, 2, 2]],
    [8, [1, 1, 1], [3, 3, 2]],
    [6, [2, 1], [4, 2]],
    [10, [3, 1, 1], [5, 3, 2]],
    [13, [1, 1, 10], [2, 2, 9]],
    [3, [100, 1, 1], [1, 1, 1]],
    [4, [100, 1, 1], [2, 1, 1]],
    [5, [0.1, 0.2, 0.3], [1, 2, 2]],
    [1, [5], [1]],
    [9, [5], [9]],
    [10, [1, 2, 3, 4], [2, 2, 3, 3]],
    [14, [1, 2, 3, 4], [2, 3, 4, 5]],
    [0, [1, 2, 3], [0, 0, 0]],
    [0, [7], [0]],
    [5, [], []],
  ])('%i over %j is %j', (total, weights, want) => {
    expect(divideReplicas(total, weights)).toEqual(want);
  });

  it.each<[number, number[], RegExp]>([
    [2, [1, 1, 1], /2 replicas cannot give each of 3 clusters at least one/],
    [1, [1, 1], /cannot give each of 2 clusters/],
    [-1, [1], /whole number >= 0, got -1/],
    [1.5, [1, 1], /whole number >= 0, got 1.5/],
    [Number.NaN, [1], /whole number/],
    [3, [1, 0], /weights must be positive/],
    [3, [1, -2], /weights must be positive/],
    [3, [1, Number.NaN], /weights must be positive/],
    [3, [1, Number.POSITIVE_INFINITY], /weights must be positive/],
  ])('%i over %j throws', (total, weights, message) => {
    expect(() => divideReplicas(total, weights)).toThrow(RangeError);
    expect(() => divideReplicas(total, weights)).toThrow(message);
  });
});

describe('divideReplicas: properties', () => {
  it('sums to the total and gives each at least one', () => {
    fc.assert(
      fc.property(plan(weight), ([total, weights]) => {
        const out = divideReplicas(total, weights);
        expect(out).toHaveLength(weights.length);
        expect(out.reduce((a, b) => a + b, 0)).toBe(total);
        for (const r of out) {
          expect(Number.isInteger(r)).toBe(true);
          expect(r).toBeGreaterThanOrEqual(1);
        }
      }),
    );
  });

  it('gives each cluster its proportional share 1 + (total-n)*w/W, within 1', () => {
    fc.assert(
      fc.property(plan(weight), ([total, weights]) => {
        const out = divideReplicas(total, weights);
        shares(total, weights).forEach((share, i) => expect(Math.abs(out[i]! - share)).toBeLessThan(1));
      }),
    );
  });

  it('holds for any positive finite weights, however large or small', () => {
    fc.assert(
      fc.property(plan(anyWeight), ([total, weights]) => {
        const out = divideReplicas(total, weights);
        expect(out.reduce((a, b) => a + b, 0)).toBe(total);
        shares(total, weights).forEach((share, i) => {
          expect(out[i]).toBeGreaterThanOrEqual(1);
          expect(Math.abs(out[i]! - share)).toBeLessThanOrEqual(1);
        });
      }),
    );
  });

  it('gives more weight no fewer replicas', () => {
    fc.assert(
      fc.property(plan(weight), ([total, weights]) => {
        const out = divideReplicas(total, weights);
        weights.forEach((wi, i) =>
          weights.forEach((wj, j) => wi > wj && expect(out[i]).toBeGreaterThanOrEqual(out[j]!)),
        );
      }),
    );
  });

  it('is deterministic', () => {
    fc.assert(
      fc.property(plan(weight), ([total, weights]) => {
        expect(divideReplicas(total, [...weights])).toEqual(divideReplicas(total, weights));
      }),
    );
  });

  it('among equal weights, hands the extra replicas to the earlier clusters', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 50 }), weight, (n, more, w) => {
        const out = divideReplicas(
          n + more,
          Array.from({ length: n }, () => w),
        );
        const base = Math.floor((n + more) / n);
        const extra = (n + more) % n;
        expect(out).toEqual(Array.from({ length: n }, (_, i) => base + (i < extra ? 1 : 0)));
      }),
    );
  });

  it('treats equal weights alike wherever they stand: ties go to the earlier index', () => {
    fc.assert(
      fc.property(plan(fc.integer({ min: 1, max: 4 })), ([total, weights]) => {
        const out = divideReplicas(total, weights);
        weights.forEach((wi, i) =>
          weights.forEach((wj, j) => {
            if (wi === wj && i < j) expect(out[i]! - out[j]!).toBeOneOf([0, 1]);
          }),
        );
      }),
    );
  });

  it('scales: multiplying every weight by the same power of two changes nothing', () => {
    fc.assert(
      fc.property(plan(weight), fc.integer({ min: -20, max: 20 }), ([total, weights], k) => {
        expect(
          divideReplicas(
            total,
            weights.map((w) => w * 2 ** k),
          ),
        ).toEqual(divideReplicas(total, weights));
      }),
    );
  });

  it('gives zeros for a total of 0, and throws for 0 < total < n', () => {
    fc.assert(
      fc.property(fc.array(weight, { minLength: 1, maxLength: 12 }), (weights) => {
        expect(divideReplicas(0, weights)).toEqual(weights.map(() => 0));
        for (let t = 1; t < weights.length; t++) expect(() => divideReplicas(t, weights)).toThrow(RangeError);
      }),
    );
  });
});
