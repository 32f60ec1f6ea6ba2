/**
 * Canaries in one cluster, pure: how traffic is routed (the schema), which
 * Deployment and Service a canary is about (canaryTarget), the objects a canary
 * adds (canaryObjects), and how many replicas each side runs for a weight
 * (replicaSplit, canaryScale). The routers that act on a cluster live in
 * activities/routing/; the steps that call them live in workflows/.
 *
 * The pods of each side carry `flotilla.dev/track: stable | canary`. The canary
 * Deployment is new (selector and template carry `canary`); the stable one is the
 * user's, whose selector is immutable: only its pod template gets `stable`
 * (withStableTrack, for the renderer to call on every Deployment of an application
 * whose strategy is canary). The first canary of an application therefore rolls the
 * stable pods once, with the application's own rolling-update settings; later ones
 * find the label in place. The stable and canary Services select the user's
 * selector plus the track, so each lists only its own side's pods.
 */
import { z } from 'zod';
import { describeObject, LABEL_MANAGED_BY, MANAGED_BY, ANNOTATION_APP, ANNOTATION_CLUSTER, ANNOTATION_DELIVERY, type KubeObject } from './objects.ts';
import { PlanError } from './plan.ts';

export const LABEL_TRACK = 'flotilla.dev/track';
export const Track = { stable: 'stable', canary: 'canary' } as const;
export type Track = (typeof Track)[keyof typeof Track];
/** On every object a canary adds: the Deployment it is a canary of. */
export const LABEL_CANARY_OF = 'flotilla.dev/canary-of';
/** On an object a router changed (an HTTPRoute, a VirtualService, an Ingress): what it held before, to put back. */
export const ANNOTATION_ROUTING_ORIGINAL = 'flotilla.dev/routing-original';
export const NGINX_CANARY = 'nginx.ingress.kubernetes.io/canary';
export const NGINX_CANARY_WEIGHT = 'nginx.ingress.kubernetes.io/canary-weight';

// ---------------------------------------------------------------------------
// Traffic routing

/** A Kubernetes object name (RFC 1123 subdomain). */
const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes object name (lowercase a-z, 0-9, - and .)');

const ReplicaRatioSchema = z.object({}).strict();
const GatewayApiSchema = z.object({ httpRoute: objectName }).strict();
const IstioSchema = z
  .object({
    virtualService: objectName,
    /** Names of the VirtualService's http routes to weigh (default: every http route with a destination on the Service). */
    routes: z.array(z.string().min(1).max(253)).min(1).max(32).optional(),
  })
  .strict();
const NginxSchema = z.object({ ingress: objectName }).strict();

export const RouterKind = { replicaRatio: 'replicaRatio', gatewayAPI: 'gatewayAPI', istio: 'istio', nginx: 'nginx' } as const;
export type RouterKind = (typeof RouterKind)[keyof typeof RouterKind];

export type TrafficRouting =
  | { replicaRatio: Record<string, never> }
  | { gatewayAPI: { httpRoute: string } }
  | { istio: { virtualService: string; routes?: string[] | undefined } }
  | { nginx: { ingress: string } };

const routingObject = z
  .object({
    replicaRatio: ReplicaRatioSchema.optional(),
    gatewayAPI: GatewayApiSchema.optional(),
    istio: IstioSchema.optional(),
    nginx: NginxSchema.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const named = Object.keys(r).filter((k) => r[k as keyof typeof r] !== undefined);
    if (named.length !== 1)
      ctx.addIssue({
        code: 'custom',
        message: `must name exactly one router: {"replicaRatio": {}}, {"gatewayAPI": {"httpRoute": name}}, {"istio": {"virtualService": name}} or {"nginx": {"ingress": name}}${named.length ? ` (got ${named.join(', ')})` : ''}`,
      });
  });

/** How a canary's traffic is split; absent means replica ratio. */
export const TrafficRoutingSchema = routingObject
  .optional()
  .transform((r): TrafficRouting => {
    if (!r) return { replicaRatio: {} };
    if (r.gatewayAPI) return { gatewayAPI: r.gatewayAPI };
    if (r.istio) return { istio: r.istio };
    if (r.nginx) return { nginx: r.nginx };
    return { replicaRatio: {} };
  });

export function routerKind(r: TrafficRouting): RouterKind {
  if ('gatewayAPI' in r) return RouterKind.gatewayAPI;
  if ('istio' in r) return RouterKind.istio;
  if ('nginx' in r) return RouterKind.nginx;
  return RouterKind.replicaRatio;
}

// ---------------------------------------------------------------------------
// The target

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

/** What a canary in one cluster is about (plain JSON: it travels in workflow inputs). */
export interface CanaryTarget {
  namespace: string;
  /** The user's (stable) Deployment. */
  deployment: string;
  /** The Service selecting it. */
  service: string;
  /** The Service's selector. */
  selector: Record<string, string>;
  ports: ServicePort[];
  /** The stable Deployment's replicas as rendered (undefined when an autoscaler owns them). */
  replicas?: number;
  stableService: string;
  canaryService: string;
  canaryDeployment: string;
}

interface DeploymentSpec {
  replicas?: number;
  selector?: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] };
  template?: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: unknown };
  [k: string]: unknown;
}
interface ServiceSpec {
  selector?: Record<string, string>;
  ports?: ServicePort[];
  type?: string;
  [k: string]: unknown;
}

const specOf = <T>(o: KubeObject): T => (o.spec ?? {}) as T;
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** A DNS-1035 label (Service names): at most 63, starting with a letter. */
const serviceNameOk = (n: string) => n.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(n);

/**
 * Picks the Deployment to canary in one cluster's rendered objects (the one named,
 * else the only one) and the Service selecting its pods (the one named, else the only
 * one whose selector matches the pod template). Returns a PlanError (with the path
 * `deployment` or `service`) when that is not one object.
 */
export function canaryTarget(objects: readonly KubeObject[], opts: { deployment?: string | undefined; service?: string | undefined } = {}): CanaryTarget | PlanError {
  const deployments = objects.filter((o) => o.kind === 'Deployment' && o.apiVersion === 'apps/v1');
  let deployment: KubeObject | undefined;
  if (opts.deployment) {
    deployment = deployments.find((d) => d.metadata.name === opts.deployment);
    if (!deployment)
      return new PlanError(`no Deployment ${opts.deployment} in the application (has: ${deployments.map((d) => d.metadata.name).join(', ') || 'none'})`, ['deployment']);
  } else {
    if (deployments.length !== 1)
      return new PlanError(
        deployments.length === 0
          ? 'the application has no Deployment to canary'
          : `the application has ${deployments.length} Deployments (${deployments.map((d) => d.metadata.name).join(', ')}): name the one to canary in "deployment"`,
        ['deployment'],
      );
    deployment = deployments[0]!;
  }
  const dspec = specOf<DeploymentSpec>(deployment);
  const podLabels = dspec.template?.metadata?.labels ?? {};
  const services = objects.filter((o) => o.kind === 'Service' && o.apiVersion === 'v1' && o.metadata.namespace === deployment.metadata.namespace);
  let service: KubeObject | undefined;
  if (opts.service) {
    service = services.find((s) => s.metadata.name === opts.service);
    if (!service) return new PlanError(`no Service ${opts.service} in the application (has: ${services.map((s) => s.metadata.name).join(', ') || 'none'})`, ['service']);
    if (!selects(specOf<ServiceSpec>(service).selector ?? {}, podLabels))
      return new PlanError(`Service ${opts.service} does not select the pods of Deployment ${deployment.metadata.name}`, ['service']);
  } else {
    const matching = services.filter((s) => selects(specOf<ServiceSpec>(s).selector ?? {}, podLabels));
    if (matching.length !== 1)
      return new PlanError(
        matching.length === 0
          ? `no Service of the application selects the pods of Deployment ${deployment.metadata.name}`
          : `${matching.length} Services select the pods of Deployment ${deployment.metadata.name} (${matching.map((s) => s.metadata.name).join(', ')}): name one in "service"`,
        ['service'],
      );
    service = matching[0]!;
  }
  const sspec = specOf<ServiceSpec>(service);
  const svc = service.metadata.name;
  const stableService = `${svc}-stable`;
  const canaryService = `${svc}-canary`;
  if (!serviceNameOk(canaryService))
    return new PlanError(`Service name ${svc} is too long for its canary Services (${canaryService} must be a DNS label of at most 63 characters)`, ['service']);
  const canaryDeployment = `${deployment.metadata.name}-canary`;
  if (canaryDeployment.length > 253) return new PlanError(`Deployment name ${deployment.metadata.name} is too long for ${canaryDeployment}`, ['deployment']);
  if (sspec.type === 'ExternalName') return new PlanError(`Service ${svc} is an ExternalName Service: it selects no pods`, ['service']);
  return {
    namespace: deployment.metadata.namespace ?? 'default',
    deployment: deployment.metadata.name,
    service: svc,
    selector: { ...(sspec.selector ?? {}) },
    ports: (sspec.ports ?? []).map((p) => ({
      ...(p.name !== undefined ? { name: p.name } : {}),
      port: p.port,
      ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}),
      ...(p.protocol !== undefined ? { protocol: p.protocol } : {}),
      ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
    })),
    ...(typeof dspec.replicas === 'number' ? { replicas: dspec.replicas } : {}),
    stableService,
    canaryService,
    canaryDeployment,
  };
}

// ---------------------------------------------------------------------------
// The objects a canary adds

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** Ownership metadata copied from the Deployment (managed-by, the application, the delivery, the cluster). */
function ownedMeta(from: KubeObject, name: string, target: CanaryTarget): KubeObject['metadata'] {
  const a = from.metadata.annotations ?? {};
  const annotations: Record<string, string> = {};
  for (const k of [ANNOTATION_APP, ANNOTATION_DELIVERY, ANNOTATION_CLUSTER]) if (a[k] !== undefined) annotations[k] = a[k];
  return {
    name,
    namespace: target.namespace,
    labels: { ...(from.metadata.labels ?? {}), [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_CANARY_OF]: target.deployment },
    annotations,
  };
}

/**
 * The objects a canary adds in one cluster, from the new version's rendered objects:
 *  - the canary Deployment (`<deployment>-canary`): the new pod template, `flotilla.dev/track:
 *    canary` on selector and template, 0 replicas (the router scales it);
 *  - for the Gateway API, Istio and NGINX: the Services `<service>-stable` and
 *    `<service>-canary` (the user's ports, its selector plus the track);
 *  - for NGINX: the canary Ingress `<ingress>-canary`, a copy of the named Ingress whose
 *    backends on the user's Service point at the canary Service, with `canary: "true"` and
 *    `canary-weight: "0"`. `existing` must then hold the named Ingress (as it stands in the
 *    cluster or as rendered); a PlanError otherwise.
 * Applied once, before the first weight: applying them again puts the canary back to 0.
 */
export function canaryObjects(target: CanaryTarget, newObjects: readonly KubeObject[], routing: TrafficRouting, existing: readonly KubeObject[] = newObjects): KubeObject[] | PlanError {
  const next = newObjects.find((o) => o.kind === 'Deployment' && o.metadata.name === target.deployment);
  if (!next) return new PlanError(`the new version has no Deployment ${target.deployment}`, ['deployment']);
  const spec = clone(specOf<DeploymentSpec>(next));
  const template = spec.template ?? {};
  const templateMeta = template.metadata ?? {};
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: ownedMeta(next, target.canaryDeployment, target),
    spec: {
      ...spec,
      replicas: 0,
      selector: { ...(spec.selector ?? {}), matchLabels: { ...(spec.selector?.matchLabels ?? {}), [LABEL_TRACK]: Track.canary } },
      template: { ...template, metadata: { ...templateMeta, labels: { ...(templateMeta.labels ?? {}), [LABEL_TRACK]: Track.canary } } },
    },
  };
  const kind = routerKind(routing);
  if (kind === RouterKind.replicaRatio) return [deployment];
  const service = (name: string, track: Track): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(next, name, target),
    spec: { type: 'ClusterIP', selector: { ...target.selector, [LABEL_TRACK]: track }, ports: clone(target.ports) },
  });
  const out = [service(target.stableService, Track.stable), service(target.canaryService, Track.canary), deployment];
  if ('nginx' in routing) {
    const ingress = existing.find((o) => o.kind === 'Ingress' && o.metadata.name === routing.nginx.ingress && (o.metadata.namespace ?? target.namespace) === target.namespace);
    if (!ingress) return new PlanError(`no Ingress ${routing.nginx.ingress} in namespace ${target.namespace}`, ['trafficRouting', 'nginx', 'ingress']);
    const canary = canaryIngress(ingress, target, next);
    if (canary instanceof PlanError) return canary;
    out.push(canary);
  }
  return out;
}

interface IngressBackend {
  service?: { name: string; port?: unknown };
  [k: string]: unknown;
}
interface IngressSpec {
  defaultBackend?: IngressBackend;
  rules?: { host?: string; http?: { paths?: { backend: IngressBackend; [k: string]: unknown }[] } }[];
  [k: string]: unknown;
}

/** Every backend of an Ingress (default and per path), for rewriting in place. */
export function ingressBackends(spec: IngressSpec): IngressBackend[] {
  const out: IngressBackend[] = [];
  if (spec.defaultBackend) out.push(spec.defaultBackend);
  for (const r of spec.rules ?? []) for (const p of r.http?.paths ?? []) out.push(p.backend);
  return out;
}

export const canaryIngressName = (ingress: string) => `${ingress}-canary`;

/**
 * The NGINX canary Ingress: the named Ingress, its backends on the user's Service pointed at
 * the canary Service, weight 0, owned (labels and annotations) like the Deployment `owner`.
 */
export function canaryIngress(ingress: KubeObject, target: CanaryTarget, owner: KubeObject): KubeObject | PlanError {
  const spec = clone(specOf<IngressSpec>(ingress));
  const backends = ingressBackends(spec).filter((b) => b.service?.name === target.service || b.service?.name === target.stableService);
  if (backends.length === 0) return new PlanError(`Ingress ${ingress.metadata.name} has no backend on Service ${target.service}`, ['trafficRouting', 'nginx', 'ingress']);
  for (const b of backends) b.service!.name = target.canaryService;
  // Only the rules that reach the Service: nginx requires a canary's host and path to exist on a main Ingress.
  if (spec.rules) spec.rules = spec.rules.filter((r) => (r.http?.paths ?? []).some((p) => p.backend.service?.name === target.canaryService));
  if (spec.defaultBackend && spec.defaultBackend.service?.name !== target.canaryService) delete spec.defaultBackend;
  delete spec.tls; // the main Ingress terminates TLS for the host
  const owned = ownedMeta(owner, canaryIngressName(ingress.metadata.name), target);
  const meta: KubeObject['metadata'] = {
    ...owned,
    labels: { ...(ingress.metadata.labels ?? {}), ...owned.labels },
    annotations: {
      ...Object.fromEntries(Object.entries(ingress.metadata.annotations ?? {}).filter(([k]) => k !== ANNOTATION_ROUTING_ORIGINAL && !k.startsWith('kubectl.kubernetes.io/'))),
      ...owned.annotations,
      [NGINX_CANARY]: 'true',
      [NGINX_CANARY_WEIGHT]: '0',
    },
  };
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: meta, spec };
}

/**
 * The objects with `flotilla.dev/track: stable` on the pod template of the Deployment
 * `deployment` (for the renderer, when the application's strategy is canary). The
 * selector is left alone: a Deployment's selector cannot change, and the stable
 * ReplicaSets' pod-template-hash keeps them from adopting canary pods.
 */
export function withStableTrack(objects: readonly KubeObject[], deployment: string): KubeObject[] {
  return objects.map((o) => {
    if (o.kind !== 'Deployment' || o.metadata.name !== deployment) return o;
    const c = clone(o);
    const spec = specOf<DeploymentSpec>(c);
    spec.template ??= {};
    spec.template.metadata ??= {};
    spec.template.metadata.labels = { ...(spec.template.metadata.labels ?? {}), [LABEL_TRACK]: Track.stable };
    c.spec = spec;
    return c;
  });
}

/** Whether a Deployment's pod template carries the stable track (what the stable Service selects). */
export function hasStableTrack(deployment: KubeObject): boolean {
  return specOf<DeploymentSpec>(deployment).template?.metadata?.labels?.[LABEL_TRACK] === Track.stable;
}

export const describeTarget = (t: CanaryTarget) => describeObject({ apiVersion: 'apps/v1', kind: 'Deployment', name: t.deployment, namespace: t.namespace });

// ---------------------------------------------------------------------------
// Replicas for a weight

const checkWeight = (weight: number) => {
  if (!Number.isInteger(weight) || weight < 0 || weight > 100) throw new RangeError(`weight must be a whole number from 0 to 100, got ${weight}`);
};
const checkTotal = (total: number) => {
  if (!Number.isInteger(total) || total < 0) throw new RangeError(`total replicas must be a whole number >= 0, got ${total}`);
};

/**
 * The replica-ratio router's split of `total` replicas at `weight` % canary:
 * canary = ceil(total*w/100) for 0 < w < 100 (at least 1), stable = total - canary but never
 * below 1 while w < 100: the canary is capped at total - 1 then (10 replicas at 99 %: 1 + 9),
 * so stable + canary = total, except a 1-replica application, which runs 1 + 1 during its
 * canary. 0 % is all stable, 100 % all canary.
 */
export function replicaSplit(total: number, weight: number): { stable: number; canary: number } {
  checkTotal(total);
  checkWeight(weight);
  if (weight === 0 || total === 0) return { stable: total, canary: 0 };
  if (weight === 100) return { stable: 0, canary: total };
  if (total === 1) return { stable: 1, canary: 1 };
  const canary = Math.min(total - 1, Math.max(1, Math.ceil((total * weight) / 100)));
  return { stable: total - canary, canary };
}

/** `setCanaryScale`, as Argo Rollouts has it: a count, a percentage of the total, or back to the traffic weight. */
export const CanaryScaleSchema = z
  .object({
    replicas: z.number().int().min(0).max(10_000).optional(),
    weight: z.number().int().min(0).max(100).optional(),
    matchTrafficWeight: z.literal(true).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const n = [s.replicas, s.weight, s.matchTrafficWeight].filter((v) => v !== undefined).length;
    if (n !== 1) ctx.addIssue({ code: 'custom', message: 'must set exactly one of "replicas", "weight" or "matchTrafficWeight": true' });
  });
export type CanaryScale = { replicas: number } | { weight: number } | { matchTrafficWeight: true };

/**
 * Replicas of each side at traffic weight `weight`, given the last `setCanaryScale` (none:
 * match the traffic weight). The replica-ratio router's weight *is* its replicas, so it
 * takes no setCanaryScale (RangeError; the plan refuses it, as Argo Rollouts does without
 * traffic routing). With a traffic router the stable side keeps all `total` replicas until
 * promotion (an abort moves traffic back at once, nothing to scale up), and the canary runs
 * ceil(total*w/100) (at least 1 while w > 0), `replicas`, or ceil(total*weight/100).
 */
export function canaryScale(kind: RouterKind, total: number, weight: number, scale?: CanaryScale): { stable: number; canary: number } {
  checkTotal(total);
  checkWeight(weight);
  if (kind === RouterKind.replicaRatio) {
    if (scale && !('matchTrafficWeight' in scale)) throw new RangeError('setCanaryScale needs a traffic router: with replica ratio the replicas are the weight');
    return replicaSplit(total, weight);
  }
  const byWeight = (w: number) => (w === 0 || total === 0 ? 0 : Math.max(1, Math.ceil((total * w) / 100)));
  if (!scale || 'matchTrafficWeight' in scale) return { stable: total, canary: byWeight(weight) };
  if ('replicas' in scale) return { stable: total, canary: scale.replicas };
  checkWeight(scale.weight);
  return { stable: total, canary: byWeight(scale.weight) };
}

/** The canary's share of traffic (0-100, rounded) from two weights as a router reads them back. */
export function weightOf(stable: number, canary: number): number {
  const sum = stable + canary;
  return sum <= 0 ? 0 : Math.round((100 * canary) / sum);
}
