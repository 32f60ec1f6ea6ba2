/**
 * Resolving an image tag to its digest (a HEAD on the manifest, as the OCI
 * distribution spec has it), once per delivery, so that every wave runs the
 * same bits even if the tag moves. Anonymous access only; the registry client
 * of activities/registry/ (credentials, token challenges) takes this over.
 */
import { ApplicationFailure } from '@temporalio/common';
import { parseImageRef } from '../model/image.ts';
import { FailureType } from '../model/reasons.ts';

export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

export type DigestResolver = (ref: string) => Promise<string>;

/** Plain HTTP for loopback registries (as container runtimes treat them), HTTPS elsewhere. */
export function registryBase(host: string): string {
  const bare = host.replace(/:\d+$/, '');
  const insecure = bare === 'localhost' || bare === '127.0.0.1' || bare === '[::1]';
  return `${insecure ? 'http' : 'https'}://${host === 'docker.io' ? 'registry-1.docker.io' : host}`;
}

export async function resolveDigest(ref: string, timeoutMs = 10_000): Promise<string> {
  const r = parseImageRef(ref);
  if (r.digest) return r.digest;
  const url = `${registryBase(r.registry)}/v2/${r.repository}/manifests/${r.tag ?? 'latest'}`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'HEAD', headers: { Accept: MANIFEST_MEDIA_TYPES.join(', ') }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw ApplicationFailure.create({
      type: FailureType.RegistryUnreachable,
      message: `registry ${r.registry}: cannot resolve ${ref}: ${cause?.code ?? (err as Error).name}${cause?.message ? ` (${cause.message})` : ''}`,
      details: [{ registry: r.registry, ref }],
    });
  }
  if (res.status === 404) {
    throw ApplicationFailure.create({ type: FailureType.ImageNotFound, nonRetryable: true, message: `registry ${r.registry} has no ${r.repository}:${r.tag}`, details: [{ registry: r.registry, ref }] });
  }
  if (res.status === 401 || res.status === 403) {
    throw ApplicationFailure.create({ type: FailureType.RegistryAuthFailed, nonRetryable: true, message: `registry ${r.registry} refused anonymous access to ${r.repository} (HTTP ${res.status})`, details: [{ registry: r.registry, ref }] });
  }
  const digest = res.headers.get('docker-content-digest');
  if (!res.ok || !digest || !/^sha256:[a-f0-9]{64}$/.test(digest)) {
    throw ApplicationFailure.create({
      type: FailureType.RegistryUnreachable,
      message: `registry ${r.registry}: HEAD ${r.repository}:${r.tag} answered ${res.status}${digest ? '' : ' without a Docker-Content-Digest'}`,
      details: [{ registry: r.registry, ref }],
    });
  }
  return digest;
}
