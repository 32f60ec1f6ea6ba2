/**
 * Hub activities: what workflows may know of the fleet (no credentials, no
 * paths), and the preparation of a delivery: the source rendered (the inline
 * spec by Flotilla's renderer, Kustomize and Helm by the real tools), every
 * image resolved to its digest once, waves planned, each cluster's objects
 * customized, pinned and marked.
 */
import { ApplicationFailure } from '@temporalio/common';
import { pino, type Logger } from 'pino';
import { inlineApp } from '../model/app.ts';
import { normalizeBundle } from '../model/bundle.ts';
import { parseImageRef } from '../model/image.ts';
import { toClusterInfo, type ClusterInfo, type Inventory } from '../model/inventory.ts';
import type { KubeObject } from '../model/objects.ts';
import { deepMerge, imagesOf, planPlacement, PlanError, type ImageDigests } from '../model/plan.ts';
import { FailureType } from '../model/reasons.ts';
import { toRegistryInfo, type Registry } from '../model/registry.ts';
import { withReplication } from '../model/replication.ts';
import { KubeObjectSchema, type Source } from '../model/source.ts';
import { imagesOfBundles, prepareBundle, prepareDeploy, type PreparedDelivery } from '../model/steps.ts';
import { helmTemplate, kustomizeBuild, RenderFailure, type RenderTools } from './render/tools.ts';
import { Copier, RegistryPool, type RegistryCredentials } from './registry/index.ts';
import type { HubActivities, PrepareInput } from './types.ts';

/** How an image reference becomes its digest (`sha256:...`). */
export type DigestResolver = (ref: string) => Promise<string>;

export function describeFleet(inventory: Inventory): ClusterInfo[] {
  return inventory.clusters.map(toClusterInfo);
}

const planFailed = (err: PlanError) =>
  ApplicationFailure.create({ type: FailureType.PlanFailed, nonRetryable: true, message: err.message, details: [{ path: err.path }] });

/**
 * Every image reference of the delivery and its digest: a tag resolved in its registry, a reference pinned
 * by the request taken as it is (so the replicate step knows where it comes from when a cluster's mirror
 * moves it to another registry).
 */
async function resolveAll(refs: readonly string[], resolve: DigestResolver): Promise<ImageDigests> {
  const digests: ImageDigests = {};
  for (const ref of refs) digests[ref] = parseImageRef(ref).digest ?? (await resolve(ref));
  return digests;
}

/** Rendered objects checked like listed ones: a tool's output that is not a Kubernetes object is the source's fault. */
function asObjects(tool: string, list: unknown[]): KubeObject[] {
  return list.map((o, i) => {
    const r = KubeObjectSchema.safeParse(o);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw ApplicationFailure.create({ type: RenderFailure.RenderFailed, nonRetryable: true, message: `${tool} rendered object ${i + 1} that is not a Kubernetes object: ${issue.path.join('.')}: ${issue.message}` });
    }
    return r.data as KubeObject;
  });
}

export interface Renderer {
  tools: RenderTools;
  registries: readonly Registry[];
}

async function render(source: Exclude<Source, { version: number }>, app: { name: string; namespace: string }, values: Record<string, unknown> | undefined, r: Renderer): Promise<KubeObject[]> {
  if ('manifests' in source) return source.manifests as KubeObject[];
  if ('kustomize' in source) return asObjects('kustomize build', await kustomizeBuild(r.tools, source.kustomize.files, source.kustomize.path));
  const h = source.helm;
  const host = h.chart ? h.chart.slice('oci://'.length).split('/')[0]! : '';
  const reg = r.registries.find((x) => x.host === host);
  const loopback = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(host);
  return asObjects(
    'helm template',
    await helmTemplate(r.tools, {
      ...(h.chart ? { chart: h.chart } : {}),
      ...(h.archive ? { archive: h.archive } : {}),
      ...(h.version ? { version: h.version } : {}),
      values: values ?? h.values,
      releaseName: h.releaseName ?? app.name,
      namespace: app.namespace,
      plainHttp: reg ? reg.tls === 'none' : loopback,
      insecureSkipTlsVerify: reg?.tls === 'skip-verify',
    }),
  );
}

export async function prepareDelivery(fleet: readonly ClusterInfo[], input: PrepareInput, resolve: DigestResolver, renderer: Renderer): Promise<PreparedDelivery> {
  const { request, deliveryId } = input;
  const previous = input.previous ?? {};
  const pinned = input.pinned;
  const resolveOr: DigestResolver = pinned ? async (ref) => pinned[ref] ?? resolve(ref) : resolve;
  const { app } = request;
  try {
    // Each wave first copies what its clusters pull from their regional registry (model/replication.ts).
    const replicated = (p: PreparedDelivery) => withReplication(p, renderer.registries.map(toRegistryInfo), request.replicate);
    if (!app.source) return replicated(prepareDeploy(request, fleet, await resolveAll(imagesOf(inlineApp(app)), resolveOr), deliveryId, previous));
    const source = app.source;
    if ('version' in source) throw new PlanError('a version source is prepared from the clusters, not rendered', ['app', 'source']);
    const placed = planPlacement(app, fleet, request.waves);
    const base = normalizeBundle(await render(source, app, undefined, renderer), app);
    const bases: Record<string, KubeObject[]> = {};
    for (const c of placed.clusters) {
      const values = placed.overrides[c.name]?.values;
      // Helm values that differ by cluster render that cluster on its own; everything else shares one rendering.
      bases[c.name] = values && 'helm' in source ? normalizeBundle(await render(source, app, deepMerge(source.helm.values, values), renderer), app) : base;
    }
    const digests = await resolveAll(imagesOfBundles(request, placed, bases), resolveOr);
    return replicated(prepareBundle(request, placed, bases, digests, deliveryId, previous, base));
  } catch (err) {
    if (err instanceof PlanError) throw planFailed(err);
    throw err;
  }
}

export interface HubActivityDeps {
  inventory: Inventory;
  /** The worker's registry credentials (none: anonymous). */
  credentials?: RegistryCredentials;
  logger?: Logger;
  /** A registry connection pool to share with the registry activities. */
  pool?: RegistryPool;
  /** How an image tag becomes a digest (the registry, by default; tests may give another). */
  resolveDigest?: DigestResolver;
  /** helm and kustomize (default: HELM_BIN and KUSTOMIZE_BIN from the environment, else on PATH). */
  tools?: RenderTools;
}

export function createHubActivities(deps: HubActivityDeps): HubActivities {
  const fleet = describeFleet(deps.inventory);
  let resolve = deps.resolveDigest;
  if (!resolve) {
    const log = deps.logger ?? pino({ level: 'silent' });
    const pool = deps.pool ?? new RegistryPool(deps.inventory.registries, deps.credentials ?? {}, log);
    const copier = new Copier(pool, undefined, deps.logger);
    resolve = async (ref) => (await copier.resolveDigest(ref)).digest;
  }
  const renderer: Renderer = {
    tools: deps.tools ?? { helm: process.env.HELM_BIN ?? 'helm', kustomize: process.env.KUSTOMIZE_BIN ?? 'kustomize' },
    registries: deps.inventory.registries,
  };
  return {
    async describeFleet() {
      return fleet;
    },
    async prepareDelivery(input) {
      return prepareDelivery(fleet, input, resolve!, renderer);
    },
  };
}
