/**
 * Wave steps that wait: `pause` (a duration, or until `promote`), `approval`
 * (a gate: its quorum of distinct approvers, a rejection, or its deadline,
 * which takes the gate's onTimeout action by itself and says so in the audit
 * list) and `bake` (after a promoted wave). `promote` with `full: true` ends
 * every wait of the delivery at once.
 */
import { condition } from '@temporalio/workflow';
import { durationMs, Reason, type GateStatus, type PlanStep } from '../../model/index.ts';
import type { RunContext } from '../context.ts';
import { StopDelivery } from '../stop.ts';

const secs = (ms: number) => `${Math.round(ms / 1000)}s`;

function waiting(x: RunContext, clusters: string[], message: string): void {
  for (const n of clusters) x.state.setCluster(n, 'Progressing', message);
  x.state.setPhase('Paused', message);
  x.state.condition('Paused', 'True', Reason.WaitingForAction, message);
}

function resumed(x: RunContext, clusters: string[], message: string): void {
  for (const n of clusters) x.state.setCluster(n, 'Progressing', message);
  x.state.setPhase('Progressing', message);
  x.state.condition('Paused', 'False', Reason.WaitingForAction, message);
}

export async function pauseStep(x: RunContext, wave: number, clusters: string[], step: PlanStep): Promise<void> {
  if (step.kind !== 'pause') throw new Error(`pause module got ${step.kind}`);
  if (x.canary.full) return;
  const seen = x.canary.promotions;
  const promoted = () => x.canary.promotions > seen || x.canary.full;
  if (step.durationMs === undefined) {
    waiting(x, clusters, `wave ${wave + 1} paused until promote`);
    await condition(promoted);
    resumed(x, clusters, `wave ${wave + 1} promoted by ${x.canary.lastPromoter ?? 'someone'}`);
    return;
  }
  waiting(x, clusters, `wave ${wave + 1} paused for ${secs(step.durationMs)} (or until promote)`);
  const early = await condition(promoted, step.durationMs);
  resumed(x, clusters, early ? `wave ${wave + 1} promoted by ${x.canary.lastPromoter ?? 'someone'}` : `wave ${wave + 1}: pause of ${secs(step.durationMs)} over`);
}

export async function bakeStep(x: RunContext, wave: number, clusters: string[], step: PlanStep): Promise<void> {
  if (step.kind !== 'bake') throw new Error(`bake module got ${step.kind}`);
  if (x.canary.full || wave === x.plan().waves.length - 1) return; // nothing waits for the last wave's bake
  for (const n of clusters) x.state.setCluster(n, 'Progressing', `baking ${secs(step.durationMs)} before wave ${wave + 2}`);
  await condition(() => x.canary.full, step.durationMs);
}

/** The gate named `name` of `wave` (the one the status shows). */
export function gateOf(x: RunContext, name: string): GateStatus | undefined {
  return (x.state.status.gates ?? []).find((g) => g.name === name && g.state === 'Waiting');
}

export async function approvalStep(x: RunContext, wave: number, clusters: string[], step: PlanStep): Promise<void> {
  if (step.kind !== 'approval') throw new Error(`approval module got ${step.kind}`);
  if (x.canary.full) return;
  const a = step.approval;
  const s = x.state.status;
  const openedAt = x.state.now();
  const deadlineMs = a.deadline ? durationMs(a.deadline) : undefined;
  const gate: GateStatus = {
    name: a.name,
    wave,
    roles: [...a.roles],
    quorum: a.quorum,
    openedAt,
    ...(deadlineMs !== undefined ? { deadline: new Date(Date.parse(openedAt) + deadlineMs).toISOString() } : {}),
    onTimeout: a.onTimeout,
    votes: [],
    state: 'Waiting',
  };
  // A retried gate opens again with no votes; the closed one stays in the list for the record.
  s.gates = [...(s.gates ?? []), gate];
  const opened = `wave ${wave + 1} waits at gate ${a.name}: ${a.quorum} approval(s) from ${a.roles.join(' or ')}${gate.deadline ? `, until ${gate.deadline} (then ${a.onTimeout})` : ''}`;
  x.state.gate(gate, opened);
  waiting(x, clusters, opened);
  const closed = () => gate.state !== 'Waiting' || x.canary.full;
  const inTime = deadlineMs === undefined ? (await condition(closed), true) : await condition(closed, deadlineMs);
  gate.closedAt = x.state.now();
  if (x.canary.full && gate.state === 'Waiting') {
    gate.state = 'Approved';
    x.state.gate(gate, `gate ${a.name} passed by a full promotion`);
    resumed(x, clusters, `gate ${a.name} passed by a full promotion (${x.canary.lastPromoter ?? 'someone'})`);
    return;
  }
  if (!inTime) {
    gate.state = 'TimedOut';
    x.state.gate(gate, `gate ${a.name} reached its deadline: ${a.onTimeout}`);
    x.state.audit({ who: 'flotilla', action: `gate-timeout:${a.onTimeout}`, gate: a.name, comment: `gate ${a.name} reached its deadline ${gate.deadline} with ${gate.votes.length} vote(s); taking onTimeout ${a.onTimeout}` });
    if (a.onTimeout === 'abort') throw new StopDelivery('abort', `gate ${a.name} of wave ${wave + 1} timed out (deadline ${gate.deadline})`);
    resumed(x, clusters, `gate ${a.name} timed out: promoted as its onTimeout says`);
    return;
  }
  if (gate.state === 'Rejected') {
    const r = gate.votes.find((v) => v.decision === 'reject')!;
    throw new StopDelivery('abort', `gate ${a.name} of wave ${wave + 1} rejected by ${r.who}${r.comment ? `: ${r.comment}` : ''}`);
  }
  resumed(x, clusters, `gate ${a.name} approved by ${gate.votes.filter((v) => v.decision === 'approve').map((v) => v.who).join(', ')}`);
}
