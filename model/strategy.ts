/**
 * Progressive strategies as a user writes them (`type: "canary"` on a delivery):
 * a list of canary steps that every wave runs in turn, gates that wait for
 * people (with deadlines that expire into a chosen action), and the pure rules
 * of a gate's decision. The engine turns them into plan steps (model/steps.ts);
 * the workflow modules under workflows/steps/ run them.
 */
import { z } from 'zod';
import { dnsLabel, durationString } from './names.ts';
import { AnalysesSchema } from './analysis.ts';
import { objectName } from './source.ts';
import { canaryTarget, LABEL_TRACK, TrafficRoutingSchema } from './canary.ts';
import type { KubeObject } from './objects.ts';
import { PlanError } from './plan.ts';

/** Who may decide a gate (the API's roles that act on deliveries). */
export const GateRoles = ['release-manager', 'sre'] as const;
export type GateRole = (typeof GateRoles)[number];

export const ApprovalSchema = z
  .object({
    /** The gate's name: approve/reject name it (`"gate": "prod-eu"`). Unique in the delivery. */
    name: dnsLabel,
    /** Roles whose members may approve or reject. */
    roles: z.array(z.enum(GateRoles)).min(1).default(['release-manager', 'sre']),
    /** How long the gate waits for its quorum; past it, `onTimeout` is taken and audited. Without it: no deadline. */
    deadline: durationString.optional(),
    onTimeout: z.enum(['abort', 'promote']).default('abort'),
    /** Distinct people who must approve. */
    quorum: z.number().int().min(1).max(10).default(1),
  })
  .strict();
export type Approval = z.infer<typeof ApprovalSchema>;

/** One canary step: exactly one key, validated as one strict object so errors name their field. */
export const CanaryStepSchema = z
  .object({
    /** Percent of traffic (and, with the replica-ratio router, of replicas) on the new version. */
    setWeight: z.number().int().min(0).max(100).optional(),
    /** `{"duration": "30s"}` waits that long; `{}` waits for `promote`. */
    pause: z.object({ duration: durationString.optional() }).strict().optional(),
    approval: ApprovalSchema.optional(),
    /** Analyses run side by side; Failed aborts, Inconclusive pauses for a human. */
    analysis: AnalysesSchema.optional(),
    /** Canary replicas independent of the weight (Argo Rollouts' setCanaryScale). */
    setCanaryScale: z
      .object({ replicas: z.number().int().min(0).optional(), weight: z.number().int().min(0).max(100).optional(), matchTrafficWeight: z.literal(true).optional() })
      .strict()
      .refine((s) => Object.keys(s).length === 1, { message: 'give exactly one of replicas, weight, matchTrafficWeight' })
      .optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const given = Object.entries(s).filter(([, v]) => v !== undefined).map(([k]) => k);
    if (given.length !== 1) ctx.addIssue({ code: 'custom', message: `give exactly one of setWeight, pause, approval, analysis, setCanaryScale${given.length ? ` (got ${given.join(', ')})` : ''}` });
  });
export type CanaryStep = z.infer<typeof CanaryStepSchema>;

export const CanarySchema = z
  .object({
    steps: z.array(CanaryStepSchema).min(1).max(50),
    /** The Deployment to canary (default: the only Deployment of the application). */
    deployment: objectName.optional(),
    /** The Service in front of it (default: the Service selecting it). */
    service: objectName.optional(),
    /** Wait after a wave is fully promoted before the next starts. */
    bake: durationString.optional(),
    /** How traffic is split: replica ratio (default), Gateway API, Istio or NGINX (model/canary.ts). */
    trafficRouting: TrafficRoutingSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    const replicaRatio = !c.trafficRouting || 'replicaRatio' in c.trafficRouting;
    c.steps.forEach((s, i) => {
      if (replicaRatio && s.setCanaryScale && !s.setCanaryScale.matchTrafficWeight)
        ctx.addIssue({ code: 'custom', path: ['steps', i, 'setCanaryScale'], message: 'needs a traffic router (trafficRouting): with the replica ratio, the replicas are the weight' });
      if (!s.approval) return;
      if (names.has(s.approval.name)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'approval', 'name'], message: `gate "${s.approval.name}" is named twice` });
      names.add(s.approval.name);
    });
  });
export type Canary = z.infer<typeof CanarySchema>;

// --- gates ---

export interface GateVote {
  who: string;
  role: string;
  decision: 'approve' | 'reject';
  at: string;
  comment?: string;
}

/** A gate as the status shows it while a wave waits at it (and after). */
export interface GateStatus {
  name: string;
  wave: number;
  roles: string[];
  quorum: number;
  /** When it started waiting, and when it expires (absent: no deadline). */
  openedAt: string;
  deadline?: string;
  onTimeout: 'abort' | 'promote';
  votes: GateVote[];
  state: 'Waiting' | 'Approved' | 'Rejected' | 'TimedOut';
  /** Set when the gate closed: by whom or by the deadline. */
  closedAt?: string;
}

/** Distinct people who approved. */
export const approvers = (g: Pick<GateStatus, 'votes'>): string[] => [...new Set(g.votes.filter((v) => v.decision === 'approve').map((v) => v.who))];

/** Why a vote on the gate is refused, or undefined when it counts. */
export function voteProblem(g: GateStatus | undefined, gateName: string, role: string, who: string): { status: 403 | 409; message: string } | undefined {
  if (!g) return { status: 409, message: `gate "${gateName}" is not waiting` };
  if (g.state !== 'Waiting') return { status: 409, message: `gate "${gateName}" is ${g.state.toLowerCase()}, not waiting` };
  if (!g.roles.includes(role)) return { status: 403, message: `gate "${gateName}" is decided by ${g.roles.join(' or ')}; you are ${role}` };
  if (approvers(g).includes(who)) return { status: 409, message: `${who} has already approved gate "${gateName}" (it needs ${g.quorum} different people)` };
  return undefined;
}

/** The gate's state after its votes (a reject closes it at once; the quorum of distinct approvers opens it). */
export function gateState(g: Pick<GateStatus, 'votes' | 'quorum' | 'state'>): GateStatus['state'] {
  if (g.state === 'TimedOut') return g.state;
  if (g.votes.some((v) => v.decision === 'reject')) return 'Rejected';
  return approvers(g).length >= g.quorum ? 'Approved' : 'Waiting';
}


// --- blue-green ---

export const BlueGreenSchema = z
  .object({
    /** The Deployment to switch (default: the only Deployment of the application). */
    deployment: objectName.optional(),
    /** The active Service (default: the Service selecting it). */
    service: objectName.optional(),
    /** Promote by itself once the preview is ready (after autoPromotionSeconds); false waits for `promote`. */
    autoPromotion: z.boolean().default(true),
    autoPromotionSeconds: z.number().int().min(1).max(86_400).optional(),
    /** A gate before the switch (instead of, or after, the automatic promotion's wait). */
    approval: ApprovalSchema.optional(),
    prePromotionAnalysis: AnalysesSchema.optional(),
    postPromotionAnalysis: AnalysesSchema.optional(),
    /** How long the old version keeps running after the switch (a quick way back). */
    scaleDownDelay: durationString.default('30s'),
  })
  .strict();
export type BlueGreen = z.infer<typeof BlueGreenSchema>;

/** The track of a blue-green's preview pods (the label is the canary's: model/canary.ts LABEL_TRACK). */
export const PREVIEW_TRACK = 'preview';

export interface BlueGreenTarget {
  namespace: string;
  deployment: string;
  service: string;
  previewDeployment: string;
  previewService: string;
  /** The active Service's selector as the new version renders it. */
  selector: Record<string, string>;
}

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: unknown; [k: string]: unknown };
const specOf = (o: Obj) => (o.spec ?? {}) as { selector?: Record<string, string> & { matchLabels?: Record<string, string> }; template?: { metadata?: { labels?: Record<string, string> } }; replicas?: number; ports?: unknown[] };

/**
 * The Deployment and the active Service of a blue-green delivery in one cluster's rendered objects (picked as a
 * canary picks them); a message when that is not one each.
 */
export function blueGreenTarget(objects: readonly Obj[], opts: { deployment?: string | undefined; service?: string | undefined }): BlueGreenTarget | string {
  const t = canaryTarget(objects as KubeObject[], opts);
  if (t instanceof PlanError) return t.message;
  return {
    namespace: t.namespace,
    deployment: t.deployment,
    service: t.service,
    previewDeployment: `${t.deployment}-preview`,
    previewService: `${t.service}-preview`,
    selector: t.selector,
  };
}

const cloneObj = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** The preview Deployment (the new template, the preview track on selector and pods) and the preview Service. */
export function previewObjects(t: BlueGreenTarget, objects: readonly Obj[]): Obj[] {
  const d = cloneObj(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === t.deployment)!);
  const s = cloneObj(objects.find((o) => o.kind === 'Service' && o.metadata.name === t.service)!);
  const spec = specOf(d);
  const selector = spec.selector ?? {};
  selector.matchLabels = { ...(selector.matchLabels ?? {}), [LABEL_TRACK]: PREVIEW_TRACK };
  spec.selector = selector;
  spec.template = { ...(spec.template ?? {}), metadata: { ...(spec.template?.metadata ?? {}), labels: { ...(spec.template?.metadata?.labels ?? {}), [LABEL_TRACK]: PREVIEW_TRACK } } };
  d.metadata = { ...d.metadata, name: t.previewDeployment };
  d.spec = spec;
  const sspec = specOf(s);
  s.metadata = { ...s.metadata, name: t.previewService };
  s.spec = { ports: sspec.ports ?? [], selector: { ...t.selector, [LABEL_TRACK]: PREVIEW_TRACK } };
  return [d, s];
}

/**
 * The active Service: pinned to the active version's pods (its selector plus their pod-template-hash, so the
 * preview's pods, which carry the same labels, take no traffic before the switch), switched to the preview's
 * pods, or back on its own selector.
 */
export function activeService(objects: readonly Obj[], t: BlueGreenTarget, to: { pinned: string } | 'preview' | 'own'): Obj {
  const s = cloneObj(objects.find((o) => o.kind === 'Service' && o.metadata.name === t.service)!);
  const spec = s.spec as { selector?: Record<string, string> };
  spec.selector = to === 'preview' ? { ...t.selector, [LABEL_TRACK]: PREVIEW_TRACK } : to === 'own' ? { ...t.selector } : { ...t.selector, 'pod-template-hash': to.pinned };
  return s;
}
