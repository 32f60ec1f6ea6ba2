import { z } from 'zod';
import { dnsLabel, durationString } from './names.ts';
import { AppSpecSchema, type AppSpec } from './app.ts';
import type { ObjectRef } from './objects.ts';
import { BlueGreenSchema, CanarySchema, type GateStatus } from './strategy.ts';

/**
 * How long new pods may show a problem that can fix itself before the rollout
 * counts as failed. The defaults leave a cluster autoscaler time to add nodes
 * and a registry time to catch up.
 */
export const GraceSchema = z
  .object({
    /** Pods no node will take (a cluster autoscaler may still add one). */
    unschedulable: durationString.default('5m'),
    /** Image-pull errors (ErrImagePull, ImagePullBackOff): the first one is never fatal. */
    imagePull: durationString.default('2m'),
    /** Pods Running but not Ready. */
    unready: durationString.default('3m'),
  })
  .strict();
export type Grace = z.infer<typeof GraceSchema>;

export const OnFailure = { rollback: 'rollback', pause: 'pause', fail: 'fail' } as const;
export type OnFailure = (typeof OnFailure)[keyof typeof OnFailure];

export const DeployRequestSchema = z
  .object({
    /** deploy: every wave applies and waits; canary: every wave runs `canary.steps` on a canary beside the stable version. */
    type: z.enum(['deploy', 'canary', 'blueGreen']),
    app: AppSpecSchema,
    /** Clusters in groups that change together; default: one wave of every placed cluster. */
    waves: z.array(z.array(dnsLabel).min(1)).min(1).optional(),
    onFailure: z.enum(['rollback', 'pause', 'fail']).default('pause'),
    /** How long an unreachable cluster is waited for before it counts as failed. */
    unreachableTimeout: durationString.default('2m'),
    /** How long one cluster's rollout may take once applied; also the Deployment's progressDeadlineSeconds. */
    rolloutTimeout: durationString.default('10m'),
    grace: GraceSchema.default(() => ({ unschedulable: '5m', imagePull: '2m', unready: '3m' })),
    /**
     * Take over objects that exist but were not created by Flotilla for this application
     * (role sre only). Without it such an object is never overwritten: the delivery is refused.
     */
    adopt: z.boolean().default(false),
    /** The canary's steps, Deployment and Service (type canary only). */
    canary: CanarySchema.optional(),
    /** The blue-green's Deployment, Services, promotion and analyses (type blueGreen only; all optional). */
    blueGreen: BlueGreenSchema.optional(),
    /**
     * Copy the images to each wave's regional registry before the wave starts (absent: true). false skips it:
     * clusters pulling from a registry that lacks the image show ErrImagePull.
     */
    replicate: z.boolean().optional(),
    /** How long a wave's replication may wait for a registry that is down (absent: 30m). */
    replicationTimeout: durationString.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.type === 'canary' && !r.canary) ctx.addIssue({ code: 'custom', path: ['canary'], message: 'a canary delivery needs canary.steps' });
    if (r.type !== 'canary' && r.canary) ctx.addIssue({ code: 'custom', path: ['canary'], message: `is for type canary (this delivery is ${r.type})` });
    if (r.type !== 'blueGreen' && r.blueGreen) ctx.addIssue({ code: 'custom', path: ['blueGreen'], message: `is for type blueGreen (this delivery is ${r.type})` });
  });
export type DeployRequest = z.infer<typeof DeployRequestSchema>;
export type DeployRequestInput = z.input<typeof DeployRequestSchema>;

export const DeliveryRequestSchema = DeployRequestSchema;
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
  /** A step was stopped by an abort; `observed` says what the cluster runs. */
  Aborted: 'Aborted',
} as const;
export type ClusterPhase = (typeof ClusterPhase)[keyof typeof ClusterPhase];

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

/** What a cluster runs, read back from its API server (the application's Deployment). */
export interface ObservedWorkload {
  exists: boolean;
  image?: string;
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
  revision?: number;
  /** The delivery that last applied it (its annotation). */
  deliveryId?: string;
  at: string;
}

export interface ClusterStatus {
  cluster: string;
  wave: number;
  phase: ClusterPhase;
  /** The image this delivery deploys there, pinned by digest (`repo@sha256:...`). */
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
  /** Index into the wave's steps of the step this cluster is at (or failed at); steps.length once done. */
  step: number;
  /** What the cluster was seen to run when the delivery last looked (always read back at the end). */
  observed?: ObservedWorkload;
  /** The objects this delivery applies there (its bundle for that cluster). */
  objects?: ObjectRef[];
  /** A canary's traffic weight on the new version there, as last set and read back. */
  weight?: number;
}

export const Action = { retry: 'retry', skip: 'skip', rollback: 'rollback', abort: 'abort', approve: 'approve', reject: 'reject', promote: 'promote' } as const;
export type Action = (typeof Action)[keyof typeof Action];

export const ActionRequestSchema = z
  .object({
    action: z.enum(['retry', 'skip', 'rollback', 'abort', 'approve', 'reject', 'promote']),
    cluster: dnsLabel.optional(),
    /** approve, reject: the gate decided. */
    gate: dnsLabel.optional(),
    /** promote: skip the remaining canary steps of every wave (not only the pause it ends). */
    full: z.boolean().optional(),
    comment: z.string().max(2000).optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if ((a.action === 'approve' || a.action === 'reject') && !a.gate) ctx.addIssue({ code: 'custom', path: ['gate'], message: `${a.action} needs the gate's name` });
    if (a.gate && a.action !== 'approve' && a.action !== 'reject') ctx.addIssue({ code: 'custom', path: ['gate'], message: 'is for approve and reject' });
    if (a.full !== undefined && a.action !== 'promote') ctx.addIssue({ code: 'custom', path: ['full'], message: 'is for promote' });
  });
export type ActionRequest = z.infer<typeof ActionRequestSchema>;

export interface AuditEntry {
  at: string;
  who: string;
  action: string;
  cluster?: string;
  gate?: string;
  comment?: string;
}

/**
 * One change of a delivery, as its event stream (GET /v1/deliveries/{id}/events) sends it: numbered from 1
 * in the order the workflow made them, kept with the delivery, so a reader that resumes after event N gets
 * exactly the ones after N.
 */
export interface DeliveryEvent {
  id: number;
  at: string;
  /** phase: the delivery's phase; step: the wave or its step; cluster: a cluster's phase, step or weight; gate: a gate opened or closed; action: someone's action (or flotilla's, at a deadline); end: the delivery is over. */
  type: 'phase' | 'step' | 'cluster' | 'gate' | 'action' | 'end';
  message: string;
  phase?: string;
  wave?: number;
  step?: number;
  label?: string;
  cluster?: string;
  weight?: number;
  gate?: string;
  who?: string;
  action?: string;
}

export interface DeliveryStatus {
  id: string;
  type: DeliveryRequest['type'] | 'rollback';
  app: { name: string; namespace: string };
  /** The image as requested (a tag stays visible here). */
  image: string;
  /** The digest the tag was resolved to when the delivery was planned; every cluster deploys it. */
  digest?: string;
  /** Every image the delivery runs, with the digest it was pinned to (`ref -> sha256:...`). */
  digests?: Record<string, string>;
  /** Where the objects came from: inline, manifests, kustomize, helm, or version N. */
  source: string;
  /** The version this delivery becomes when it ends Healthy (its rendering kept in each cluster). */
  version?: number;
  onFailure: OnFailure;
  phase: Phase;
  conditions: Condition[];
  /** Index into `waves` of the wave in progress (or the last one reached). */
  currentWave: number;
  waves: string[][];
  /** The steps each wave runs, in order (their kinds), e.g. ["apply", "wait"]. */
  steps: string[];
  /** Index into `steps` of the step the current wave is at: the lowest of its clusters'. */
  currentStep: number;
  clusters: Record<string, ClusterStatus>;
  /** A canary's gates: the one a wave waits at, with its deadline and who approved so far, and those closed. */
  gates?: GateStatus[];
  /** The Aborted delivery this one resumes (a `retry` of it), at its `resumeAt`. */
  retryOf?: string;
  /** Of an Aborted delivery: where it stopped, so a `retry` resumes there (the wave and its step). */
  resumeAt?: ResumePoint;
  audit: AuditEntry[];
  startedAt: string;
  finishedAt?: string;
  message: string;
}

/** Where an aborted delivery stopped: the wave, and the index into `steps` of the step it had not finished. */
export interface ResumePoint {
  wave: number;
  step: number;
  /** The step's label, e.g. "approval go" (for people). */
  label: string;
}

/** A retry of an Aborted delivery: the same request, the same digests, resumed where it stopped. */
export interface ResumeInput extends ResumePoint {
  /** The aborted delivery. */
  of: string;
  /** Its images' digests (`ref -> sha256:...`): the retry deploys exactly what it did, not a tag resolved again. */
  digests?: Record<string, string>;
}

/** Input of the delivery workflow: the validated request plus who asked. */
export interface DeliveryWorkflowInput {
  request: DeliveryRequest;
  requestedBy: string;
  /** Set when this delivery restores an earlier state (an SRE's rollback of a finished delivery). */
  rollbackOf?: string;
  /** The version number it becomes if it ends Healthy (given by the application's workflow). */
  version?: number;
  /** What each cluster held of the application after its last delivery (for pruning). */
  previous?: Record<string, ObjectRef[]>;
  /** How many versions each cluster keeps. */
  historyLimit?: number;
  /** Set when this delivery is a `retry` of an Aborted one: it resumes at that one's step. */
  resume?: ResumeInput;
}

export type { AppSpec };
