/**
 * Rendering of a delivery's progress: the plain lines a CI log gets (one per
 * change, nothing for what did not change), the frame a terminal redraws
 * (never wider than the terminal), the last lines, and the exit code of each
 * outcome.
 */
import { stripVTControlCharacters, styleText } from 'node:util';
import { describe, expect, it } from 'vitest';
import { changeLines, finalLines, formatElapsed, frame, outcome, stamp, type Style } from '../../cli/progress.ts';
import { ExitCode, type ClusterView, type StatusView } from '../../cli/types.ts';

const cluster = (name: string, wave: number, phase: string, ready: number, desired: number, extra: Partial<ClusterView> = {}): ClusterView => ({
  cluster: name,
  wave,
  phase,
  readyReplicas: ready,
  desiredReplicas: desired,
  step: phase === 'Pending' ? 0 : phase === 'Applying' ? 0 : phase === 'Healthy' ? 2 : 1,
  attempts: 1,
  message: '',
  ...extra,
});

function status(phase: string, currentWave: number, clusters: ClusterView[], extra: Partial<StatusView> = {}): StatusView {
  return {
    id: 'delivery-1',
    type: 'deploy',
    app: { name: 'web', namespace: 'shop' },
    image: 'reg/web:v2',
    phase,
    message: '',
    currentWave,
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    steps: ['apply', 'wait'],
    clusters: Object.fromEntries(clusters.map((c) => [c.cluster, c])),
    audit: [],
    ...extra,
  };
}

const pending = (n: string, w: number, d: number) => cluster(n, w, 'Pending', 0, d);
const s1 = status('Progressing', 0, [cluster('beijing', 0, 'Applying', 0, 2), pending('shenzhen', 1, 1), pending('cloud-hk', 1, 1)], { message: 'wave 1 of 2' });
const s2 = status('Progressing', 0, [cluster('beijing', 0, 'Progressing', 1, 2), pending('shenzhen', 1, 1), pending('cloud-hk', 1, 1)], { message: 'wave 1 of 2' });
const s3 = status('Progressing', 1, [cluster('beijing', 0, 'Healthy', 2, 2, { revision: 3 }), cluster('shenzhen', 1, 'Progressing', 0, 1), cluster('cloud-hk', 1, 'Applying', 0, 1)], {
  message: 'wave 2 of 2',
});
const failure = 'pod web-1: Running but not Ready for 5s (grace 5s)\n containers with unready status: [web]';
const s4 = status('NeedsAttention', 1, [cluster('beijing', 0, 'Healthy', 2, 2, { revision: 3 }), cluster('shenzhen', 1, 'Failed', 0, 1, { failureType: 'RolloutFailed', message: failure }), cluster('cloud-hk', 1, 'Healthy', 1, 1, { revision: 1 })], {
  message: 'wave 2 failed: shenzhen',
});
const s5 = {
  ...s4,
  phase: 'Progressing',
  message: 'retrying shenzhen',
  clusters: { ...s4.clusters, shenzhen: cluster('shenzhen', 1, 'Progressing', 0, 1, { attempts: 2, failureType: 'RolloutFailed', message: 'waiting' }) },
  audit: [{ at: '2026-11-24T10:00:00Z', who: 'alice', action: 'retry', cluster: 'shenzhen', comment: 'node pool\nfixed' }],
};

describe('plain lines, one per change', () => {
  it('a first status: the header, the phase, the wave, and only clusters that started', () => {
    expect(changeLines(undefined, s1)).toEqual([
      'delivery delivery-1: deploy of shop/web reg/web:v2 in 2 waves [beijing] [shenzhen, cloud-hk]',
      'Progressing: wave 1 of 2',
      'wave 1/2: beijing',
      '  beijing   Applying      apply (1/2)   0/2 ready',
    ]);
  });

  it('a wave that began and ended between two looks still gets its line, in order', () => {
    const planning = status('Progressing', 0, [], { waves: [], message: 'planning' });
    expect(changeLines(planning, s3).filter((l) => l.startsWith('wave '))).toEqual(['wave 1/2: beijing', 'wave 2/2: shenzhen, cloud-hk']);
    expect(changeLines(s1, s3).filter((l) => l.startsWith('wave '))).toEqual(['wave 2/2: shenzhen, cloud-hk']);
  });

  it('then only what changed: a cluster\'s replicas, a new wave, a failure with its reason on one line, a human action', () => {
    expect(changeLines(s1, s1)).toEqual([]);
    expect(changeLines(s1, s2)).toEqual(['  beijing   Progressing   wait (2/2)    1/2 ready']);
    expect(changeLines(s2, s3)).toEqual([
      'wave 2/2: shenzhen, cloud-hk',
      '  beijing   Healthy       2/2 ready  rev 3',
      '  shenzhen  Progressing   wait (2/2)    0/1 ready',
      '  cloud-hk  Applying      apply (1/2)   0/1 ready',
    ]);
    expect(changeLines(s3, s4)).toEqual([
      'NeedsAttention: wave 2 failed: shenzhen',
      '  waiting for an SRE: flotilla retry|skip|rollback|abort delivery-1 [--cluster c] [-m why]',
      '  shenzhen  Failed        wait (2/2)    0/1 ready  RolloutFailed: pod web-1: Running but not Ready for 5s (grace 5s) containers with unready status: [web]',
      '  cloud-hk  Healthy       1/1 ready  rev 1',
    ]);
    // A retried cluster shows its attempt, not its last failure as if it were new.
    expect(changeLines(s4, s5)).toEqual([
      'Progressing: retrying shenzhen',
      '  shenzhen  Progressing   wait (2/2)    0/1 ready  attempt 2',
      'alice: retry shenzhen "node pool fixed"',
    ]);
  });

  it('the clock stamp and elapsed times', () => {
    expect(stamp(1234)).toBe('[  1.2s] ');
    expect(formatElapsed(59_900)).toBe('59.9s');
    expect(formatElapsed(125_000)).toBe('2m05s');
    expect(formatElapsed(3_725_000)).toBe('1h02m');
  });
});

describe('the terminal frame', () => {
  it('groups clusters by wave with a bar each, marks done, current and failed waves', () => {
    expect(frame(s3, { elapsedMs: 12_300, columns: 90 }).split('\n')).toEqual([
      'shop/web  Progressing  12.3s  reg/web:v2',
      '  wave 1/2 ✔ beijing  [████████████████████]   2/2  Healthy      rev 3',
      '  wave 2/2 ▸ shenzhen [····················]   0/1  Progressing  wait (2/2)',
      '             cloud-hk [····················]   0/1  Applying     apply (1/2)',
      '  wave 2 of 2',
    ]);
    const lines = frame(s4, { elapsedMs: 20_000, columns: 90 }).split('\n');
    expect(lines[2]).toMatch(/^ {2}wave 2\/2 ✖ shenzhen \[·+\] {3}0\/1 {2}Failed {7}wait \(2\/2\) {3}RolloutFai…$/);
    expect(lines.at(-1)).toMatch(/^ {2}waiting for an SRE: flotilla retry\|skip\|rollback\|abort delivery-1/);
  });

  it('no line is wider than the terminal, coloured or not, so the redraw never wraps', () => {
    const colour: Style = (f, t) => styleText(f, t, { validateStream: false });
    for (const columns of [60, 80, 120]) {
      for (const style of [undefined, colour]) {
        const text = frame(s4, { elapsedMs: 1000, columns, ...(style ? { style } : {}) });
        for (const line of text.split('\n')) expect(stripVTControlCharacters(line).length, line).toBeLessThan(columns);
      }
    }
  });
});

describe('the end', () => {
  it('final lines: phase, message, the delivery id and every cluster not Healthy', () => {
    expect(finalLines(s4)).toEqual([
      'NeedsAttention: wave 2 failed: shenzhen (delivery delivery-1)',
      '  shenzhen  Failed        wait (2/2)    0/1 ready  RolloutFailed: pod web-1: Running but not Ready for 5s (grace 5s) containers with unready status: [web]',
    ]);
  });

  it('exit codes: 0 for the phase asked for, 2 for another end, 3 for NeedsAttention with --fail-on-pause, none while it runs', () => {
    const deploy = { expect: 'Healthy', failOnPause: false };
    const cases: [string, { expect: string; failOnPause: boolean }, ExitCode | undefined][] = [
      ['Healthy', deploy, ExitCode.ok],
      ['Degraded', deploy, ExitCode.failed],
      ['Aborted', deploy, ExitCode.failed],
      ['RolledBack', deploy, ExitCode.failed],
      ['NeedsAttention', deploy, undefined],
      ['NeedsAttention', { ...deploy, failOnPause: true }, ExitCode.needsAttention],
      ['Paused', { ...deploy, failOnPause: true }, undefined],
      ['Progressing', deploy, undefined],
      ['RolledBack', { expect: 'RolledBack', failOnPause: false }, ExitCode.ok],
      ['Aborted', { expect: 'Aborted', failOnPause: true }, ExitCode.ok],
      ['Healthy', { expect: 'Aborted', failOnPause: false }, ExitCode.failed],
    ];
    for (const [phase, goal, code] of cases) expect(outcome({ id: 'x', phase }, goal), `${phase} ${JSON.stringify(goal)}`).toBe(code);
  });
});
