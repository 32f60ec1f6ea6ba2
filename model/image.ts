/**
 * Image references as the container runtimes read them:
 *   [registry[:port]/]repository[:tag][@sha256:<64 hex>]
 * A first path component counts as a registry when it has a dot or a colon or
 * is "localhost" (the Docker rule); otherwise the registry is docker.io.
 */
export interface ImageRef {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const componentRe = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagRe = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const digestRe = /^sha256:[a-f0-9]{64}$/;
const hostRe = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$|^\[[0-9a-fA-F:]+\](?::\d{1,5})?$/;

export class ImageRefError extends Error {}

export function parseImageRef(input: string): ImageRef {
  const s = input.trim();
  if (s === '' || s !== input || /\s/.test(s)) throw new ImageRefError(`"${input}" is not an image reference`);
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestRe.test(digest)) throw new ImageRefError(`"${input}": digest must be sha256:<64 lowercase hex>`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!tagRe.test(tag)) throw new ImageRefError(`"${input}": tag "${tag}" is not valid`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    registry = first;
    parts.shift();
    if (!hostRe.test(registry)) throw new ImageRefError(`"${input}": registry "${registry}" is not a host[:port]`);
  }
  if (parts.length === 0 || parts.some((p) => !componentRe.test(p))) {
    throw new ImageRefError(`"${input}": repository "${parts.join('/')}" must be lowercase path components`);
  }
  let repository = parts.join('/');
  if (registry === 'docker.io' && parts.length === 1) repository = `library/${repository}`;
  if (!tag && !digest) tag = 'latest';
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export function formatImageRef(r: ImageRef): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The same image served from another registry (a regional mirror). */
export function withRegistry(ref: string, registry: string): string {
  // A host the runtime would not read as a registry ("mirror", no dot, port or
  // localhost) would silently turn the result into a Docker Hub repository.
  const looksLikeHost = registry.includes('.') || registry.includes(':') || registry === 'localhost' || registry.startsWith('[');
  if (!looksLikeHost || !hostRe.test(registry)) {
    throw new ImageRefError(`registry "${registry}" is not a host[:port] (it needs a dot, a port, "localhost" or [IPv6])`);
  }
  return formatImageRef({ ...parseImageRef(ref), registry });
}
