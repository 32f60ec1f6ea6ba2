/**
 * Cluster failover and failback, as pure calculators: the fleet's settings (the
 * inventory's `failover` section), each cluster's health as a small state
 * machine over probe results, and the spec an application is delivered with
 * when a cluster fails (its replicas on the healthy clusters its placement
 * allows) and when it comes back (its own placement again).
 *
 * No I/O; the fleet monitor workflow (workflows/fleetMonitor.ts) replays these.
 */
import { z } from 'zod';
import { boundedDuration, durationMs } from './names.ts';
import type { AppSpec, Override, Placement } from './app.ts';
import type { ClusterInfo } from './inventory.ts';
import { PlanError, replicasByCluster, resolvePlacement, effectiveOverride } from './plan.ts';

export const FailbackMode = { automatic: 'automatic', approval: 'approval' } as const;
export type FailbackMode = (typeof FailbackMode)[keyof typeof FailbackMode];

const probeDuration = boundedDuration(100, 60_000);

/** The inventory's `failover` section: one per fleet. */
export const FailoverSettingsSchema = z
  .object({
    /**
     * Move replicas off a cluster the monitor declares Unhealthy, and let deliveries in flight stop waiting for it.
     * Off by default (as Karmada's): the monitor then only reports health; drain and the SRE's failover still work.
     */
    enabled: z.boolean().default(false),
    /** After a failed cluster is Healthy again: restore at once (`automatic`) or when an SRE asks (`approval`). */
    failback: z.enum(['automatic', 'approval']).default('automatic'),
    /** How often each cluster's /readyz is probed. */
    probeInterval: probeDuration.default('5s'),
    /** One probe's bound: an API server that does not answer in time counts as a failure. */
    probeTimeout: probeDuration.default('2s'),
    /** Consecutive failures that make a Healthy cluster Unhealthy. */
    failureThreshold: z.number().int().min(1).max(100).default(3),
    /** Consecutive successes that start an Unhealthy cluster's cooldown. */
    successThreshold: z.number().int().min(1).max(100).default(3),
    /** How long a recovered cluster must keep answering before it is Healthy again (and failed back). */
    cooldown: boundedDuration(0, 24 * 3_600_000).default('30s'),
    /** How long a failover waits for an application's delivery in flight to release its lock. */
    lockWait: boundedDuration(1000, 3_600_000).default('2m'),
    /** Bound on one failover (or failback) delivery: its rollout timeout. */
    rolloutTimeout: boundedDuration(1000, 3_600_000).default('5m'),
  })
  .strict();
export type FailoverSettings = z.output<typeof FailoverSettingsSchema>;
export const defaultFailoverSettings = (): FailoverSettings => FailoverSettingsSchema.parse({});

/** The settings in milliseconds, as the monitor uses them. */
export interface ProbeTiming {
  intervalMs: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
  cooldownMs: number;
}
export const probeTiming = (s: FailoverSettings): ProbeTiming => ({
  intervalMs: durationMs(s.probeInterval),
  timeoutMs: durationMs(s.probeTimeout),
  failureThreshold: s.failureThreshold,
  successThreshold: s.successThreshold,
  cooldownMs: durationMs(s.cooldown),
});

export const Health = {
  /** Not probed yet (the monitor just started, or the cluster is new). */
  Unknown: 'Unknown',
  Healthy: 'Healthy',
  /** failureThreshold probes in a row failed. */
  Unhealthy: 'Unhealthy',
  /** Unhealthy, then successThreshold probes in a row answered: Healthy once the cooldown has passed without a failure. */
  Recovering: 'Recovering',
} as const;
export type Health = (typeof Health)[keyof typeof Health];

export interface ProbeResult {
  ok: boolean;
  /** When the probe was sent (workflow time, ms since the epoch). */
  at: number;
  latencyMs?: number;
  message?: string;
}

export interface ClusterHealthState {
  cluster: string;
  health: Health;
  /** When `health` last changed (ISO). */
  since: string;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** When the cooldown started (Recovering only; ms since the epoch). */
  recoveringAt?: number;
  lastProbe?: { at: string; ok: boolean; latencyMs?: number; message?: string };
}

export const newHealth = (cluster: string, at: number): ClusterHealthState => ({
  cluster,
  health: Health.Unknown,
  since: new Date(at).toISOString(),
  consecutiveFailures: 0,
  consecutiveSuccesses: 0,
});

/** What a probe changed: `failed` when the cluster just turned Unhealthy, `recovered` when it is Healthy again after being so. */
export type HealthEvent = 'failed' | 'recovered' | undefined;

/**
 * The next health after one probe. A failure resets the successes (and a success the failures), so a cluster that
 * flaps faster than the thresholds never changes state; any failure during the cooldown sends it back to Unhealthy
 * (no new `failed` event: it has not recovered).
 */
export function observeProbe(prev: ClusterHealthState, probe: ProbeResult, t: ProbeTiming): { state: ClusterHealthState; event: HealthEvent } {
  const s: ClusterHealthState = {
    ...prev,
    lastProbe: { at: new Date(probe.at).toISOString(), ok: probe.ok, ...(probe.latencyMs !== undefined ? { latencyMs: probe.latencyMs } : {}), ...(probe.message ? { message: probe.message } : {}) },
  };
  const to = (health: Health) => {
    s.health = health;
    s.since = new Date(probe.at).toISOString();
    if (health !== Health.Recovering) delete s.recoveringAt;
  };
  if (probe.ok) {
    s.consecutiveFailures = 0;
    s.consecutiveSuccesses = prev.consecutiveSuccesses + 1;
  } else {
    s.consecutiveSuccesses = 0;
    s.consecutiveFailures = prev.consecutiveFailures + 1;
  }
  switch (prev.health) {
    case Health.Unknown:
      if (probe.ok) to(Health.Healthy);
      else if (s.consecutiveFailures >= t.failureThreshold) {
        to(Health.Unhealthy);
        return { state: s, event: 'failed' };
      }
      return { state: s, event: undefined };
    case Health.Healthy:
      if (!probe.ok && s.consecutiveFailures >= t.failureThreshold) {
        to(Health.Unhealthy);
        return { state: s, event: 'failed' };
      }
      return { state: s, event: undefined };
    case Health.Unhealthy:
      if (probe.ok && s.consecutiveSuccesses >= t.successThreshold) {
        to(Health.Recovering);
        s.recoveringAt = probe.at;
        if (t.cooldownMs === 0) {
          to(Health.Healthy);
          return { state: s, event: 'recovered' };
        }
      }
      return { state: s, event: undefined };
    case Health.Recovering:
      if (!probe.ok) {
        to(Health.Unhealthy);
        return { state: s, event: undefined };
      }
      if (probe.at - (prev.recoveringAt ?? probe.at) >= t.cooldownMs) {
        to(Health.Healthy);
        return { state: s, event: 'recovered' };
      }
      return { state: s, event: undefined };
  }
}

/** What a failover keeps of an application to put it back: its placement and the failed clusters' own overrides. */
export interface Restorable {
  placement: Placement;
  /** The clusters the failover took out (their overrides in the moved spec are replaced by these). */
  clusters: string[];
  overrides: Record<string, Override>;
}

export type FailoverPlan =
  | {
      kind: 'move';
      spec: AppSpec;
      /** Replicas per cluster before (the placement as it was) and after. */
      before: Record<string, number>;
      after: Record<string, number>;
      to: string[];
      restore: Restorable;
    }
  | { kind: 'skip'; reason: string };

/**
 * The spec that moves an application off `failed` clusters: its own spec with the placement narrowed to the
 * clusters its placement allows that are not failed (a selector stays within its labels, a list within its
 * names: an application confined to cn-north and cn-south never lands elsewhere), the failed clusters'
 * overrides dropped, one wave, and the total replicas divided over what is left (`divided`; a `duplicated`
 * application has nothing missing elsewhere). `image`, when given, replaces the spec's (the version's pinned
 * reference: a tag moved since is not deployed by a failover). Failed clusters in `empty` can still be
 * reached (drained): they stay placed with 0 replicas, so what ran there stops once the others run it.
 */
export function failoverPlan(spec: AppSpec, fleet: readonly ClusterInfo[], failed: ReadonlySet<string>, image?: string, empty: ReadonlySet<string> = new Set()): FailoverPlan {
  let placed: ClusterInfo[];
  try {
    placed = resolvePlacement(spec.placement, fleet);
  } catch (e) {
    return { kind: 'skip', reason: `its placement no longer resolves: ${(e as Error).message}` };
  }
  const lost = placed.filter((c) => failed.has(c.name));
  if (lost.length === 0) return { kind: 'skip', reason: 'not placed on a failed cluster' };
  const left = placed.filter((c) => !failed.has(c.name));
  if (left.length === 0) return { kind: 'skip', reason: `its placement allows no healthy cluster (placed: ${placed.map((c) => c.name).join(', ')})` };
  if (spec.distribution === 'duplicated') return { kind: 'skip', reason: 'distribution duplicated: every other cluster already runs the full count' };
  const emptied = lost.filter((c) => empty.has(c.name));
  const overrides = {
    ...Object.fromEntries(Object.entries(spec.overrides).filter(([c]) => !failed.has(c))),
    ...Object.fromEntries(emptied.map((c) => [c.name, { replicas: 0 }])),
  };
  const moved: AppSpec = {
    ...spec,
    ...(image && !spec.source ? { image } : {}),
    placement: { clusters: placed.filter((c) => !failed.has(c.name) || empty.has(c.name)).map((c) => c.name) },
    overrides,
  };
  const restore: Restorable = {
    placement: spec.placement,
    clusters: lost.map((c) => c.name),
    overrides: Object.fromEntries(Object.entries(spec.overrides).filter(([c]) => failed.has(c))),
  };
  if (spec.replicas === undefined) {
    // A source's workloads keep their own totals; the planner divides them over the clusters left.
    return { kind: 'move', spec: moved, before: {}, after: {}, to: left.map((c) => c.name), restore };
  }
  try {
    const eff = (cs: readonly ClusterInfo[], app: AppSpec) => Object.fromEntries(cs.map((c) => [c.name, effectiveOverride(app, c)]));
    const before = replicasByCluster(spec.replicas, placed, eff(placed, spec), spec.distribution);
    const target = [...left, ...emptied];
    const after = replicasByCluster(spec.replicas, target, eff(target, moved), moved.distribution);
    if (left.every((c) => after[c.name] === before[c.name])) {
      return { kind: 'skip', reason: `the clusters left keep their fixed replicas (${left.map((c) => `${c.name} ${after[c.name]}`).join(', ')}): nothing can move` };
    }
    return { kind: 'move', spec: moved, before, after, to: left.map((c) => c.name), restore };
  } catch (e) {
    return { kind: 'skip', reason: e instanceof PlanError ? e.message : String(e) };
  }
}

/**
 * The spec that puts an application back after a failover: its spec as it stands now (a delivery since the
 * failover may have brought a new version) with the placement and overrides the failover narrowed restored.
 * Undefined when the application's placement is no longer the one the failover set (a delivery since chose
 * its own): it is left as it is.
 */
export function failbackSpec(current: AppSpec, failedOverPlacement: Placement, restore: Restorable, image?: string): AppSpec | undefined {
  if (JSON.stringify(current.placement) !== JSON.stringify(failedOverPlacement)) return undefined;
  const kept = Object.fromEntries(Object.entries(current.overrides).filter(([c]) => !(restore.clusters ?? []).includes(c)));
  return {
    ...current,
    ...(image && !current.source ? { image } : {}),
    placement: restore.placement,
    overrides: { ...kept, ...restore.overrides },
  };
}

/** Actions an SRE takes on a cluster (POST /v1/clusters/{name}/actions). */
export const ClusterActionSchema = z
  .object({
    action: z.enum(['drain', 'undrain', 'failover', 'failback']),
    comment: z.string().max(2000).optional(),
  })
  .strict();
export type ClusterAction = z.infer<typeof ClusterActionSchema>;
