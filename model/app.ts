import { z } from 'zod';
import { dnsLabel, labelMap } from './names.ts';
import { objectName, SourceSchema } from './source.ts';
import { parseImageRef, ImageRefError } from './image.ts';

export const imageRefString = z.string().superRefine((s, ctx) => {
  try {
    parseImageRef(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof ImageRefError ? e.message : String(e), params: { flotilla: 'image' } });
  }
});

const envMap = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name'), z.string());
const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a Kubernetes quantity such as 100m or 128Mi');
export const ResourcesSchema = z.object({
  requests: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).optional(),
  limits: z.object({ cpu: quantity.optional(), memory: quantity.optional() }).optional(),
});
export type Resources = z.infer<typeof ResourcesSchema>;

export const PortSchema = z.object({
  name: dnsLabel.max(15).optional(),
  containerPort: z.number().int().min(1).max(65535),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
});

const portRef = z.union([z.number().int().min(1).max(65535), dnsLabel.max(15)]);

/**
 * A Kubernetes probe with exactly one handler: HTTP GET, TCP socket, exec or gRPC,
 * and the usual timing fields (Kubernetes' own defaults apply where absent).
 */
export const ProbeSchema = z
  .object({
    httpGet: z
      .object({
        path: z.string().startsWith('/', 'must start with /').default('/'),
        port: portRef,
        scheme: z.enum(['HTTP', 'HTTPS']).optional(),
        httpHeaders: z.array(z.object({ name: z.string().min(1), value: z.string() }).strict()).optional(),
      })
      .strict()
      .optional(),
    tcpSocket: z.object({ port: portRef }).strict().optional(),
    exec: z.object({ command: z.array(z.string()).min(1) }).strict().optional(),
    grpc: z.object({ port: z.number().int().min(1).max(65535), service: z.string().optional() }).strict().optional(),
    initialDelaySeconds: z.number().int().min(0).max(3600).optional(),
    periodSeconds: z.number().int().min(1).max(3600).optional(),
    timeoutSeconds: z.number().int().min(1).max(3600).optional(),
    successThreshold: z.number().int().min(1).max(100).optional(),
    failureThreshold: z.number().int().min(1).max(1000).optional(),
  })
  .strict()
  .refine((p) => [p.httpGet, p.tcpSocket, p.exec, p.grpc].filter(Boolean).length === 1, {
    message: 'a probe needs exactly one of httpGet, tcpSocket, exec, grpc',
  });
export type Probe = z.infer<typeof ProbeSchema>;

const probes = {
  readinessProbe: ProbeSchema.optional(),
  livenessProbe: ProbeSchema.optional(),
  startupProbe: ProbeSchema.optional(),
};

// Object defaults are functions, so each parse gets its own objects (zod only shallow-copies a literal default).
const defaultPorts = (): z.infer<typeof PortSchema>[] => [{ name: 'http', containerPort: 8080, protocol: 'TCP' }];

/** A further container in every pod (a proxy, a log shipper); the application's own container comes first. */
export const SidecarSchema = z
  .object({
    name: dnsLabel,
    image: imageRefString,
    env: envMap.default({}),
    ports: z.array(PortSchema).default([]),
    resources: ResourcesSchema.optional(),
    command: z.array(z.string()).optional(),
    args: z.array(z.string()).optional(),
    ...probes,
  })
  .strict();
export type Sidecar = z.infer<typeof SidecarSchema>;

/** The pod template of the application; unknown fields are refused, not dropped. */
export const PodTemplateSchema = z
  .object({
    sidecars: z.array(SidecarSchema).default([]),
    labels: labelMap.default({}),
    annotations: z.record(z.string(), z.string()).default({}),
    env: envMap.default({}),
    ports: z.array(PortSchema).default(defaultPorts),
    resources: ResourcesSchema.optional(),
    command: z.array(z.string()).optional(),
    args: z.array(z.string()).optional(),
    ...probes,
  })
  .strict();
export type PodTemplate = z.infer<typeof PodTemplateSchema>;

export const PlacementSchema = z.union([
  z.object({ clusters: z.array(dnsLabel).min(1) }).strict(),
  z.object({ selector: labelMap.refine((m) => Object.keys(m).length > 0, 'selector needs at least one label') }).strict(),
]);
export type Placement = z.infer<typeof PlacementSchema>;

/** A JSON Patch operation (RFC 6902) on one rendered object, chosen by kind and name. */
export const PatchSchema = z
  .object({
    target: z.object({ kind: z.string().min(1), name: objectName, apiVersion: z.string().min(1).optional() }).strict(),
    op: z.enum(['add', 'remove', 'replace', 'move', 'copy', 'test']).default('replace'),
    path: z.string().regex(/^(\/[^/]*)+$/, 'must be a JSON pointer such as /spec/replicas'),
    value: z.unknown().optional(),
    from: z.string().regex(/^(\/[^/]*)+$/, 'must be a JSON pointer').optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (['add', 'replace', 'test'].includes(p.op) && !('value' in p)) ctx.addIssue({ code: 'custom', path: ['value'], message: `${p.op} needs a value` });
    if (['move', 'copy'].includes(p.op) && p.from === undefined) ctx.addIssue({ code: 'custom', path: ['from'], message: `${p.op} needs from` });
  });
export type Patch = z.infer<typeof PatchSchema>;

/**
 * What differs in one cluster (or in every cluster a selector picks). The
 * shortcuts users reach for most, and JSON patches for anything else.
 */
export const OverrideSchema = z
  .object({
    /** This cluster's replicas (of every replicated workload); the rest of the total is divided among the others. */
    replicas: z.number().int().min(0).optional(),
    /** Environment variables added to every container (the inline spec: its own container). */
    env: envMap.optional(),
    resources: ResourcesSchema.optional(),
    /** Pull from this registry (host[:port]) instead of the one each image names: a regional mirror. */
    registry: z.string().min(1).optional(),
    /** The image of containers by name. */
    images: z.record(dnsLabel, imageRefString).optional(),
    /** JSON patches on rendered objects. */
    patches: z.array(PatchSchema).optional(),
    /** Helm values merged over the source's values for this cluster (a Helm source only). */
    values: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type Override = z.infer<typeof OverrideSchema>;

/** Overrides for every cluster whose labels (region, zone, provider and its own) match; a cluster's own override wins. */
export const SelectorOverrideSchema = OverrideSchema.extend({
  clusterSelector: labelMap.refine((m) => Object.keys(m).length > 0, 'clusterSelector needs at least one label'),
}).strict();
export type SelectorOverride = z.infer<typeof SelectorOverrideSchema>;

export const Distribution = { divided: 'divided', duplicated: 'duplicated' } as const;
export type Distribution = (typeof Distribution)[keyof typeof Distribution];

export const defaultTemplate = (): PodTemplate => ({ sidecars: [], labels: {}, annotations: {}, env: {}, ports: defaultPorts() });

/**
 * An application: either Flotilla's own spec (`image`, `replicas`, `template`:
 * one Deployment and its Service) or a `source` of the objects teams already
 * have (manifests, a Kustomize overlay, a Helm chart), delivered as they are,
 * with per-cluster overrides and replica distribution applied on top.
 */
export const AppSpecSchema = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    source: SourceSchema.optional(),
    /** The inline spec's image (required without a source). */
    image: imageRefString.optional(),
    /** The inline spec's replicas; with a source, the total of every replicated workload (else each keeps its own). */
    replicas: z.number().int().min(0).max(10_000).optional(),
    distribution: z.enum(['divided', 'duplicated']).default('divided'),
    placement: PlacementSchema,
    overrides: z.record(dnsLabel, OverrideSchema).default({}),
    selectorOverrides: z.array(SelectorOverrideSchema).default([]),
    /** The inline spec's pod template (not with a source). */
    template: PodTemplateSchema.optional(),
  })
  .strict()
  .superRefine((app, ctx) => {
    if (!app.source) {
      if (app.image === undefined) ctx.addIssue({ code: 'custom', path: ['image'], message: 'is required (or give a source)' });
      if (app.replicas === undefined) ctx.addIssue({ code: 'custom', path: ['replicas'], message: 'is required (or give a source)' });
    } else if (app.template !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['template'], message: 'is for the inline spec; with a source, change its objects or use overrides' });
    }
    const overrides = [...Object.entries(app.overrides).map(([c, o]) => ({ path: ['overrides', c], o })), ...app.selectorOverrides.map((o, i) => ({ path: ['selectorOverrides', i], o }))];
    for (const { path, o } of overrides) {
      if (o.values !== undefined && !(app.source && 'helm' in app.source)) ctx.addIssue({ code: 'custom', path: [...path, 'values'], message: 'applies to a Helm source only' });
      if (o.resources !== undefined && app.source) ctx.addIssue({ code: 'custom', path: [...path, 'resources'], message: 'is for the inline spec; with a source, use patches' });
    }
    const names = new Set([app.name]);
    (app.template?.sidecars ?? []).forEach((c, i) => {
      if (names.has(c.name)) {
        ctx.addIssue({ code: 'custom', path: ['template', 'sidecars', i, 'name'], message: `container name "${c.name}" is taken (the application's own container is "${app.name}")` });
      }
      names.add(c.name);
    });
  });
export type AppSpec = z.infer<typeof AppSpecSchema>;
export type AppSpecInput = z.input<typeof AppSpecSchema>;

/** Flotilla's own spec: what the inline renderer needs, all present. */
export type InlineApp = AppSpec & { image: string; replicas: number; template: PodTemplate };
export const isInline = (app: AppSpec): app is InlineApp => !app.source;
/** The inline spec with its template filled in (validation guarantees image and replicas). */
export function inlineApp(app: AppSpec): InlineApp {
  if (app.source) throw new Error('not an inline application');
  return { ...app, image: app.image!, replicas: app.replicas!, template: app.template ?? defaultTemplate() };
}

/** Larger sources than this are not copied into an application's record (its state travels through continue-as-new). */
const SPEC_KEEP_BYTES = 16 * 1024;

/**
 * The spec as the record keeps it: whole when small; with a large source (manifests, a kustomization, an uploaded
 * chart) replaced by `{ version: N }`, which names exactly what was rendered and is itself a valid source.
 */
export function compactSpec(app: AppSpec, version: number): AppSpec {
  if (!app.source || 'version' in app.source || JSON.stringify(app.source).length <= SPEC_KEEP_BYTES) return app;
  return { ...app, source: { version } };
}
