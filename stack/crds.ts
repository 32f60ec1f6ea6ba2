/**
 * Resource definitions the stack registers in its clusters, vendored under
 * stack/crds/ (stack/crds/README.md says where each came from; nothing is
 * downloaded at run time):
 *
 *  - `gateway-api`: the Gateway API's standard channel (HTTPRoute, Gateway, ...,
 *    and its safe-upgrades admission policy), registered by every `up`;
 *  - `istio`: Istio's definitions (VirtualService, DestinationRule, ...), every `up`;
 *  - `argo-rollouts`: Argo Rollouts' (Rollout, AnalysisTemplate, ...), only by argoUp; read from
 *    beside the controller binary, where scripts/build-binaries.sh argo copies them from the
 *    module (3 MB we do not keep in the repository).
 *
 * Each object is server-side applied (field manager `flotilla-stack`) with a hash of
 * its content in an annotation, so a later `up` applies only what changed: one list
 * call per cluster when nothing did. Then it waits until every definition is
 * Established (its API is served).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { argoPaths } from './argo-paths.ts';
import type { KubeTarget } from './kube.ts';
import { kubeRequest } from './kube.ts';

const dir = path.join(import.meta.dirname, 'crds');
export const BUNDLES = ['gateway-api', 'istio', 'argo-rollouts'] as const;
export type Bundle = (typeof BUNDLES)[number];

/** Where a bundle's YAML files are: vendored, or (Argo Rollouts') beside its cached controller binary. */
export function bundleDir(bundle: Bundle): string {
  switch (bundle) {
    case 'gateway-api':
      return path.join(dir, 'gateway-api-v1.7.0');
    case 'istio':
      return path.join(dir, 'istio-api-v1.31.4');
    case 'argo-rollouts':
      return argoPaths().crds;
  }
}
/**
 * What every `up` registers in every cluster: the Gateway API's and Istio's, unless
 * FLOTILLA_STACK_CRDS names fewer (`gateway-api`, `istio`, comma-separated, or `none`): they
 * cost a cold `up` ~15 s and each apiserver ~220 MiB, which a stack that routes no traffic
 * (an engine benchmark's, say) can spare.
 */
export function upBundles(env = process.env.FLOTILLA_STACK_CRDS): Bundle[] {
  if (env === undefined || env.trim() === '') return ['gateway-api', 'istio'];
  if (env.trim() === 'none') return [];
  const names = env.split(',').map((x) => x.trim());
  const bad = names.filter((x) => x !== 'gateway-api' && x !== 'istio');
  if (bad.length)
    throw new Error(
      `FLOTILLA_STACK_CRDS: unknown ${bad.join(', ')} (give gateway-api, istio, both comma-separated, or none)`,
    );
  return names as Bundle[];
}

const HASH = 'stack.flotilla.dev/applied-hash';
const MANAGER = 'flotilla-stack';
const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  [k: string]: unknown;
}

/** Cluster-scoped kinds the bundles hold, and where they live. */
const PATHS: Record<string, string> = {
  CustomResourceDefinition: CRD_PATH,
  ValidatingAdmissionPolicy: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies',
  ValidatingAdmissionPolicyBinding: '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings',
};

const parsed = new Map<Bundle, Obj[]>();
/**
 * The bundle's objects, each annotated with the hash of its content. Parsing 2-3 MB of YAML
 * takes a second or more (several on a busy machine), so the result is kept as JSON in the
 * cache dir, named by the hash of the files, and in memory for the process.
 */
export function bundleObjects(bundle: Bundle): Obj[] {
  const mem = parsed.get(bundle);
  if (mem) return mem;
  const from = bundleDir(bundle);
  if (!existsSync(from))
    throw new Error(
      `${bundle}: no resource definitions in ${from}${bundle === 'argo-rollouts' ? ' (run scripts/build-binaries.sh argo)' : ''}`,
    );
  const files = readdirSync(from)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  const texts = files.map((f) => readFileSync(path.join(from, f), 'utf8'));
  const sum = createHash('sha256');
  for (const [i, t] of texts.entries()) sum.update(files[i]!).update('\0').update(t).update('\0');
  const cacheFile = path.join(cacheDir(), 'crds', `${bundle}-${sum.digest('hex').slice(0, 16)}.json`);
  if (existsSync(cacheFile)) {
    const objs = JSON.parse(readFileSync(cacheFile, 'utf8')) as Obj[];
    parsed.set(bundle, objs);
    return objs;
  }
  const objs = parseBundle(bundle, files, texts);
  mkdirSync(path.dirname(cacheFile), { recursive: true });
  writeFileSync(`${cacheFile}.${process.pid}.tmp`, JSON.stringify(objs));
  renameSync(`${cacheFile}.${process.pid}.tmp`, cacheFile);
  parsed.set(bundle, objs);
  return objs;
}

const cacheDir = () =>
  process.env.FLOTILLA_CACHE_DIR ??
  path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'flotilla');

function parseBundle(bundle: Bundle, files: string[], texts: string[]): Obj[] {
  const objs: Obj[] = [];
  for (const [i, f] of files.entries()) {
    for (const doc of parseAllDocuments(texts[i]!)) {
      if (doc.errors.length) throw new Error(`${bundle}/${f}: ${doc.errors[0]!.message}`);
      const o = doc.toJS() as Obj | null;
      if (!o) continue;
      if (!PATHS[o.kind])
        throw new Error(`${bundle}/${f}: ${o.kind} ${o.metadata?.name}: a kind the stack does not apply`);
      const hash = createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 16);
      o.metadata.annotations = { ...o.metadata.annotations, [HASH]: hash };
      objs.push(o);
    }
  }
  return objs;
}

/** The names of the bundle's resource definitions, e.g. httproutes.gateway.networking.k8s.io. */
export const definitionNames = (bundle: Bundle) =>
  bundleObjects(bundle)
    .filter((o) => o.kind === 'CustomResourceDefinition')
    .map((o) => o.metadata.name);

interface CrdView {
  metadata: { name: string; annotations?: Record<string, string> };
  status?: { conditions?: { type: string; status: string }[] };
}

/** Every definition; `metadataOnly`: without their 2+ MB of schemas (no status either). */
async function listCrds(t: KubeTarget, metadataOnly = false): Promise<Map<string, CrdView>> {
  const res = await kubeRequest(t, 'GET', CRD_PATH, undefined, {
    timeoutMs: 30_000,
    ...(metadataOnly ? { accept: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1' } : {}),
  });
  if (res.status !== 200)
    throw new Error(`listing resource definitions: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  return new Map(
    ((JSON.parse(res.body) as { items: CrdView[] | null }).items ?? []).map((c) => [c.metadata.name, c]),
  );
}

const established = (c: CrdView | undefined) =>
  Boolean(c?.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True'));

async function apply(t: KubeTarget, o: Obj): Promise<void> {
  const url = `${PATHS[o.kind]}/${o.metadata.name}?fieldManager=${MANAGER}&force=true`;
  const res = await kubeRequest(t, 'PATCH', url, o, {
    contentType: 'application/apply-patch+yaml',
    timeoutMs: 60_000,
  });
  if (res.status !== 200 && res.status !== 201)
    throw new Error(`applying ${o.kind} ${o.metadata.name}: HTTP ${res.status} ${res.body.slice(0, 500)}`);
}

/**
 * Registers the bundles' objects in one cluster (those whose hash differs, or all when
 * `force`), then waits until every definition is Established. Returns how many it applied.
 */
export async function ensureDefinitions(
  t: KubeTarget,
  bundles: Bundle[],
  opts: { timeoutMs?: number; force?: boolean } = {},
): Promise<number> {
  const objs = bundles.flatMap(bundleObjects);
  const have = await listCrds(t, true);
  const todo = objs.filter(
    (o) =>
      opts.force ||
      o.kind !== 'CustomResourceDefinition' ||
      have.get(o.metadata.name)?.metadata.annotations?.[HASH] !== o.metadata.annotations![HASH],
  );
  // The admission objects are two tiny ones: applied every time (no list of them to compare).
  const queue = [...todo];
  const worker = async () => {
    for (let o = queue.shift(); o; o = queue.shift()) await apply(t, o);
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  // Those already there with the same content were Established before (and stay so).
  if (!todo.some((o) => o.kind === 'CustomResourceDefinition')) return 0;
  const names = objs.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const now = await listCrds(t);
    const waiting = names.filter((n) => !established(now.get(n)));
    if (!waiting.length) break;
    if (Date.now() > deadline)
      throw new Error(
        `resource definitions not Established after ${(opts.timeoutMs ?? 60_000) / 1000}s: ${waiting.join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
  return todo.filter((o) => o.kind === 'CustomResourceDefinition').length;
}
