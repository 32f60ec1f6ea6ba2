/**
 * Where a delivery's time went, from its workflow history (Temporal's clock): every
 * activity with when it was scheduled, started (picked up by a worker) and completed, and
 * every workflow task. What the canary benchmarks print their breakdowns from.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { eventMs } from './engine.ts';

export interface ActivitySpan {
  type: string;
  /** The activity's input (its first argument), when it is JSON. */
  input: Record<string, unknown>;
  scheduled: number;
  started?: number;
  completed?: number;
}

export interface Timeline {
  /** The workflow's start (its first event). */
  start: number;
  end: number;
  activities: ActivitySpan[];
  /** Each workflow task: scheduled, started, completed. */
  workflowTasks: { scheduled: number; started?: number; completed?: number }[];
  /** Each update the workflow accepted (an action: approve, promote, ...), when its acceptance was recorded. */
  updates: { name: string; at: number }[];
}

function inputOf(data: Uint8Array | null | undefined): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(data!).toString()) as Record<string, unknown>;
  } catch {
    return {};
  }
}

export async function timeline(h: WorkflowHandle): Promise<Timeline> {
  const events = (await h.fetchHistory()).events ?? [];
  const byScheduled = new Map<string, ActivitySpan>();
  const activities: ActivitySpan[] = [];
  const workflowTasks: Timeline['workflowTasks'] = [];
  const wtBy = new Map<string, Timeline['workflowTasks'][number]>();
  const updates: Timeline['updates'] = [];
  for (const e of events) {
    const u = e.workflowExecutionUpdateAcceptedEventAttributes;
    if (u) updates.push({ name: u.acceptedRequest?.input?.name ?? '?', at: eventMs(e) });
    const id = String(e.eventId);
    const at = eventMs(e);
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const span: ActivitySpan = { type: s.activityType?.name ?? '?', input: inputOf(s.input?.payloads?.[0]?.data), scheduled: at };
      byScheduled.set(id, span);
      activities.push(span);
    }
    const st = e.activityTaskStartedEventAttributes;
    if (st) {
      const span = byScheduled.get(String(st.scheduledEventId));
      if (span) span.started = at;
    }
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskCanceledEventAttributes ?? e.activityTaskTimedOutEventAttributes;
    if (done) {
      const span = byScheduled.get(String(done.scheduledEventId));
      if (span) span.completed = at;
    }
    if (e.workflowTaskScheduledEventAttributes) {
      const t = { scheduled: at };
      wtBy.set(id, t);
      workflowTasks.push(t);
    }
    const ws = e.workflowTaskStartedEventAttributes;
    if (ws) {
      const t = wtBy.get(String(ws.scheduledEventId));
      if (t) t.started = at;
    }
    const wc = e.workflowTaskCompletedEventAttributes;
    if (wc) {
      const t = wtBy.get(String(wc.scheduledEventId));
      if (t) t.completed = at;
    }
  }
  return { start: events.length ? eventMs(events[0]!) : 0, end: events.length ? eventMs(events.at(-1)!) : 0, activities, workflowTasks, updates };
}

/**
 * A canary's time, from its timeline: before the first weight, each weight step (longest
 * cluster: dispatch = scheduled to started, run = started to completed), the gaps between
 * steps, and after the last weight, the time per activity kind (the longest cluster's).
 */
export interface CanaryBreakdown {
  beforeWeights: number;
  weights: { weight: number; dispatch: number; run: number }[];
  gaps: number;
  /** After the last weight activity completed, to the workflow's end. */
  tail: number;
  tailByActivity: Record<string, number>;
  /** Before the first weight, per activity kind. */
  headByActivity: Record<string, number>;
}

export function canaryBreakdown(t: Timeline): CanaryBreakdown {
  const weightSpans = t.activities.filter((a) => a.type === 'setTrafficWeight' && a.completed !== undefined);
  const byWeight = new Map<number, ActivitySpan[]>();
  for (const a of weightSpans) {
    const w = Number(a.input.weight);
    byWeight.set(w, [...(byWeight.get(w) ?? []), a]);
  }
  const weights = [...byWeight.entries()].map(([weight, xs]) => ({
    weight,
    dispatch: Math.max(...xs.map((a) => (a.started ?? a.scheduled) - a.scheduled)),
    run: Math.max(...xs.map((a) => a.completed! - (a.started ?? a.scheduled))),
  }));
  const first = Math.min(...weightSpans.map((a) => a.scheduled));
  const last = Math.max(...weightSpans.map((a) => a.completed!));
  // Each cluster goes through its weights on its own: the time between one of its weight activities
  // completing and its next one scheduled, summed per cluster; the largest cluster's sum.
  const byCluster = new Map<string, ActivitySpan[]>();
  for (const a of weightSpans) byCluster.set(String(a.input.cluster), [...(byCluster.get(String(a.input.cluster)) ?? []), a]);
  const gaps = Math.max(
    0,
    ...[...byCluster.values()].map((xs) => {
      const sorted = [...xs].sort((a, b) => a.scheduled - b.scheduled);
      return sorted.slice(1).reduce((sum, a, i) => sum + (a.scheduled - sorted[i]!.completed!), 0);
    }),
  );
  const per = (xs: ActivitySpan[]) => {
    const out: Record<string, number> = {};
    for (const a of xs) out[a.type] = Math.max(out[a.type] ?? 0, (a.completed ?? a.scheduled) - a.scheduled);
    return out;
  };
  return {
    beforeWeights: first - t.start,
    weights: weights.map(({ weight, dispatch, run }) => ({ weight, dispatch, run })),
    gaps,
    tail: t.end - last,
    tailByActivity: per(t.activities.filter((a) => a.scheduled >= last)),
    headByActivity: per(t.activities.filter((a) => a.scheduled < first)),
  };
}
