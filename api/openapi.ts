/**
 * The OpenAPI 3.1 document, generated from the same zod schemas the routes
 * validate with (z.toJSONSchema; OpenAPI 3.1 speaks JSON Schema 2020-12).
 */
import { z } from 'zod';
import { DeliveryRequestSchema, ReplicationRequestSchema } from '../model/index.ts';
import { ReplicationListQuerySchema } from './replications.ts';
import { ClusterActionSchema } from '../model/index.ts';
import { clusterOpenApiPaths, ClusterListSchema, ClusterSchema } from './clusters.ts';
import {
  ActionBodySchema,
  AppQuerySchema,
  AppRollbackBodySchema,
  AppStateSchema,
  AppVersionsSchema,
  DeliveryAcceptedSchema,
  DeliveryListSchema,
  DeliveryStatusSchema,
  ErrorSchema,
  IdempotencyKeySchema,
  ListQuerySchema,
} from './schemas.ts';

type Json = Record<string, unknown>;

function schema(s: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string, description: string): Json => ({
  description,
  content: { 'application/json': { schema: ref(name) } },
});
const error = (description: string): Json => json('Error', description);

/** Query parameters from the properties of an object schema. */
function queryParams(s: z.ZodObject, descriptions: Record<string, string>): Json[] {
  const js = schema(s, 'input') as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, p]) => ({
    name,
    in: 'query',
    required: js.required?.includes(name) ?? false,
    ...(descriptions[name] ? { description: descriptions[name] } : {}),
    schema: p,
  }));
}

const idParam = {
  name: 'id',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: 'Delivery id, as returned by POST /v1/deliveries',
};
const idempotencyParam = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Repeating a request with the same key (and caller) returns the delivery the first one started',
  schema: schema(IdempotencyKeySchema, 'input'),
};
const common = {
  '400': error('Malformed request: details lists each field path and what is wrong'),
  '401': error('No bearer token, or an unknown one'),
  '403': error("The caller's role may not do this"),
};

export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Flotilla API',
      version: '1',
      description:
        'Deliveries of applications to a fleet of Kubernetes clusters, as durable Temporal workflows.',
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/deliveries': {
        post: {
          operationId: 'startDelivery',
          summary: 'Start a delivery (roles: ci, sre)',
          parameters: [idempotencyParam],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: ref('DeliveryRequest') } },
          },
          responses: {
            '202': {
              ...json('DeliveryAccepted', 'Started; Location names the status URL'),
              headers: { Location: { schema: { type: 'string' } } },
            },
            '200': json(
              'DeliveryAccepted',
              'An earlier request with the same Idempotency-Key started this delivery',
            ),
            ...common,
            '409': error('Another delivery of the application is running: details.activeDelivery names it'),
            '415': error('The body is not application/json'),
            '422': error(
              'Well formed but impossible: unknown cluster, unparsable image reference, a plan the engine refuses, or an Idempotency-Key reused with another request',
            ),
          },
        },
        get: {
          operationId: 'listDeliveries',
          summary: 'List deliveries from Temporal visibility, optionally by application and phase (any role)',
          parameters: queryParams(ListQuerySchema, {
            app: '"<namespace>/<name>" or "<name>" (namespace default)',
            phase: 'Only deliveries in this phase',
            limit: 'At most this many items',
          }),
          responses: { '200': json('DeliveryList', 'Deliveries'), ...common },
        },
      },
      '/v1/deliveries/{id}': {
        get: {
          operationId: 'getDelivery',
          summary: 'Status of a delivery: phase, conditions, waves, each cluster, audit (any role)',
          parameters: [idParam],
          responses: {
            '200': json('DeliveryStatus', "The delivery's status"),
            ...common,
            '404': error('No such delivery'),
          },
        },
      },
      '/v1/deliveries/{id}/events': {
        get: {
          operationId: 'deliveryEvents',
          summary: "A delivery's changes as server-sent events (any role)",
          description:
            'text/event-stream. A fresh connection first gets `event: status` (the whole status) with the id of the last event so far, then each change as it happens: `phase`, `step`, `cluster`, `gate`, `action`, and `end` (then the stream closes). Every event has an `id`; reconnecting with `Last-Event-ID: N` (or `?after=N`) sends exactly the events after N: none lost, none repeated. A comment every 15 s keeps the connection open.',
          parameters: [
            idParam,
            { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string', pattern: '^[0-9]{1,9}$' }, description: 'Resume after this event' },
            { name: 'after', in: 'query', required: false, schema: { type: 'string', pattern: '^[0-9]{1,9}$' }, description: 'Resume after this event (for clients that cannot set headers)' },
          ],
          responses: {
            '200': { description: 'The event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
            ...common,
            '404': error('No such delivery'),
          },
        },
      },
      '/v1/deliveries/{id}/actions': {
        post: {
          operationId: 'actOnDelivery',
          summary: 'approve, reject, promote (gates: the roles they name; release managers and SREs), retry, skip, rollback or abort a delivery (role: sre)',
          description:
            "On a running delivery the action applies at once (200, the new status) or is refused (409; 403 for a role the gate does not name). On a finished one, rollback starts a delivery that restores the application's earlier state on the same clusters (202, rollbackOf), and retry of an Aborted delivery that is its application's last starts a delivery of the same request and digests that resumes where it stopped (202, retryOf): waves before the stop are put back without their gates, the stopped wave resumes at its step with the canary's weight as it stood.",
          parameters: [idParam, idempotencyParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('ActionRequest') } } },
          responses: {
            '200': json('DeliveryStatus', 'The action was taken; the new status'),
            '202': json(
              'DeliveryAccepted',
              'A delivery was started: a rollback of a finished delivery (rollbackOf) or a retry of an Aborted one (retryOf)',
            ),
            ...common,
            '404': error('No such delivery'),
            '409': error('The action does not apply now: the reason says why'),
            '415': error('The body is not application/json'),
          },
        },
      },
      '/v1/apps/{name}': {
        get: {
          operationId: 'getApplication',
          summary:
            'Where an application runs: image and revision per cluster, active and recent deliveries (any role)',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            ...queryParams(AppQuerySchema, { namespace: 'Kubernetes namespace' }),
          ],
          responses: {
            '200': json('AppState', "The application's durable state"),
            ...common,
            '404': error('No such application'),
          },
        },
      },
      '/v1/apps/{name}/versions': {
        get: {
          operationId: 'listVersions',
          summary: 'The versions of an application: every delivery that ended Healthy, newest first (any role)',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            ...queryParams(AppQuerySchema, { namespace: 'Kubernetes namespace' }),
          ],
          responses: { '200': json('AppVersions', 'Versions'), ...common, '404': error('No such application') },
        },
      },
      '/v1/apps/{name}/rollback': {
        post: {
          operationId: 'rollbackToVersion',
          summary: 'Put a version back, exactly as it rendered, on every cluster it ran on (role: sre)',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            ...queryParams(AppQuerySchema, { namespace: 'Kubernetes namespace' }),
            idempotencyParam,
          ],
          requestBody: { required: true, content: { 'application/json': { schema: ref('AppRollback') } } },
          responses: {
            '202': json('DeliveryAccepted', 'A delivery restoring the version was started'),
            '200': json('DeliveryAccepted', 'An earlier request with the same Idempotency-Key started it'),
            ...common,
            '404': error('No such application'),
            '409': error('The version is not kept, or another delivery of the application is running'),
          },
        },
      },
      '/v1/replications': {
        post: {
          operationId: 'startReplication',
          summary: 'Copy an image to registries of the inventory (or all of them), by digest (roles: ci, sre)',
          parameters: [idempotencyParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref('ReplicationRequest') } } },
          responses: {
            '202': { ...json('ReplicationAccepted', 'Started; Location names the status URL'), headers: { Location: { schema: { type: 'string' } } } },
            '200': json('ReplicationAccepted', 'An earlier request with the same Idempotency-Key started it'),
            ...common,
            '415': error('The body is not application/json'),
            '422': error('An unknown registry, the image\'s own registry as a target, or an image its registry does not have'),
            '503': error('The image could not be resolved now (Retry-After)'),
          },
        },
        get: {
          operationId: 'listReplications',
          summary: 'Replications, newest first (any role)',
          parameters: queryParams(ReplicationListQuerySchema, { limit: 'At most this many items' }),
          responses: { '200': { description: 'Replications' }, ...common },
        },
      },
      '/v1/replications/{id}': {
        get: {
          operationId: 'getReplication',
          summary: "A replication's status: the source pinned, each target's phase and pinned reference (any role)",
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'Replication id, as returned by POST /v1/replications' }],
          responses: { '200': { description: "The replication's status" }, ...common, '404': error('No such replication') },
        },
      },
      '/healthz': {
        get: {
          operationId: 'healthz',
          summary: 'The process is up',
          security: [],
          responses: { '200': { description: 'Up' } },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readyz',
          summary: 'Temporal answers',
          security: [],
          responses: { '200': { description: 'Ready' }, '503': error('Temporal is not reachable') },
        },
      },
      ...clusterOpenApiPaths(json, error, common, idempotencyParam),
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document',
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1 document' } },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'A token from the API tokens file; its role decides what it may do',
        },
      },
      schemas: {
        DeliveryRequest: schema(DeliveryRequestSchema, 'input'),
        ActionRequest: schema(ActionBodySchema, 'input'),
        DeliveryAccepted: schema(DeliveryAcceptedSchema, 'output'),
        DeliveryList: schema(DeliveryListSchema, 'output'),
        DeliveryStatus: schema(DeliveryStatusSchema, 'output'),
        AppState: schema(AppStateSchema, 'output'),
        AppVersions: schema(AppVersionsSchema, 'output'),
        AppRollback: schema(AppRollbackBodySchema, 'input'),
        Error: schema(ErrorSchema, 'output'),
        ReplicationRequest: schema(ReplicationRequestSchema, 'input'),
        ClusterAction: schema(ClusterActionSchema, 'input'),
        Cluster: schema(ClusterSchema, 'output'),
        ClusterList: schema(ClusterListSchema, 'output'),
        ReplicationAccepted: {
          type: 'object',
          required: ['id', 'status', 'source', 'targets'],
          properties: {
            id: { type: 'string' },
            status: { type: 'string', description: 'URL of the replication status' },
            source: { type: 'string', description: 'The image pinned by digest in its registry' },
            targets: { type: 'array', items: { type: 'string' }, description: 'Registry names' },
          },
        },
      },
    },
  };
}
