/**
 * The registry activities' contract, for the workflow side (`import type`).
 * Inputs and outputs carry image references and digests only: credentials stay
 * on the worker (activities/registry/credentials.ts).
 */

export interface ResolveImageInput {
  /** An image reference, e.g. `harbor.example.com/shop/web:v2` (a tag or a digest). */
  ref: string;
}

export interface ResolvedImage {
  /** The reference asked for. */
  ref: string;
  /** The same image pinned by digest: `<host>/<repo>@sha256:...`. */
  pinned: string;
  digest: string;
  /** Media type of the manifest (an image manifest, an OCI index or a Docker manifest list). */
  mediaType: string;
  size: number;
}

export interface CopyImageInput {
  /** Source reference (tag or digest). */
  source: string;
  /**
   * Where to: `host` (same repository and tag as the source), `host/repo` (the source's tag),
   * or `host/repo:tag`. A digest is not allowed: the digest is the source's.
   */
  target: string;
  /**
   * Copy only these platforms of a multi-platform image (`os/arch[/variant]`, e.g. `linux/arm64/v8`).
   * The target then holds a new index listing just those, with a digest of its own (`filtered: true`).
   * Absent: every platform, and the digest stays the source's.
   */
  platforms?: string[];
}

export interface BlobCounts {
  /** Blobs of every manifest copied (config and layers, each digest once). */
  total: number;
  /** Uploaded to the target (streamed from the source). */
  copied: number;
  /** Already in the target repository. */
  skipped: number;
  /** Mounted from the source repository in the same registry (no data moved). */
  mounted: number;
}

export interface ByteCounts {
  total: number;
  /** Bytes sent to the target by this attempt (a resumed blob counts only what was sent after the resume). */
  uploaded: number;
  skipped: number;
  mounted: number;
}

/** An upload under way in the target registry: enough for a later attempt to resume it. */
export interface UploadSession {
  digest: string;
  /** The upload's URL as the registry gave it (no credentials in it). */
  location: string;
  /** Bytes the registry has acknowledged. */
  offset: number;
}

export interface CopyProgress {
  phase: 'manifests' | 'blobs' | 'push' | 'done';
  blobs: BlobCounts;
  bytes: ByteCounts;
  /** Bytes of the blobs finished so far plus bytes acknowledged of those under way. */
  bytesDone: number;
  /** Chunked uploads under way (the activity heartbeats them, so a retry resumes instead of restarting). */
  uploads: UploadSession[];
  /** Bytes uploaded by earlier attempts of the same activity (from their heartbeats). */
  uploadedBefore: number;
}

export interface CopyImageResult {
  /** The source pinned by digest. */
  source: string;
  /** The target pinned by digest: `<host>/<repo>@sha256:...`; pull this. */
  target: string;
  /** The tag pushed too, when there is one: `<host>/<repo>:<tag>`. */
  targetTag?: string;
  /** Digest of what the target now holds (the source's, unless `filtered`). */
  digest: string;
  sourceDigest: string;
  mediaType: string;
  /** Platforms in the target (for a multi-platform image). */
  platforms?: string[];
  /** True when `platforms` selected a subset: the target holds a new index with its own digest. */
  filtered: boolean;
  /** Manifests pushed (an index counts with each of its manifests). */
  manifests: number;
  blobs: BlobCounts;
  bytes: ByteCounts;
  /** Uploads resumed from an earlier attempt, with the offset each resumed at. */
  resumed: { digest: string; offset: number }[];
  /** Uploads an earlier attempt started that the registry could not resume (started again from zero). */
  restarted: string[];
  /** Bytes uploaded by earlier attempts of this activity. */
  uploadedBefore: number;
  attempt: number;
  durationMs: number;
}

export interface CheckImageInput {
  /** host/repo[:tag] (a digest in it is ignored: `digest` is what is checked). */
  ref: string;
  digest: string;
}

export interface CheckImageResult {
  /** `<host>/<repo>@<digest>` */
  pinned: string;
  digest: string;
  mediaType: string;
  size: number;
  /** When `ref` has a tag: whether the tag points at `digest` now. */
  tagMatches?: boolean;
}

/** The registry activities as workflows see them (`proxyActivities<RegistryActivities>`). */
export interface RegistryActivities {
  /** Pins a reference by digest (HEAD of the manifest). ImageNotFound when absent. */
  resolveImage(input: ResolveImageInput): Promise<ResolvedImage>;
  /**
   * Copies one image to one target registry, blobs first, manifests byte for byte.
   * Heartbeats CopyProgress; a retry after RegistryUnreachable resumes chunked uploads.
   */
  copyImage(input: CopyImageInput): Promise<CopyImageResult>;
  /** Confirms the target holds `digest` (and every manifest of an index). ImageNotFound when it does not. */
  checkImage(input: CheckImageInput): Promise<CheckImageResult>;
}
