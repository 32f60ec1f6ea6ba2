/**
 * Where an application's objects come from, as teams already keep them:
 *   manifests  a list of objects (JSON), or multi-document YAML text
 *   kustomize  an overlay (its files in the request) rendered by the real `kustomize build`
 *   helm       a chart (oci://... or a packaged chart in the request) rendered by the real `helm template`
 *   version    exactly what an earlier Healthy delivery rendered in each cluster (a rollback)
 * Rendering happens on the hub, once per delivery (per cluster where Helm
 * values differ by cluster); what was rendered is kept with the delivery.
 */
import { z } from 'zod';
import { parseAllDocuments } from 'yaml';
import { dnsLabel } from './names.ts';

/** A Kubernetes object name (DNS subdomain). */
export const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS subdomain (a-z, 0-9, -, .)');

export const KubeObjectSchema = z
  .object({
    apiVersion: z.string().min(1),
    kind: z.string().regex(/^[A-Z][A-Za-z0-9]*$/, 'must be a Kubernetes kind such as Deployment'),
    metadata: z.looseObject({ name: objectName, namespace: dnsLabel.optional() }),
  })
  .loose();

/** Why a Secret with values is refused: it would be kept in Temporal's history with the request. */
export const SECRET_BY_REFERENCE =
  'Secrets are delivered by reference: their values would be stored in workflow history, so create the Secret in each cluster (by hand or with an external-secrets operator) and reference it by name';

/** The field of a Secret that carries values (data or stringData), if any. */
export function secretValues(o: { kind: string; [k: string]: unknown }): 'data' | 'stringData' | undefined {
  if (o.kind !== 'Secret') return undefined;
  for (const f of ['data', 'stringData'] as const) {
    const v = o[f];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) return f;
  }
  return undefined;
}

/** Objects of multi-document YAML (or JSON) text, each checked like a listed one; errors name the document. */
export function parseManifestText(text: string): { objects: unknown[]; errors: { doc: number; message: string }[] } {
  const objects: unknown[] = [];
  const errors: { doc: number; message: string }[] = [];
  parseAllDocuments(text).forEach((d, doc) => {
    if ('errors' in d && d.errors.length) {
      errors.push({ doc, message: d.errors[0]!.message.split('\n')[0]! });
      return;
    }
    const v: unknown = d.toJS();
    if (v === null || v === undefined) return; // an empty document ("---" at the end)
    if (Array.isArray(v)) objects.push(...v);
    else if (typeof v === 'object' && (v as { kind?: string }).kind === 'List' && Array.isArray((v as { items?: unknown }).items)) {
      objects.push(...((v as { items: unknown[] }).items));
    } else objects.push(v);
  });
  return { objects, errors };
}

const manifests = z.union([z.string().min(1), z.array(z.unknown()).min(1)]).transform((m, ctx): z.infer<typeof KubeObjectSchema>[] => {
  let list: unknown[];
  if (typeof m === 'string') {
    const parsed = parseManifestText(m);
    for (const e of parsed.errors) ctx.addIssue({ code: 'custom', message: `document ${e.doc + 1} is not valid YAML: ${e.message}` });
    list = parsed.objects;
    if (list.length === 0 && parsed.errors.length === 0) ctx.addIssue({ code: 'custom', message: 'holds no object' });
  } else list = m;
  const out: z.infer<typeof KubeObjectSchema>[] = [];
  list.forEach((o, i) => {
    const r = KubeObjectSchema.safeParse(o);
    const carried = r.success ? secretValues(r.data) : undefined;
    if (carried) ctx.addIssue({ code: 'custom', path: [i, carried], message: SECRET_BY_REFERENCE });
    else if (r.success) out.push(r.data);
    else for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [i, ...issue.path] } as never);
  });
  return out;
});

/** A path inside a kustomization: relative, no "..". */
const relPath = z
  .string()
  .min(1)
  .max(512)
  .regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._/-]+$/, 'must be a relative path without ".." (a-z, A-Z, 0-9, ., _, -, /)');

const base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64');

const KustomizeSchema = z
  .object({
    /** The files of the kustomization (overlay and bases): path -> content. */
    files: z.record(relPath, z.string().max(1_000_000)),
    /** The directory to build, relative to the files' root. */
    path: z.union([relPath, z.literal('.')]).default('.'),
  })
  .strict()
  .superRefine((k, ctx) => {
    const dir = k.path === '.' ? '' : `${k.path.replace(/\/$/, '')}/`;
    if (!['kustomization.yaml', 'kustomization.yml', 'Kustomization'].some((f) => `${dir}${f}` in k.files)) {
      ctx.addIssue({ code: 'custom', path: ['files'], message: `no kustomization.yaml in ${k.path === '.' ? 'the root' : k.path}` });
    }
  });

const HelmSchema = z
  .object({
    /** oci://host/repository/chart (the stack's registries hold charts) */
    chart: z.string().regex(/^oci:\/\/[^\s]+$/, 'must be oci://<registry>/<repository>/<chart>').optional(),
    /** A packaged chart (.tgz), base64. */
    archive: base64.max(4_000_000).optional(),
    version: z.string().regex(/^[A-Za-z0-9.+_-]{1,64}$/, 'must be a chart version such as 1.2.3').optional(),
    values: z.record(z.string(), z.unknown()).default({}),
    /** The release name Helm renders with (default: the application's name). */
    releaseName: dnsLabel.optional(),
  })
  .strict()
  .refine((h) => (h.chart === undefined) !== (h.archive === undefined), { message: 'give exactly one of chart (oci://...) and archive' });

export type Source =
  | { manifests: z.infer<typeof KubeObjectSchema>[] }
  | { kustomize: z.infer<typeof KustomizeSchema> }
  | { helm: z.infer<typeof HelmSchema> }
  | { version: number };

/**
 * Exactly one of manifests, kustomize, helm, version: validated as one strict
 * object (so an error names its field, e.g. source.helm.chart), typed as the union.
 */
export const SourceSchema = z
  .object({
    manifests: manifests.optional(),
    kustomize: KustomizeSchema.optional(),
    helm: HelmSchema.optional(),
    version: z.number().int().min(1).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const given = Object.entries(s).filter(([, v]) => v !== undefined).map(([k]) => k);
    if (given.length !== 1) ctx.addIssue({ code: 'custom', message: `give exactly one of manifests, kustomize, helm, version${given.length ? ` (got ${given.join(', ')})` : ''}` });
  })
  .transform((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Source);

export type SourceKind = 'manifests' | 'kustomize' | 'helm' | 'version';
export const sourceKind = (s: Source): SourceKind => Object.keys(s)[0] as SourceKind;
