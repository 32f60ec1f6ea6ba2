/**
 * Pure calculators: placement, replica distribution, waves, per-cluster targets.
 * No I/O; used by the API (to refuse a request that cannot be planned) and by
 * the deploy workflow (deterministic, replayed).
 */
import type { ClusterInfo } from './inventory.ts';
import { inlineApp, type AppSpec, type InlineApp, type Override, type Placement } from './app.ts';
import { formatImageRef, parseImageRef, withRegistry } from './image.ts';

export class PlanError extends Error {
  readonly path: (string | number)[];
  constructor(message: string, path: (string | number)[]) {
    super(message);
    this.name = 'PlanError';
    this.path = path;
  }
}

/** Clusters the placement selects, in inventory order. */
export function resolvePlacement(placement: Placement, fleet: readonly ClusterInfo[], path: (string | number)[] = ['placement']): ClusterInfo[] {
  if ('clusters' in placement) {
    const byName = new Map(fleet.map((c) => [c.name, c]));
    const seen = new Set<string>();
    placement.clusters.forEach((name, i) => {
      if (!byName.has(name)) throw new PlanError(`unknown cluster "${name}" (known: ${fleet.map((c) => c.name).join(', ')})`, [...path, 'clusters', i]);
      if (seen.has(name)) throw new PlanError(`cluster "${name}" is listed twice`, [...path, 'clusters', i]);
      seen.add(name);
    });
    return fleet.filter((c) => seen.has(c.name));
  }
  const chosen = fleet.filter((c) => Object.entries(placement.selector).every(([k, v]) => c.labels[k] === v));
  if (chosen.length === 0) throw new PlanError(`no cluster matches selector ${JSON.stringify(placement.selector)}`, [...path, 'selector']);
  return chosen;
}

/**
 * Divides `total` replicas over clusters in proportion to `weights`, at least
 * one each (largest-remainder method on what is left after the minimum).
 * total 0 gives 0 everywhere. Throws when 0 < total < weights.length.
 */
export function divideReplicas(total: number, weights: readonly number[]): number[] {
  const n = weights.length;
  if (n === 0) return [];
  if (!Number.isInteger(total) || total < 0) throw new RangeError(`total must be a whole number >= 0, got ${total}`);
  if (weights.some((w) => !(w > 0) || !Number.isFinite(w))) throw new RangeError('weights must be positive');
  if (total === 0) return weights.map(() => 0);
  if (total < n) throw new RangeError(`${total} replicas cannot give each of ${n} clusters at least one`);
  const rest = total - n;
  // Scaled by the largest weight, so huge capacities cannot overflow the sum to Infinity (NaN shares).
  const max = Math.max(...weights);
  const scaled = weights.map((w) => w / max);
  const sum = scaled.reduce((a, b) => a + b, 0);
  const exact = scaled.map((w) => (rest * w) / sum);
  const out = exact.map((x) => 1 + Math.floor(x));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact
    .map((x, i) => ({ i, frac: x - Math.floor(x) }))
    .sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (let k = 0; left > 0; k++, left--) out[order[k % n]!.i]! += 1;
  return out;
}

/** Waves as given (each placed cluster in exactly one), or one wave of every placed cluster. */
export function planWaves(placed: readonly ClusterInfo[], waves?: readonly (readonly string[])[]): string[][] {
  const names = placed.map((c) => c.name);
  if (!waves) return [names];
  const placedSet = new Set(names);
  const seen = new Set<string>();
  waves.forEach((wave, w) =>
    wave.forEach((name, i) => {
      if (!placedSet.has(name)) throw new PlanError(`cluster "${name}" is not placed (placed: ${names.join(', ')})`, ['waves', w, i]);
      if (seen.has(name)) throw new PlanError(`cluster "${name}" is in more than one wave`, ['waves', w, i]);
      seen.add(name);
    }),
  );
  const missing = names.filter((n) => !seen.has(n));
  if (missing.length > 0) throw new PlanError(`placed clusters in no wave: ${missing.join(', ')}`, ['waves']);
  return waves.map((w) => [...w]);
}

export interface ClusterTarget {
  cluster: string;
  wave: number;
  taskQueue: string;
  replicas: number;
  /** The application's image in this cluster: pinned by digest when planned with digests, from the mirror if overridden. */
  image: string;
  /** Sidecar images by container name, pinned like `image` (absent when planned without digests). */
  sidecarImages?: Record<string, string>;
  env: Record<string, string>;
  resources?: InlineApp['template']['resources'];
}

/** Labels of a cluster as selectors see them (its own, plus region, zone, provider). */
const matches = (c: ClusterInfo, selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => c.labels[k] === v);

/**
 * The override that applies in one cluster: every selector override that picks
 * it, in order, then its own (a later one wins field by field; env and images
 * merge; patches add up; Helm values merge deeply).
 */
export function effectiveOverride(app: AppSpec, c: ClusterInfo): Override {
  const layers = [...app.selectorOverrides.filter((o) => matches(c, o.clusterSelector)), ...(app.overrides[c.name] ? [app.overrides[c.name]!] : [])];
  const out: Override = {};
  for (const o of layers) {
    if (o.replicas !== undefined) out.replicas = o.replicas;
    if (o.registry !== undefined) out.registry = o.registry;
    if (o.resources !== undefined) out.resources = o.resources;
    if (o.env) out.env = { ...(out.env ?? {}), ...o.env };
    if (o.images) out.images = { ...(out.images ?? {}), ...o.images };
    if (o.patches) out.patches = [...(out.patches ?? []), ...o.patches];
    if (o.values) out.values = deepMerge(out.values ?? {}, o.values);
  }
  return out;
}

/** Helm's merge of values: objects merge key by key, anything else is replaced. */
export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const old = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && old && typeof old === 'object' && !Array.isArray(old) ? deepMerge(old as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/**
 * A cluster pulls from its regional registry (the inventory's `mirror`) unless the request names another
 * (`overrides.registry`, by cluster or by selector). With `"replicate": false` it still pulls from its mirror:
 * the copy is skipped, not the mirror (a region whose registry lacks the image shows ErrImagePull).
 */
export function withMirror(o: Override, c: ClusterInfo): Override {
  return o.registry === undefined && c.mirror ? { ...o, registry: c.mirror } : o;
}

/** What any application's plan starts from: the placed clusters, the waves, each cluster's override. */
export interface Placed {
  clusters: ClusterInfo[];
  waves: string[][];
  overrides: Record<string, Override>;
}

export function planPlacement(app: AppSpec, fleet: readonly ClusterInfo[], waves?: readonly (readonly string[])[]): Placed {
  const placed = resolvePlacement(app.placement, fleet);
  const placedNames = new Set(placed.map((c) => c.name));
  for (const name of Object.keys(app.overrides)) {
    if (!placedNames.has(name)) throw new PlanError(`override for cluster "${name}", which is not placed`, ['overrides', name]);
  }
  return { clusters: placed, waves: planWaves(placed, waves), overrides: Object.fromEntries(placed.map((c) => [c.name, withMirror(effectiveOverride(app, c), c)])) };
}

/**
 * Replicas per placed cluster for a workload of `total` replicas: `duplicated`,
 * the total everywhere; `divided`, clusters with a replica override keep it and
 * the rest is divided by capacity, at least one each. `path` names the field at fault.
 */
export function replicasByCluster(total: number, placed: readonly ClusterInfo[], overrides: Record<string, Override>, distribution: AppSpec['distribution'], path: (string | number)[] = ['replicas']): Record<string, number> {
  const replicas: Record<string, number> = {};
  if (distribution === 'duplicated') {
    for (const c of placed) replicas[c.name] = overrides[c.name]?.replicas ?? total;
    return replicas;
  }
  const fixed = placed.filter((c) => overrides[c.name]?.replicas !== undefined);
  const free = placed.filter((c) => overrides[c.name]?.replicas === undefined);
  for (const c of fixed) replicas[c.name] = overrides[c.name]!.replicas!;
  const remaining = total - fixed.reduce((a, c) => a + replicas[c.name]!, 0);
  if (free.length > 0) {
    if (remaining < 0 || (remaining > 0 && remaining < free.length) || (remaining === 0 && total > 0)) {
      throw new PlanError(`replicas ${total} (after overrides: ${remaining}) cannot give each of ${free.length} cluster(s) at least one`, path);
    }
    divideReplicas(remaining, free.map((c) => c.capacity)).forEach((r, i) => (replicas[free[i]!.name] = r));
  }
  return replicas;
}

/** Digests of image references, as resolved once when a delivery is planned: `ref -> sha256:...`. */
export type ImageDigests = Record<string, string>;

/** `registry/repo@sha256:...` for a reference and its digest; a reference that has a digest keeps its own. */
export function pinImage(ref: string, digests: ImageDigests): string {
  const r = parseImageRef(ref);
  const digest = r.digest ?? digests[ref];
  if (!digest) return ref;
  return formatImageRef({ registry: r.registry, repository: r.repository, digest });
}

/** Every image an inline application's pods run (its own, then each sidecar's), once each. */
export function imagesOf(app: InlineApp): string[] {
  return [...new Set([app.image, ...app.template.sidecars.map((s) => s.image)])];
}

export interface DeployPlan {
  waves: string[][];
  targets: Record<string, ClusterTarget>;
}

function overrideImage(image: string, registry: string, cluster: string): string {
  try {
    return withRegistry(image, registry);
  } catch (e) {
    throw new PlanError(e instanceof Error ? e.message : String(e), ['overrides', cluster, 'registry']);
  }
}

/**
 * Everything a delivery of the inline spec needs to change each cluster. With
 * `digests`, every image is pinned (`repo@sha256:...`) so that every wave runs the same bits.
 */
export function planDeploy(spec: AppSpec, fleet: readonly ClusterInfo[], waves?: readonly (readonly string[])[], digests?: ImageDigests): DeployPlan {
  const app = inlineApp(spec);
  const { clusters: placed, waves: plannedWaves, overrides } = planPlacement(app, fleet, waves);
  const replicas = replicasByCluster(app.replicas, placed, overrides, app.distribution);
  const waveOf = new Map<string, number>();
  plannedWaves.forEach((w, i) => w.forEach((n) => waveOf.set(n, i)));
  const targets: Record<string, ClusterTarget> = {};
  const appImage = digests ? pinImage(app.image, digests) : app.image;
  const sidecarImages = digests ? Object.fromEntries(app.template.sidecars.map((sc) => [sc.name, pinImage(sc.image, digests)])) : undefined;
  for (const c of placed) {
    const o = overrides[c.name]!;
    const own = o.images?.[app.name];
    const base = own ? (digests ? pinImage(own, digests) : own) : appImage;
    const image = o.registry ? overrideImage(base, o.registry, c.name) : base;
    const resources = o.resources ?? app.template.resources;
    const sidecars = sidecarImages ? { ...sidecarImages } : undefined;
    for (const [name, ref] of Object.entries(o.images ?? {})) if (name !== app.name && sidecars) sidecars[name] = digests ? pinImage(ref, digests) : ref;
    targets[c.name] = {
      cluster: c.name,
      wave: waveOf.get(c.name)!,
      taskQueue: c.taskQueue,
      replicas: replicas[c.name]!,
      image,
      ...(sidecars && Object.keys(sidecars).length ? { sidecarImages: sidecars } : {}),
      env: { ...app.template.env, ...(o.env ?? {}) },
      ...(resources ? { resources } : {}),
    };
  }
  return { waves: plannedWaves, targets };
}
