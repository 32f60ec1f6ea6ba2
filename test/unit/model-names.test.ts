import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { dnsLabel, durationMs, durationString, labelMap } from '../../model/index.ts';

describe('durationMs', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1m500ms', 60_500],
    ['2m5s', 125_000],
    ['1h0m1s', 3_601_000],
  ])('%s is %i ms', (d, ms) => {
    expect(durationString.safeParse(d).success).toBe(ms >= 1000); // timeouts are at least 1s
    expect(durationMs(d)).toBe(ms);
  });

  it.each(['', '2', 'm', '1.5h', '2 m', '-1s', '1d', '2M', 'ms'])('the schema rejects %j', (d) => {
    const r = durationString.safeParse(d);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/duration such as/);
  });

  it('adds up its parts, whatever the order', () => {
    const unit = fc.constantFrom(['ms', 1], ['s', 1000], ['m', 60_000], ['h', 3_600_000]) as fc.Arbitrary<
      [string, number]
    >;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(10_000), unit), { minLength: 1, maxLength: 6 }), (parts) => {
        const d = parts.map(([n, [u]]) => `${n}${u}`).join('');
        const ms = parts.reduce((a, [n, [, f]]) => a + n * f, 0);
        // Accepted exactly when within the bounds of a timeout: 1s to 24h.
        expect(durationString.safeParse(d).success).toBe(ms >= 1000 && ms <= 86_400_000);
        expect(durationMs(d)).toBe(ms);
      }),
    );
  });
});

describe('dnsLabel', () => {
  it.each(['a', 'web', 'cloud-hk', 'a1', '1a', '0', 'a'.repeat(63), 'a--b'])('accepts %j', (s) => {
    expect(dnsLabel.safeParse(s).success).toBe(true);
  });

  it.each(['', 'Web', 'cn_north', '-a', 'a-', 'a.b', 'a b', 'a'.repeat(64), 'ä'])('rejects %j', (s) => {
    expect(dnsLabel.safeParse(s).success).toBe(false);
  });

  it('says what a label must be', () => {
    expect(dnsLabel.safeParse('Shop').error?.issues[0]?.message).toBe(
      'must be a lowercase RFC 1123 label (a-z, 0-9, -)',
    );
  });

  it('accepts exactly the lowercase alphanumerics-and-inner-hyphens strings up to 63', () => {
    const ok = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'ab09-A_.'.split('')), maxLength: 70 }), (s) => {
        expect(dnsLabel.safeParse(s).success).toBe(s.length <= 63 && ok.test(s));
      }),
    );
  });
});

describe('labelMap', () => {
  it('accepts prefixed keys and empty values, rejects empty keys and values past 63', () => {
    expect(labelMap.safeParse({ 'topology.kubernetes.io/region': 'cn-north', tier: '' }).success).toBe(true);
    expect(labelMap.safeParse({ '': 'x' }).success).toBe(false);
    const long = labelMap.safeParse({ tier: 'x'.repeat(64) });
    expect(long.success).toBe(false);
    expect(long.error?.issues[0]?.path).toEqual(['tier']);
  });
});
