/**
 * The API's own zod schemas: query strings, path parameters and response
 * bodies, for validation and for /openapi.json. Request bodies come from
 * model/ unchanged. Response schemas mirror interfaces defined elsewhere
 * (model/delivery.ts, workflows/messages.ts); the `Same<>` checks at the end
 * make the typecheck fail when the two drift apart.
 */
import { z } from 'zod';
import {
  ActionRequestSchema,
  AppSpecSchema,
  ClusterPhase,
  dnsLabel,
  OnFailure,
  Phase,
  type DeliveryStatus,
} from '../model/index.ts';
import type { AppState } from '../workflows/messages.ts';

export const ActionBodySchema = ActionRequestSchema;
export type ActionBody = z.infer<typeof ActionBodySchema>;

/** "<namespace>/<name>", or "<name>" in namespace default. */
const appRef = z
  .string()
  .regex(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
    'must be "<namespace>/<name>" or "<name>" (lowercase RFC 1123 labels)',
  )
  .transform((s) => (s.includes('/') ? s : `default/${s}`));

export const ListQuerySchema = z
  .object({
    app: appRef.optional(),
    phase: z.enum(Phase).optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
  })
  .strict();
export type ListQuery = z.output<typeof ListQuerySchema>;

export const AppQuerySchema = z.object({ namespace: dnsLabel.default('default') }).strict();
export const AppParamsSchema = z.object({ name: dnsLabel });

export const IdempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7e]{1,255}$/, 'must be 1 to 255 printable ASCII characters without spaces');

// --- responses ---

export const ErrorSchema = z.object({
  error: z
    .string()
    .meta({ description: 'PascalCase error code, e.g. InvalidRequest, Unprocessable, DeliveryInProgress' }),
  message: z.string(),
  details: z
    .unknown()
    .meta({ description: 'For validation errors: [{path, message}] with dotted field paths' }),
  requestId: z.string(),
});

export const DeliveryAcceptedSchema = z.object({
  id: z.string(),
  status: z.string().meta({ description: 'URL of the delivery status' }),
  rollbackOf: z.string().optional(),
  retryOf: z.string().optional().meta({ description: 'The Aborted delivery this one resumes (a retry)' }),
  digests: z.record(z.string(), z.string()).optional().meta({ description: 'The digest each image was pinned to' }),
  unchecked: z
    .array(z.object({ cluster: z.string(), reason: z.string() }))
    .optional()
    .meta({ description: 'Clusters the preflight could not check in time; the delivery waits for them' }),
});

export const DeliveryListItemSchema = z.object({
  id: z.string(),
  app: z.string().meta({ description: '<namespace>/<name>' }),
  phase: z.enum(Phase),
  type: z.string(),
  execution: z
    .string()
    .meta({ description: 'Temporal execution status: RUNNING, COMPLETED, FAILED, TERMINATED, ...' }),
  startedAt: z.string(),
  closedAt: z.string().optional(),
  image: z.string().optional(),
  requestedBy: z.string().optional(),
  rollbackOf: z.string().optional(),
  retryOf: z.string().optional(),
  status: z.string(),
});
export type DeliveryListItem = z.infer<typeof DeliveryListItemSchema>;
export const DeliveryListSchema = z.object({ items: z.array(DeliveryListItemSchema) });

const ConditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
});

const ObjectRefSchema = z.object({ apiVersion: z.string(), kind: z.string(), name: z.string(), namespace: z.string().optional() });

const ObservedSchema = z
  .object({
    exists: z.boolean(),
    image: z.string().optional(),
    replicas: z.number().int().optional(),
    readyReplicas: z.number().int().optional(),
    updatedReplicas: z.number().int().optional(),
    revision: z.number().int().optional(),
    deliveryId: z.string().optional(),
    at: z.string(),
  })
  .meta({ description: "What the cluster runs, read back from its API server (the application's Deployment)" });

const ClusterStatusSchema = z.object({
  cluster: z.string(),
  wave: z.number().int(),
  phase: z.enum(ClusterPhase),
  image: z.string().meta({ description: 'The image this delivery deploys there, pinned by digest' }),
  desiredReplicas: z.number().int(),
  readyReplicas: z.number().int(),
  previousRevision: z.number().int().optional(),
  revision: z.number().int().optional(),
  message: z.string(),
  failureType: z.string().optional(),
  attempts: z.number().int(),
  step: z.number().int().meta({ description: 'Index into steps of the step this cluster is at (steps.length once done)' }),
  observed: ObservedSchema.optional(),
  objects: z.array(ObjectRefSchema).optional().meta({ description: 'The objects this delivery applies in that cluster' }),
  weight: z.number().int().optional().meta({ description: "A canary's traffic weight on the new version there, as last set and read back" }),
});

const AuditEntrySchema = z.object({
  at: z.string(),
  who: z.string(),
  action: z.string(),
  cluster: z.string().optional(),
  gate: z.string().optional(),
  comment: z.string().optional(),
});

const GateStatusSchema = z.object({
  name: z.string(),
  wave: z.number().int(),
  roles: z.array(z.string()),
  quorum: z.number().int(),
  openedAt: z.string(),
  deadline: z.string().optional().meta({ description: 'When the gate takes its onTimeout action by itself' }),
  onTimeout: z.enum(['abort', 'promote']),
  votes: z.array(z.object({ who: z.string(), role: z.string(), decision: z.enum(['approve', 'reject']), at: z.string(), comment: z.string().optional() })),
  state: z.enum(['Waiting', 'Approved', 'Rejected', 'TimedOut']),
  closedAt: z.string().optional(),
});

export const DeliveryStatusSchema = z.object({
  id: z.string(),
  type: z.enum(['deploy', 'canary', 'blueGreen', 'rollback']),
  app: z.object({ name: z.string(), namespace: z.string() }),
  image: z.string().meta({ description: 'The image as requested (the tag stays visible)' }),
  digest: z.string().optional().meta({ description: 'The digest the image was pinned to when the delivery was planned' }),
  digests: z.record(z.string(), z.string()).optional().meta({ description: 'Every image the delivery runs and the digest it was pinned to' }),
  source: z.string().meta({ description: 'inline, manifests, kustomize, helm, or "version N" (a rollback to a version)' }),
  version: z.number().int().optional().meta({ description: 'The version this delivery becomes if it ends Healthy' }),
  onFailure: z.enum(OnFailure),
  phase: z.enum(Phase),
  conditions: z.array(ConditionSchema),
  currentWave: z.number().int(),
  waves: z.array(z.array(z.string())),
  steps: z.array(z.string()).meta({ description: 'The steps each wave runs, in order' }),
  currentStep: z.number().int(),
  clusters: z.record(z.string(), ClusterStatusSchema),
  retryOf: z.string().optional().meta({ description: 'The Aborted delivery this one resumes' }),
  resumeAt: z
    .object({ wave: z.number().int(), step: z.number().int(), label: z.string() })
    .optional()
    .meta({ description: 'Of an Aborted delivery: the wave and step (index into steps) a retry resumes at' }),
  gates: z.array(GateStatusSchema).optional().meta({ description: "A canary's gates: waiting ones with their deadline and approvals so far, and closed ones" }),
  audit: z.array(AuditEntrySchema),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  message: z.string(),
});

const AppVersionSchema = z.object({
  number: z.number().int(),
  deliveryId: z.string(),
  at: z.string(),
  source: z.string(),
  image: z.string(),
  clusters: z.array(z.string()),
  spec: AppSpecSchema.optional().meta({ description: 'the spec it was delivered with; a large source is kept as {version: N}' }),
});

export const AppStateSchema = z.object({
  name: z.string(),
  namespace: z.string(),
  spec: AppSpecSchema.optional(),
  previousSpec: AppSpecSchema.optional(),
  clusters: z.record(
    z.string(),
    z
      .object({
        image: z.string().optional(),
        replicas: z.number().int().optional(),
        readyReplicas: z.number().int().optional(),
        revision: z.number().int().optional(),
        deliveryId: z.string(),
        phase: z.string(),
        verified: z.boolean().meta({ description: 'False when the cluster could not be read back at the end of that delivery' }),
        at: z.string(),
      })
      .meta({ description: 'What the cluster runs, read back from it at the end of the last delivery' }),
  ),
  activeDelivery: z.string().optional(),
  deliveries: z.array(
    z.object({
      id: z.string(),
      type: z.string(),
      image: z.string(),
      phase: z.enum(Phase),
      startedAt: z.string(),
      finishedAt: z.string().optional(),
      requestedBy: z.string().optional(),
      rollbackOf: z.string().optional(),
      retryOf: z.string().optional(),
      version: z.number().int().optional(),
    }),
  ),
  resumable: z.string().optional().meta({ description: 'The last delivery, when it ended Aborted: a retry of it resumes where it stopped' }),
  versions: z.array(AppVersionSchema).meta({ description: 'Healthy deliveries, newest first, at most the history limit' }),
  nextVersion: z.number().int(),
  inventory: z.record(z.string(), z.array(ObjectRefSchema)).meta({ description: "The application's objects in each cluster, as far as Flotilla knows" }),
});

export const AppVersionsSchema = z.object({ items: z.array(AppVersionSchema) });
export const AppRollbackBodySchema = z
  .object({ version: z.number().int().min(1), comment: z.string().max(2000).optional() })
  .strict();

// Compile-time: the response schemas describe exactly the interfaces the workflows return.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _statusMatches: Same<z.output<typeof DeliveryStatusSchema>, DeliveryStatus> = true;
const _appStateMatches: Same<z.output<typeof AppStateSchema>, AppState> = true;
void _statusMatches;
void _appStateMatches;
