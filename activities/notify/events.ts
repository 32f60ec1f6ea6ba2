/**
 * The events Flotilla notifies about, as one zod discriminated union on
 * `type`. A workflow builds an event (from its own state and workflow time),
 * passes it to the notify activity, and the activity sends it to every sink
 * subscribed to its type. An event carries names, ids, phases and messages:
 * never a URL of a sink, a secret or a credential.
 *
 * `id` is unique per event and stable across retries (e.g.
 * `<deliveryId>/gate.waiting/<gate>/<n>`): a receiver that already saw an id
 * drops the repeat (Temporal delivers at least once).
 */
import { z } from 'zod';

export const EventType = {
  gateWaiting: 'gate.waiting',
  gateReminder: 'gate.reminder',
  gateDecided: 'gate.decided',
  deliveryFinished: 'delivery.finished',
  deliveryFailed: 'delivery.failed',
  deliveryNeedsAttention: 'delivery.needsAttention',
  clusterFailedOver: 'cluster.failedOver',
  clusterFailedBack: 'cluster.failedBack',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];
export const eventTypes = Object.values(EventType) as [EventType, ...EventType[]];

const name = z.string().min(1).max(253);
const app = z.object({ namespace: name, name }).strict();
const text = z.string().max(4000);

/** Fields of every event. */
const common = {
  /** Unique per event, stable across retries of its sending: receivers deduplicate on it. */
  id: z.string().min(1).max(300),
  /** When it happened (workflow time), ISO 8601. */
  at: z.iso.datetime({ offset: true }),
  /** Where a person sees more: the delivery's page or status URL. */
  link: z.url().optional(),
};

const delivery = { ...common, deliveryId: name, app };

const gate = {
  ...delivery,
  gate: name,
  /** The wave the gate stands before (0-based), when it is per wave. */
  wave: z.number().int().min(0).optional(),
  message: text.optional(),
};

/** What a gate does on its own when nobody decides by the deadline. */
export const DefaultAction = { approve: 'approve', reject: 'reject', abort: 'abort' } as const;
const defaultAction = z.enum(['approve', 'reject', 'abort']);

const clusterOutcome = z
  .object({
    cluster: name,
    phase: z.string().min(1).max(63),
    failureType: z.string().max(100).optional(),
    message: text.optional(),
  })
  .strict();

export const GateWaitingEventSchema = z
  .object({ type: z.literal(EventType.gateWaiting), ...gate, deadline: z.iso.datetime({ offset: true }).optional(), defaultAction: defaultAction.optional() })
  .strict();

/** Sent a while before the deadline of a gate still waiting. */
export const GateReminderEventSchema = z
  .object({ type: z.literal(EventType.gateReminder), ...gate, deadline: z.iso.datetime({ offset: true }), defaultAction: defaultAction.optional() })
  .strict();

export const GateDecidedEventSchema = z
  .object({
    type: z.literal(EventType.gateDecided),
    ...gate,
    decision: z.enum(['approved', 'rejected']),
    /** Who decided; for a deadline's default action, "deadline". */
    by: name,
    /** True when nobody decided in time and the default action was taken. */
    byDeadline: z.boolean().default(false),
    comment: text.optional(),
  })
  .strict();

export const DeliveryFinishedEventSchema = z
  .object({ type: z.literal(EventType.deliveryFinished), ...delivery, phase: z.literal('Healthy'), image: name.optional(), message: text, clusters: z.array(clusterOutcome).default([]) })
  .strict();

export const DeliveryFailedEventSchema = z
  .object({
    type: z.literal(EventType.deliveryFailed),
    ...delivery,
    phase: z.enum(['Degraded', 'Aborted', 'RolledBack']),
    image: name.optional(),
    message: text,
    clusters: z.array(clusterOutcome).default([]),
  })
  .strict();

export const DeliveryNeedsAttentionEventSchema = z
  .object({ type: z.literal(EventType.deliveryNeedsAttention), ...delivery, image: name.optional(), message: text, clusters: z.array(clusterOutcome).default([]) })
  .strict();

export const ClusterFailedOverEventSchema = z
  .object({
    type: z.literal(EventType.clusterFailedOver),
    ...common,
    cluster: name,
    /** Clusters that took the workloads over. */
    to: z.array(name).min(1),
    reason: text,
    /** Applications moved, "<namespace>/<name>". */
    apps: z.array(name).default([]),
  })
  .strict();

export const ClusterFailedBackEventSchema = z
  .object({
    type: z.literal(EventType.clusterFailedBack),
    ...common,
    cluster: name,
    /** Clusters the workloads came back from. */
    from: z.array(name).default([]),
    reason: text.optional(),
    apps: z.array(name).default([]),
  })
  .strict();

export const FlotillaEventSchema = z.discriminatedUnion('type', [
  GateWaitingEventSchema,
  GateReminderEventSchema,
  GateDecidedEventSchema,
  DeliveryFinishedEventSchema,
  DeliveryFailedEventSchema,
  DeliveryNeedsAttentionEventSchema,
  ClusterFailedOverEventSchema,
  ClusterFailedBackEventSchema,
]);
export type FlotillaEvent = z.output<typeof FlotillaEventSchema>;
export type FlotillaEventInput = z.input<typeof FlotillaEventSchema>;
