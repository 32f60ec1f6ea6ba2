/**
 * The status of one delivery, kept in a small class so the workflow reads as
 * steps. Everything here is deterministic (time from the workflow's clock).
 */
import { upsertSearchAttributes } from '@temporalio/workflow';
import {
  refOf,
  stepLabel,
  waveStep,
  type AuditEntry,
  type ClusterPhase,
  type ClusterStatus,
  type Condition,
  type DeliveryEvent,
  type DeliveryStatus,
  type GateStatus,
  type Phase,
  type PreparedDelivery,
} from '../model/index.ts';
import { phaseKey } from './messages.ts';

export const IN_FLIGHT: readonly ClusterPhase[] = ['Applying', 'Progressing', 'RollingBack'];

export class DeliveryState {
  readonly status: DeliveryStatus;
  /** Every change, in order (the event stream's source; not part of the status). */
  readonly events: DeliveryEvent[] = [];
  /** What the last `step` and `cluster` events said, so that only changes are sent. */
  #lastStep = '';
  readonly #lastCluster = new Map<string, string>();

  constructor(init: Pick<DeliveryStatus, 'id' | 'type' | 'app' | 'image' | 'onFailure' | 'startedAt' | 'source' | 'version'>) {
    this.status = { ...init, phase: 'Pending', conditions: [], clusters: {}, audit: [], currentWave: 0, waves: [], steps: [], currentStep: 0, message: '' };
  }

  now(): string {
    return new Date().toISOString(); // Date is the workflow's deterministic clock inside a workflow
  }

  emit(e: Omit<DeliveryEvent, 'id' | 'at'>): void {
    this.events.push({ id: this.events.length + 1, at: this.now(), ...e });
  }

  /** The events after `after` (at most `limit`). */
  eventsAfter(after: number, limit = 500): DeliveryEvent[] {
    return this.events.slice(Math.max(0, after), Math.max(0, after) + limit);
  }

  setPhase(phase: Phase, message: string): void {
    const changed = this.status.phase !== phase;
    this.status.phase = phase;
    this.status.message = message;
    if (changed) {
      upsertSearchAttributes([{ key: phaseKey, value: phase }]);
      this.emit({ type: 'phase', phase, message });
    }
  }

  /** A gate opened, or its state changed. */
  gate(g: GateStatus, message: string): void {
    this.emit({ type: 'gate', gate: g.name, wave: g.wave, phase: g.state, message });
  }

  /** Sets a condition of a type, replacing the earlier one; lastTransitionTime moves only when the status flips. */
  condition(type: string, status: Condition['status'], reason: string, message: string): void {
    const old = this.status.conditions.find((c) => c.type === type);
    const lastTransitionTime = old && old.status === status ? old.lastTransitionTime : this.now();
    const next: Condition = { type, status, reason, message, lastTransitionTime };
    this.status.conditions = [...this.status.conditions.filter((c) => c.type !== type), next];
  }

  /** The plan is known: waves, steps, and each cluster waiting for its wave with its pinned image. */
  planned(p: PreparedDelivery, digest: string | undefined): void {
    this.status.waves = p.waves.map((w) => [...w.clusters]);
    this.status.steps = (p.waves[0]?.steps ?? []).map(stepLabel);
    if (digest) this.status.digest = digest;
    if (Object.keys(p.digests).length) this.status.digests = { ...p.digests };
    for (const c of Object.values(p.clusters)) {
      this.status.clusters[c.cluster] = {
        cluster: c.cluster,
        wave: c.wave,
        phase: 'Pending',
        image: c.image,
        desiredReplicas: c.replicas,
        readyReplicas: 0,
        message: 'waiting for its wave',
        attempts: 0,
        step: 0,
        objects: c.objects.map(refOf),
      };
    }
  }

  cluster(name: string): ClusterStatus {
    const c = this.status.clusters[name];
    if (!c) throw new Error(`no cluster ${name} in this delivery`);
    return c;
  }

  setCluster(name: string, phase: ClusterPhase, message: string, extra: Partial<ClusterStatus> = {}): void {
    const c = this.cluster(name);
    Object.assign(c, { phase, message }, extra);
    this.refreshStep();
    this.clusterChanged(c);
  }

  /** A `cluster` event when the cluster's phase, step or weight moved since the last one. */
  clusterChanged(c: ClusterStatus): void {
    const key = `${c.phase}/${c.step}/${c.weight ?? ''}`;
    if (this.#lastCluster.get(c.cluster) === key) return;
    this.#lastCluster.set(c.cluster, key);
    this.emit({ type: 'cluster', cluster: c.cluster, phase: c.phase, step: c.step, ...(c.weight !== undefined ? { weight: c.weight } : {}), message: c.message });
  }

  /** The current wave's step: the lowest step of its clusters still in the running. */
  refreshStep(): void {
    const wave = this.status.waves[this.status.currentWave] ?? [];
    this.status.currentStep = waveStep(
      wave.map((n) => ({ step: this.cluster(n).step, skipped: this.cluster(n).phase === 'Skipped' })),
      this.status.steps.length,
    );
    for (const n of wave) this.clusterChanged(this.cluster(n));
    const key = `${this.status.currentWave}/${this.status.currentStep}`;
    if (this.status.waves.length > 0 && key !== this.#lastStep) {
      this.#lastStep = key;
      const label = this.status.steps[this.status.currentStep] ?? 'done';
      this.emit({ type: 'step', wave: this.status.currentWave, step: this.status.currentStep, label, message: `wave ${this.status.currentWave + 1}: ${label}` });
    }
  }

  audit(entry: Omit<AuditEntry, 'at'>): void {
    this.status.audit.push({ at: this.now(), ...entry });
    this.emit({ type: 'action', who: entry.who, action: entry.action, ...(entry.cluster ? { cluster: entry.cluster } : {}), ...(entry.gate ? { gate: entry.gate } : {}), message: `${entry.who}: ${entry.action}${entry.comment ? ` (${entry.comment})` : ''}` });
  }

  /** Clusters of a wave whose last step failed. */
  failedIn(wave: readonly string[]): string[] {
    return wave.filter((n) => {
      const p = this.cluster(n).phase;
      return p === 'Failed' || p === 'Unreachable';
    });
  }

  finish(phase: Phase, message: string): DeliveryStatus {
    this.setPhase(phase, message);
    this.status.finishedAt = this.now();
    this.emit({ type: 'end', phase, message });
    return this.status;
  }

  snapshot(): DeliveryStatus {
    return JSON.parse(JSON.stringify(this.status)) as DeliveryStatus;
  }
}
