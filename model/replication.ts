/**
 * Image replication as data (pure): which images each wave's clusters pull
 * from a registry other than the image's own (their inventory `mirror`, or
 * `overrides.registry`), grouped by target registry; and the request and
 * status of a standalone replication (`POST /v1/replications`).
 *
 * A delivery's plan gets a `replicate` wave step first in every wave when any
 * wave has something to copy (every wave, so that step indices mean the same
 * in each; a wave with nothing to copy passes at once). The step carries its
 * copies, so the workflow needs nothing else: no credentials, only names,
 * hosts and pinned references.
 */
import { z } from 'zod';
import { formatImageRef, parseImageRef, ImageRefError } from './image.ts';
import { dnsLabel, durationString } from './names.ts';
import { imagesIn } from './bundle.ts';
import type { KubeObject } from './objects.ts';
import type { ImageDigests } from './plan.ts';
import type { RegistryInfo } from './registry.ts';

/** One image to put in one target registry, by digest. */
export interface ImageCopy {
  /** Where it comes from, pinned: `<source host>/<repo>@sha256:...`. */
  source: string;
  /** Where it goes, pinned: `<target host>/<repo>@sha256:...` (what the clusters pull). */
  target: string;
  /** The tag the request named, if any (Harbor's policy filters by tag). */
  tag?: string;
}

/** Every copy into one registry. */
export interface ReplicationTarget {
  /** The registry's name in the inventory (its host when the inventory does not list it). */
  registry: string;
  host: string;
  /**
   * `copier`: Flotilla's OCI copier moves the blobs; `harbor`: Harbor's own replication (a policy and an
   * execution) moves them: the source Harbor pushes to the target, or, when only the target is a Harbor,
   * the target pulls from the source.
   */
  via: 'copier' | 'harbor';
  /** The Harbor that replicates (via harbor): the source's name (it pushes), or the target's own (it pulls). */
  harbor?: string;
  /** Via a Harbor that pulls (harbor = registry): the inventory name of the registry it pulls from. */
  pullFrom?: string;
  copies: ImageCopy[];
}

export interface ReplicateStep {
  kind: 'replicate';
  targets: ReplicationTarget[];
}

/** The default bound on a wave's replication (a registry down is waited for until then). */
export const DEFAULT_REPLICATION_TIMEOUT = '30m';

/**
 * The copies a cluster needs: each image it runs that is pinned by a digest the delivery resolved
 * from another registry's reference of the same repository (the image moved to a mirror).
 */
export function copiesFor(images: readonly string[], digests: ImageDigests): ImageCopy[] {
  const sources: { ref: ReturnType<typeof parseImageRef>; digest: string }[] = [];
  for (const [ref, digest] of Object.entries(digests)) {
    try {
      sources.push({ ref: parseImageRef(ref), digest });
    } catch (e) {
      if (!(e instanceof ImageRefError)) throw e;
    }
  }
  const out: ImageCopy[] = [];
  for (const image of images) {
    let r: ReturnType<typeof parseImageRef>;
    try {
      r = parseImageRef(image);
    } catch (e) {
      if (e instanceof ImageRefError) continue;
      throw e;
    }
    if (!r.digest) continue;
    const from = sources.find((s) => s.digest === r.digest && s.ref.repository === r.repository && s.ref.registry !== r.registry);
    // Pulled from the registry the image names (or a digest the request gave, already where it is): nothing to copy.
    if (!from || sources.some((s) => s.digest === r.digest && s.ref.repository === r.repository && s.ref.registry === r.registry)) continue;
    out.push({
      source: formatImageRef({ registry: from.ref.registry, repository: r.repository, digest: r.digest }),
      target: formatImageRef({ registry: r.registry, repository: r.repository, digest: r.digest }),
      ...(from.ref.tag ? { tag: from.ref.tag } : {}),
    });
  }
  return out;
}

const hostKey = (h: string) => h.toLowerCase();

/**
 * How one image moves from `source` to `target` (either may be missing from the inventory): a source
 * Harbor pushes with its own replication; else a target Harbor pulls from a source it can name; else the copier.
 */
export function replicationRoute(source: RegistryInfo | undefined, target: RegistryInfo | undefined): Pick<ReplicationTarget, 'via' | 'harbor' | 'pullFrom'> {
  if (source?.type === 'harbor' && target) return { via: 'harbor', harbor: source.name };
  if (target?.type === 'harbor' && source) return { via: 'harbor', harbor: target.name, pullFrom: source.name };
  return { via: 'copier' };
}

/** Groups copies by target registry (in order of first appearance), each copy once; names and routes each target. */
export function groupByTarget(copies: readonly ImageCopy[], registries: readonly RegistryInfo[]): ReplicationTarget[] {
  const byHost = new Map(registries.map((r) => [hostKey(r.host), r]));
  const targets = new Map<string, ReplicationTarget>();
  for (const c of copies) {
    const host = parseImageRef(c.target).registry;
    const sourceHost = parseImageRef(c.source).registry;
    const source = byHost.get(hostKey(sourceHost));
    const reg = byHost.get(hostKey(host));
    const route = replicationRoute(source, reg);
    const key = `${hostKey(host)} ${route.harbor ?? ''} ${route.pullFrom ?? ''}`;
    let t = targets.get(key);
    if (!t) {
      t = { registry: reg?.name ?? host, host, ...route, copies: [] };
      targets.set(key, t);
    }
    if (!t.copies.some((x) => x.target === c.target)) t.copies.push(c);
  }
  return [...targets.values()];
}

/** What `withReplication` needs of a prepared delivery (model/steps.ts PreparedDelivery). */
interface PlanLike {
  digests: ImageDigests;
  waves: { clusters: string[]; steps: { kind: string }[] }[];
  clusters: Record<string, { objects: KubeObject[] }>;
}

/**
 * Puts a `replicate` step first in every wave when some wave's clusters pull an image from a registry other
 * than its own (unless the request opts out). Returns the same plan when there is nothing to replicate.
 */
export function withReplication<P extends PlanLike>(prepared: P, registries: readonly RegistryInfo[], replicate: boolean | undefined): P {
  if (replicate === false) return prepared;
  const perWave = prepared.waves.map((w) =>
    groupByTarget(
      w.clusters.flatMap((n) => copiesFor(imagesIn(prepared.clusters[n]?.objects ?? []), prepared.digests)),
      registries,
    ),
  );
  if (perWave.every((t) => t.length === 0)) return prepared;
  return {
    ...prepared,
    waves: prepared.waves.map((w, i) => ({ ...w, steps: [{ kind: 'replicate', targets: perWave[i]! } as ReplicateStep, ...w.steps] })),
  };
}

// --- POST /v1/replications ---------------------------------------------------------------------

export const ReplicationRequestSchema = z
  .object({
    /** The image to replicate (tag or digest), in one of the inventory's registries or any reachable one. */
    image: z.string().min(1).max(1024).refine((s) => {
      try {
        parseImageRef(s);
        return true;
      } catch {
        return false;
      }
    }, 'must be an image reference: [registry/]repository[:tag][@sha256:...]'),
    /** Registry names of the inventory, or "all" (every registry but the image's own). */
    to: z.union([z.array(dnsLabel).min(1).max(100), z.literal('all')]),
    /** Only these platforms of a multi-platform image (os/arch[/variant]); the target then has an index of its own. */
    platforms: z.array(z.string().regex(/^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/, 'must be os/arch[/variant]')).min(1).optional(),
    /** How long a registry that is down is waited for. */
    timeout: durationString.default(DEFAULT_REPLICATION_TIMEOUT),
  })
  .strict();
export type ReplicationRequest = z.infer<typeof ReplicationRequestSchema>;

export class ReplicationPlanError extends Error {
  readonly path: (string | number)[];
  constructor(message: string, path: (string | number)[]) {
    super(message);
    this.path = path;
  }
}

/** The target registries of a replication request (ReplicationPlanError: an unknown name, or only the source). */
export function replicationTargets(request: Pick<ReplicationRequest, 'image' | 'to'>, registries: readonly RegistryInfo[]): RegistryInfo[] {
  const sourceHost = hostKey(parseImageRef(request.image).registry);
  if (request.to === 'all') {
    const all = registries.filter((r) => hostKey(r.host) !== sourceHost);
    if (all.length === 0) throw new ReplicationPlanError(`no registry besides the image's own (${sourceHost}) in the inventory`, ['to']);
    return all;
  }
  const byName = new Map(registries.map((r) => [r.name, r]));
  const seen = new Set<string>();
  return request.to.map((name, i) => {
    const r = byName.get(name);
    if (!r) throw new ReplicationPlanError(`unknown registry "${name}" (known: ${registries.map((x) => x.name).join(', ') || 'none'})`, ['to', i]);
    if (seen.has(name)) throw new ReplicationPlanError(`registry "${name}" is listed twice`, ['to', i]);
    if (hostKey(r.host) === sourceHost) throw new ReplicationPlanError(`registry "${name}" is the image's own registry`, ['to', i]);
    seen.add(name);
    return r;
  });
}

export type ReplicationPhase = 'Pending' | 'Progressing' | 'Succeeded' | 'Failed';

export interface ReplicationTargetStatus {
  registry: string;
  host: string;
  phase: ReplicationPhase;
  /** The image there, pinned by digest (once copied and checked). */
  pinned?: string;
  digest?: string;
  message: string;
  blobs?: { total: number; copied: number; skipped: number; mounted: number };
  attempts?: number;
}

export interface ReplicationStatus {
  id: string;
  image: string;
  /** The source pinned by digest (once resolved). */
  source?: string;
  digest?: string;
  phase: ReplicationPhase;
  targets: Record<string, ReplicationTargetStatus>;
  requestedBy: string;
  startedAt: string;
  finishedAt?: string;
  message: string;
}

export interface ReplicationWorkflowInput {
  image: string;
  /** The image's own registry, when the inventory has it (a Harbor replicates by its own policies). */
  source?: RegistryInfo;
  targets: RegistryInfo[];
  platforms?: string[];
  timeout: string;
  requestedBy: string;
}
