/**
 * Live progress of a delivery, as pure functions of its status (so they are
 * tested on their own):
 *  - changeLines: one plain line per change (CI logs, pipes): the delivery's
 *    phase, each wave as it starts, each cluster's phase / step / ready
 *    replicas, each human action;
 *  - frame: the whole picture redrawn in place on a terminal, a progress bar
 *    per cluster grouped by wave;
 *  - finalLines and outcome: what is printed at the end and the exit code.
 */
import { stripVTControlCharacters } from 'node:util';
import { ExitCode, isTerminal, Phase, type ClusterView, type StatusView } from './types.ts';

/** Colours or not: (format, text) => text. The caller decides whether the stream takes colour. */
export type Style = (format: 'green' | 'red' | 'yellow' | 'cyan' | 'dim' | 'bold', text: string) => string;
export const plainStyle: Style = (_f, t) => t;

const phaseColour: Record<string, Parameters<Style>[0]> = {
  Healthy: 'green',
  Degraded: 'red',
  Failed: 'red',
  Aborted: 'red',
  RolledBack: 'yellow',
  RollingBack: 'yellow',
  NeedsAttention: 'yellow',
  Unreachable: 'yellow',
  Paused: 'cyan',
  Skipped: 'dim',
};
const phaseText = (phase: string, style: Style, pad = 0): string => {
  const c = phaseColour[phase];
  const t = phase.padEnd(pad);
  return c ? style(c, t) : t;
};

export function formatElapsed(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "[ 12.3s] " before each plain line. */
export const stamp = (ms: number): string => `[${formatElapsed(ms).padStart(6)}] `;

const clustersOf = (s: StatusView): ClusterView[] => Object.values(s.clusters ?? {});
const waveCount = (s: StatusView): number => s.waves?.length ?? 0;

function stepLabel(s: StatusView, c: ClusterView): string {
  const steps = s.steps ?? [];
  if (c.step === undefined || steps.length === 0 || c.phase === Phase.Pending || c.phase === Phase.Healthy) return '';
  if (c.step >= steps.length) return 'done';
  return `${steps[c.step]} (${c.step + 1}/${steps.length})`;
}

function clusterWidth(s: StatusView): number {
  return Math.max(8, ...clustersOf(s).map((c) => c.cluster.length));
}

/** One cluster, as a plain line: name, phase, step, replicas, revision, and why it failed. */
export function clusterLine(s: StatusView, c: ClusterView, style: Style = plainStyle): string {
  const parts = [c.cluster.padEnd(clusterWidth(s)), phaseText(c.phase, style, 12)];
  const step = stepLabel(s, c);
  if (step) parts.push(step.padEnd(12));
  if (c.desiredReplicas !== undefined) parts.push(`${c.readyReplicas ?? 0}/${c.desiredReplicas} ready`);
  if (c.revision !== undefined && c.phase === Phase.Healthy) parts.push(`rev ${c.revision}`);
  if ((c.attempts ?? 0) > 1) parts.push(`attempt ${c.attempts}`);
  const why = failing(c) ? `${c.failureType ? `${style('red', c.failureType)}: ` : ''}${oneLine(c.message ?? '')}` : '';
  if (why) parts.push(why);
  return parts.join('  ').trimEnd();
}

/** A cluster whose message says why it failed (a retried one's last failure is history, not news). */
const failing = (c: ClusterView): boolean => c.phase === 'Failed' || c.phase === 'Unreachable';

const oneLine = (t: string): string => t.replace(/\s*\n\s*/g, ' ').trim();

/** What of a cluster counts as a change worth a line (its message only when it says why it failed). */
function clusterKey(c: ClusterView): string {
  return JSON.stringify([c.phase, c.step, c.readyReplicas, c.desiredReplicas, c.revision, c.attempts, failing(c) ? [c.failureType, c.message] : '']);
}

export function header(s: StatusView): string {
  const app = s.app ? `${s.app.namespace}/${s.app.name}` : '?';
  const waves = (s.waves ?? []).map((w) => `[${w.join(', ')}]`).join(' ');
  return `delivery ${s.id}: ${s.type ?? 'deploy'} of ${app}${s.image ? ` ${s.image}` : ''}${waves ? ` in ${waveCount(s)} wave${waveCount(s) === 1 ? '' : 's'} ${waves}` : ''}`;
}

function pauseHint(s: StatusView): string {
  return `waiting for an SRE: flotilla retry|skip|rollback|abort ${s.id} [--cluster c] [-m why]`;
}

/** The plain lines that say what changed from `prev` to `next` (all of `next` when there is no prev). */
export function changeLines(prev: StatusView | undefined, next: StatusView, style: Style = plainStyle): string[] {
  const out: string[] = [];
  if (!prev) out.push(header(next));
  if (!prev || prev.phase !== next.phase) {
    out.push(`${phaseText(next.phase, style)}${next.message ? `: ${oneLine(next.message)}` : ''}`);
    if (next.phase === Phase.NeedsAttention) out.push(`  ${pauseHint(next)}`);
  }
  const wave = next.currentWave ?? 0;
  const n = waveCount(next);
  // Every wave begun since the status before, in order: a fast wave can start and end between two looks
  // (and the first is new when the status before was still planning, with no waves yet).
  if (n > 0 && !isTerminal(next.phase)) {
    const from = !prev || waveCount(prev) === 0 ? 0 : (prev.currentWave ?? 0) + 1;
    for (let w = from; w <= wave; w++) out.push(`wave ${w + 1}/${n}: ${(next.waves?.[w] ?? []).join(', ')}`);
  }
  const before = new Map(clustersOf(prev ?? { id: '', phase: '' }).map((c) => [c.cluster, clusterKey(c)]));
  for (const c of clustersOf(next)) {
    const untouched = !prev && c.phase === Phase.Pending;
    if (before.get(c.cluster) !== clusterKey(c) && !untouched) out.push(`  ${clusterLine(next, c, style)}`);
  }
  for (const a of (next.audit ?? []).slice(prev?.audit?.length ?? 0)) {
    out.push(`${a.who}: ${a.action}${a.gate ? ` gate ${a.gate}` : ''}${a.cluster ? ` ${a.cluster}` : ''}${a.comment ? ` "${oneLine(a.comment)}"` : ''}`);
  }
  return out;
}

function bar(c: ClusterView, width: number): string {
  const desired = c.desiredReplicas ?? 0;
  const ready = Math.min(c.readyReplicas ?? 0, desired);
  const filled = desired > 0 ? Math.round((ready / desired) * width) : c.phase === Phase.Healthy ? width : 0;
  return `[${'█'.repeat(filled)}${'·'.repeat(width - filled)}]`;
}

export interface FrameOptions {
  elapsedMs: number;
  /** Terminal columns: the bar shrinks on narrow ones, and no line is longer (a frame redrawn in place must not wrap). */
  columns?: number;
  style?: Style;
}

/** The styled head of a line, and a plain tail cut to what is left of the columns. */
function fit(head: string, tail: string, columns: number): string {
  const plain = stripVTControlCharacters(head).trimEnd();
  if (plain.length >= columns) return `${plain.slice(0, columns - 2)}…`; // too narrow for colour and all
  const room = columns - 1 - stripVTControlCharacters(head).length;
  if (!tail || room <= 0) return head.trimEnd();
  return head + (tail.length > room ? `${tail.slice(0, Math.max(0, room - 1))}…` : tail);
}

/** The whole delivery on a terminal: header, one bar per cluster grouped by wave, the delivery's message. */
export function frame(s: StatusView, opts: FrameOptions): string {
  const style = opts.style ?? plainStyle;
  const columns = opts.columns ?? 100;
  const width = Math.max(10, Math.min(24, columns - 70));
  const nameW = clusterWidth(s);
  const lines = [
    fit(`${style('bold', s.app ? `${s.app.namespace}/${s.app.name}` : s.id)}  ${phaseText(s.phase, style)}  ${style('dim', formatElapsed(opts.elapsedMs))}  `, s.image ?? '', columns),
  ];
  const clusters = s.clusters ?? {};
  const waves = s.waves?.length ? s.waves : [Object.keys(clusters)];
  const current = s.currentWave ?? 0;
  const placed = new Set(waves.flat());
  const rest = Object.keys(clusters).filter((c) => !placed.has(c));
  [...waves, ...(rest.length ? [rest] : [])].forEach((names, i) => {
    const members = names.map((n) => clusters[n] ?? { cluster: n, phase: Phase.Pending });
    const done = members.every((c) => c.phase === Phase.Healthy || c.phase === 'Skipped');
    const failed = members.some(failing);
    const mark = failed ? style('red', '✖') : done ? style('green', '✔') : i === current && !isTerminal(s.phase) ? style('cyan', '▸') : ' ';
    const label = `wave ${i + 1}/${waves.length}`;
    members.forEach((c, j) => {
      const step = c.phase === Phase.Healthy ? (c.revision !== undefined ? `rev ${c.revision}` : '') : stepLabel(s, c);
      const ready = `${c.readyReplicas ?? 0}/${c.desiredReplicas ?? 0}`.padStart(5);
      const head = `  ${j === 0 ? `${label} ${mark}` : ' '.repeat(label.length + 2)} ${c.cluster.padEnd(nameW)} ${bar(c, width)} ${ready}  ${phaseText(c.phase, style, 12)} ${step.padEnd(12)}`;
      const why = failing(c) ? `${c.failureType ? `${c.failureType}: ` : ''}${oneLine(c.message ?? '')}` : '';
      lines.push(fit(`${head}${why ? ' ' : ''}`, why, columns));
    });
  });
  if (s.message) lines.push(fit('  ', oneLine(s.message), columns));
  if (s.phase === Phase.NeedsAttention) lines.push(fit('  ', pauseHint(s), columns));
  return lines.join('\n');
}

/** Printed when the wait ends: the final phase and message, and each cluster that did not end Healthy. */
export function finalLines(s: StatusView, style: Style = plainStyle): string[] {
  const out = [`${phaseText(s.phase, style)}: ${oneLine(s.message ?? '')} (delivery ${s.id})`];
  for (const c of clustersOf(s)) {
    if (c.phase !== Phase.Healthy) out.push(`  ${clusterLine(s, c, style)}`);
  }
  return out;
}

export interface WaitGoal {
  /** The phase that counts as success: Healthy, or RolledBack/Aborted after those actions. */
  expect: string;
  /** NeedsAttention ends the wait with exit code 3 instead of waiting for an SRE. */
  failOnPause: boolean;
}

/** The exit code once the wait is over, or undefined while it goes on. */
export function outcome(s: StatusView, goal: WaitGoal): ExitCode | undefined {
  if (isTerminal(s.phase)) return s.phase === goal.expect ? ExitCode.ok : ExitCode.failed;
  if (goal.failOnPause && s.phase === Phase.NeedsAttention) return ExitCode.needsAttention;
  return undefined;
}
