import { z } from 'zod';
import { dnsLabel, durationString } from './names.ts';
import { AppSpecSchema, type AppSpec } from './app.ts';

export const OnFailure = { rollback: 'rollback', pause: 'pause', fail: 'fail' } as const;
export type OnFailure = (typeof OnFailure)[keyof typeof OnFailure];

export const DeployRequestSchema = z
  .object({
    type: z.literal('deploy'),
    app: AppSpecSchema,
    /** Clusters in groups that change together; default: one wave of every placed cluster. */
    waves: z.array(z.array(dnsLabel).min(1)).min(1).optional(),
    onFailure: z.enum(['rollback', 'pause', 'fail']).default('pause'),
    /** How long an unreachable cluster is waited for before it counts as failed. */
    unreachableTimeout: durationString.default('2m'),
    /** How long one cluster's rollout may take once applied. */
    rolloutTimeout: durationString.default('5m'),
  })
  .strict();
export type DeployRequest = z.infer<typeof DeployRequestSchema>;
export type DeployRequestInput = z.input<typeof DeployRequestSchema>;

export const DeliveryRequestSchema = z.discriminatedUnion('type', [DeployRequestSchema]);
export type DeliveryRequest = z.infer<typeof DeliveryRequestSchema>;

export const Phase = {
  Pending: 'Pending',
  Progressing: 'Progressing',
  Paused: 'Paused',
  NeedsAttention: 'NeedsAttention',
  Healthy: 'Healthy',
  Degraded: 'Degraded',
  Aborted: 'Aborted',
  RolledBack: 'RolledBack',
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];
export const terminalPhases: readonly Phase[] = [Phase.Healthy, Phase.Degraded, Phase.Aborted, Phase.RolledBack];

export const ClusterPhase = {
  Pending: 'Pending',
  Applying: 'Applying',
  Progressing: 'Progressing',
  Healthy: 'Healthy',
  Unreachable: 'Unreachable',
  Failed: 'Failed',
  Skipped: 'Skipped',
  RollingBack: 'RollingBack',
  RolledBack: 'RolledBack',
} as const;
export type ClusterPhase = (typeof ClusterPhase)[keyof typeof ClusterPhase];

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface ClusterStatus {
  cluster: string;
  wave: number;
  phase: ClusterPhase;
  image: string;
  desiredReplicas: number;
  readyReplicas: number;
  /** Deployment revision before and after this delivery (the `deployment.kubernetes.io/revision` annotation). */
  previousRevision?: number;
  revision?: number;
  message: string;
  /** The failure type of the last failed step (ClusterUnreachable, RolloutFailed, ...). */
  failureType?: string;
  attempts: number;
}

export const Action = { retry: 'retry', skip: 'skip', rollback: 'rollback', abort: 'abort' } as const;
export type Action = (typeof Action)[keyof typeof Action];

export const ActionRequestSchema = z
  .object({
    action: z.enum(['retry', 'skip', 'rollback', 'abort']),
    cluster: dnsLabel.optional(),
    comment: z.string().max(2000).optional(),
  })
  .strict();
export type ActionRequest = z.infer<typeof ActionRequestSchema>;

export interface AuditEntry {
  at: string;
  who: string;
  action: string;
  cluster?: string;
  comment?: string;
}

export interface DeliveryStatus {
  id: string;
  type: DeliveryRequest['type'] | 'rollback';
  app: { name: string; namespace: string };
  image: string;
  onFailure: OnFailure;
  phase: Phase;
  conditions: Condition[];
  /** Index into `waves` of the wave in progress (or the last one reached). */
  currentWave: number;
  waves: string[][];
  clusters: Record<string, ClusterStatus>;
  audit: AuditEntry[];
  startedAt: string;
  finishedAt?: string;
  message: string;
}

/** Input of the deploy workflow: the validated request plus who asked. */
export interface DeployWorkflowInput {
  request: DeployRequest;
  requestedBy: string;
  /** Set when this delivery restores an earlier state (an SRE's rollback of a finished delivery). */
  rollbackOf?: string;
}

export type { AppSpec };
