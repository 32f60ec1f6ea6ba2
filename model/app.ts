import { z } from 'zod';
import { dnsLabel, labelMap } from './names.ts';
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

export const OverrideSchema = z
  .object({
    replicas: z.number().int().min(0).optional(),
    env: envMap.optional(),
    resources: ResourcesSchema.optional(),
    /** Pull from this registry (host[:port]) instead of the one in `image`: a regional mirror. */
    registry: z.string().min(1).optional(),
  })
  .strict();
export type Override = z.infer<typeof OverrideSchema>;

export const Distribution = { divided: 'divided', duplicated: 'duplicated' } as const;
export type Distribution = (typeof Distribution)[keyof typeof Distribution];

export const AppSpecSchema = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    image: imageRefString,
    replicas: z.number().int().min(0).max(10_000),
    distribution: z.enum(['divided', 'duplicated']).default('divided'),
    placement: PlacementSchema,
    overrides: z.record(dnsLabel, OverrideSchema).default({}),
    template: PodTemplateSchema.default(() => ({ sidecars: [], labels: {}, annotations: {}, env: {}, ports: defaultPorts() })),
  })
  .strict()
  .superRefine((app, ctx) => {
    const names = new Set([app.name]);
    app.template.sidecars.forEach((c, i) => {
      if (names.has(c.name)) {
        ctx.addIssue({ code: 'custom', path: ['template', 'sidecars', i, 'name'], message: `container name "${c.name}" is taken (the application's own container is "${app.name}")` });
      }
      names.add(c.name);
    });
  });
export type AppSpec = z.infer<typeof AppSpecSchema>;
export type AppSpecInput = z.input<typeof AppSpecSchema>;
