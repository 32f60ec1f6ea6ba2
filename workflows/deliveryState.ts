/**
 * The status of one delivery, kept in a small class so the workflow reads as
 * steps. Everything here is deterministic (time from the workflow's clock).
 */
import { upsertSearchAttributes } from '@temporalio/workflow';
import type {
  AuditEntry,
  ClusterPhase,
  ClusterStatus,
  Condition,
  DeliveryStatus,
  Phase,
} from '../model/index.ts';
import { phaseKey } from './messages.ts';

export class DeliveryState {
  readonly status: DeliveryStatus;

  constructor(init: Omit<DeliveryStatus, 'conditions' | 'clusters' | 'audit' | 'phase' | 'currentWave' | 'message'>) {
    this.status = { ...init, phase: 'Pending', conditions: [], clusters: {}, audit: [], currentWave: 0, message: '' };
  }

  now(): string {
    return new Date().toISOString(); // Date is the workflow's deterministic clock inside a workflow
  }

  setPhase(phase: Phase, message: string): void {
    const changed = this.status.phase !== phase;
    this.status.phase = phase;
    this.status.message = message;
    if (changed) upsertSearchAttributes([{ key: phaseKey, value: phase }]);
  }

  /** Sets a condition of a type, replacing the earlier one; lastTransitionTime moves only when the status flips. */
  condition(type: string, status: Condition['status'], reason: string, message: string): void {
    const old = this.status.conditions.find((c) => c.type === type);
    const lastTransitionTime = old && old.status === status ? old.lastTransitionTime : this.now();
    const next: Condition = { type, status, reason, message, lastTransitionTime };
    this.status.conditions = [...this.status.conditions.filter((c) => c.type !== type), next];
  }

  cluster(name: string): ClusterStatus {
    const c = this.status.clusters[name];
    if (!c) throw new Error(`no cluster ${name} in this delivery`);
    return c;
  }

  setCluster(name: string, phase: ClusterPhase, message: string, extra: Partial<ClusterStatus> = {}): void {
    Object.assign(this.cluster(name), { phase, message }, extra);
  }

  audit(entry: Omit<AuditEntry, 'at'>): void {
    this.status.audit.push({ at: this.now(), ...entry });
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
    return this.status;
  }

  snapshot(): DeliveryStatus {
    return JSON.parse(JSON.stringify(this.status)) as DeliveryStatus;
  }
}
