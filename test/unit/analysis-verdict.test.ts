import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AnalysisPhase,
  AnalysisSchema,
  analysisVerdict,
  combinedPhase,
  errorMeasurement,
  measurementPhase,
  MeasurementPhase,
  nextMeasurementDelayMs,
  type Limits,
} from '../../model/analysis.ts';

const S = MeasurementPhase.Successful;
const F = MeasurementPhase.Failed;
const I = MeasurementPhase.Inconclusive;
const E = MeasurementPhase.Error;
const ms = (...phases: MeasurementPhase[]) => phases.map((phase) => ({ phase }));

describe('measurementPhase: the table of the two conditions', () => {
  it.each<[boolean | undefined, boolean | undefined, MeasurementPhase]>([
    [true, true, F],
    [true, false, S],
    [false, true, F],
    [false, false, I],
    [true, undefined, S],
    [false, undefined, F],
    [undefined, true, F],
    [undefined, false, S],
    [undefined, undefined, S],
  ])('success %s, failure %s -> %s', (success, failure, want) => {
    expect(measurementPhase(success, failure)).toBe(want);
  });
});

describe('analysisVerdict: table', () => {
  const limits: Limits = { count: 5, failureLimit: 1, inconclusiveLimit: 2, consecutiveErrorLimit: 4 };
  it.each<[string, MeasurementPhase[], AnalysisPhase, string]>([
    ['nothing measured yet', [], 'Running', 'Measuring'],
    ['one failure is within failureLimit 1', [F], 'Running', 'Measuring'],
    ['the second failure crosses it', [S, F, S, F], 'Failed', 'FailureLimitExceeded'],
    ['count reached with failures within the limit', [S, F, S, S, S], 'Successful', 'CountReached'],
    ['count reached with inconclusive ones within the limit', [I, S, I, S, S], 'Successful', 'CountReached'],
    [
      'the third inconclusive crosses inconclusiveLimit 2',
      [I, I, S, I],
      'Inconclusive',
      'InconclusiveLimitExceeded',
    ],
    ['errors do not count towards count', [S, E, S, E, S, S], 'Running', 'Measuring'],
    [
      'five errors in a row cross consecutiveErrorLimit 4',
      [S, E, E, E, E, E],
      'Error',
      'ConsecutiveErrorLimitExceeded',
    ],
    ['a measurement between errors resets the run', [E, E, E, E, S, E, E, E, E], 'Running', 'Measuring'],
    [
      'the first crossing decides; later ones are not looked at',
      [F, F, I, I, I],
      'Failed',
      'FailureLimitExceeded',
    ],
  ])('%s', (_, phases, phase, reason) => {
    const v = analysisVerdict(limits, ms(...phases));
    expect(v.phase).toBe(phase);
    expect(v.reason).toBe(reason);
  });

  it('says why, with the counts', () => {
    expect(analysisVerdict(limits, ms(S, F, F))).toMatchObject({
      message: 'failed (2) > failureLimit (1)',
      counts: { count: 3, successful: 1, failed: 2, inconclusive: 0, error: 0, consecutiveErrors: 0 },
      decidedBy: 2,
    });
    expect(analysisVerdict(limits, ms(E, E, E, E, E)).message).toBe(
      'consecutiveErrors (5) > consecutiveErrorLimit (4)',
    );
    expect(
      analysisVerdict({ ...limits, count: 1, failureLimit: 0, inconclusiveLimit: 0 }, ms(S)).message,
    ).toMatch(/^count \(1\) reached: 1 successful/);
  });

  it('limits of 0: the first failure, the first inconclusive, the first error decide', () => {
    const zero = { count: 3, failureLimit: 0, inconclusiveLimit: 0, consecutiveErrorLimit: 0 };
    expect(analysisVerdict(zero, ms(S, F)).phase).toBe('Failed');
    expect(analysisVerdict(zero, ms(I)).phase).toBe('Inconclusive');
    expect(analysisVerdict(zero, ms(E)).phase).toBe('Error');
  });
});

describe('analysisVerdict: properties', () => {
  const phase = fc.constantFrom(S, F, I, E);
  const limitsArb = fc
    .record({
      count: fc.integer({ min: 1, max: 12 }),
      failureLimit: fc.integer({ min: 0, max: 11 }),
      inconclusiveLimit: fc.integer({ min: 0, max: 11 }),
      consecutiveErrorLimit: fc.integer({ min: 0, max: 6 }),
    })
    .filter((l) => l.failureLimit < l.count && l.inconclusiveLimit < l.count);
  const runArb = fc.tuple(limitsArb, fc.array(phase, { maxLength: 40 }));

  it('a finished verdict depends only on the measurements up to the one that decided it', () => {
    fc.assert(
      fc.property(runArb, fc.array(phase, { maxLength: 10 }), ([limits, phases], more) => {
        const v = analysisVerdict(limits, ms(...phases));
        if (v.phase === 'Running') return;
        const prefix = phases.slice(0, v.decidedBy! + 1);
        expect(analysisVerdict(limits, ms(...prefix))).toEqual(v);
        expect(analysisVerdict(limits, ms(...prefix, ...more))).toEqual(v);
      }),
    );
  });

  it('Running means no limit is crossed and count is not reached; each finished phase matches its counter', () => {
    fc.assert(
      fc.property(runArb, ([limits, phases]) => {
        const { phase: p, counts: c } = analysisVerdict(limits, ms(...phases));
        const within =
          c.failed <= limits.failureLimit &&
          c.inconclusive <= limits.inconclusiveLimit &&
          c.consecutiveErrors <= limits.consecutiveErrorLimit;
        if (p === 'Running') expect(within && c.count < limits.count).toBe(true);
        if (p === 'Successful') expect(within && c.count === limits.count).toBe(true);
        if (p === 'Failed') expect(c.failed).toBe(limits.failureLimit + 1);
        if (p === 'Inconclusive') expect(c.inconclusive).toBe(limits.inconclusiveLimit + 1);
        if (p === 'Error') expect(c.consecutiveErrors).toBe(limits.consecutiveErrorLimit + 1);
        expect(c.count).toBe(c.successful + c.failed + c.inconclusive);
      }),
    );
  });

  it('an analysis always ends: within count + errors measurements, and any run of consecutiveErrorLimit + 1 errors ends it', () => {
    fc.assert(
      fc.property(runArb, ([limits, phases]) => {
        const v = analysisVerdict(limits, ms(...phases));
        const errors = phases.filter((x) => x === E).length;
        if (phases.length - errors >= limits.count) expect(v.phase).not.toBe('Running');
        const errRun = ms(...Array<MeasurementPhase>(limits.consecutiveErrorLimit + 1).fill(E));
        expect(analysisVerdict(limits, [...ms(...phases), ...errRun]).phase).not.toBe('Running');
      }),
    );
  });

  it('only successful measurements, count of them: Successful', () => {
    fc.assert(
      fc.property(limitsArb, (limits) => {
        expect(analysisVerdict(limits, ms(...Array<MeasurementPhase>(limits.count).fill(S))).phase).toBe(
          'Successful',
        );
      }),
    );
  });
});

describe('combinedPhase', () => {
  it.each<[AnalysisPhase[], AnalysisPhase]>([
    [['Successful', 'Successful'], 'Successful'],
    [['Successful', 'Running'], 'Running'],
    [['Failed', 'Running'], 'Failed'],
    [['Successful', 'Inconclusive'], 'Inconclusive'],
    [['Inconclusive', 'Error'], 'Error'],
    [['Error', 'Failed'], 'Failed'],
    [[], 'Successful'],
  ])('%j -> %s', (phases, want) => {
    expect(combinedPhase(phases)).toBe(want);
  });
});

describe('the schedule of measurements', () => {
  const a = AnalysisSchema.parse({
    name: 'x',
    provider: { prometheus: { query: 'up' } },
    initialDelay: '30s',
    interval: '10s',
    count: 3,
    successCondition: 'result == 1.0',
  });

  it('initialDelay first, interval after each, null once finished', () => {
    expect(nextMeasurementDelayMs(a, [])).toBe(30_000);
    expect(nextMeasurementDelayMs(a, ms(S))).toBe(10_000);
    expect(nextMeasurementDelayMs(a, ms(S, E))).toBe(10_000);
    expect(nextMeasurementDelayMs(a, ms(S, S, S))).toBeNull();
    expect(nextMeasurementDelayMs(a, ms(F))).toBeNull();
  });

  it('count 1 without interval: now, then an errored measurement is retaken after 10s', () => {
    const one = AnalysisSchema.parse({
      name: 'x',
      provider: { prometheus: { query: 'up' } },
      successCondition: 'result == 1.0',
    });
    expect(nextMeasurementDelayMs(one, [])).toBe(0);
    expect(nextMeasurementDelayMs(one, ms(E))).toBe(10_000);
  });

  it('errorMeasurement records a failed activity with its type', () => {
    expect(
      errorMeasurement({ type: 'AnalysisProviderUnreachable', message: 'connection refused' }, 5),
    ).toEqual({
      phase: 'Error',
      at: 5,
      message: 'AnalysisProviderUnreachable: connection refused',
    });
  });
});
