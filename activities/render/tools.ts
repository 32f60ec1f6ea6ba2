/**
 * Rendering with the real tools, on the hub: `kustomize build` of an overlay
 * whose files came with the request, and `helm template` of a chart from an
 * OCI registry or uploaded with the request. Each run gets a scratch folder of
 * its own (removed after), and Helm a cache, config and data home inside it:
 * nothing depends on, or writes to, the worker's $HOME. Never a home-made
 * template engine.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import { parseManifestText } from '../../model/source.ts';
import { FailureType } from '../../model/reasons.ts';

const run = promisify(execFile);

export interface RenderTools {
  /** The helm binary (HELM_BIN of scripts/env.sh in the local stack). */
  helm: string;
  /** The kustomize binary (KUSTOMIZE_BIN). */
  kustomize: string;
  /** The Kubernetes version Helm renders for (`--kube-version`). */
  kubeVersion?: string;
  timeoutMs?: number;
}

export const RenderFailure = {
  RenderFailed: 'RenderFailed',
} as const;

function failed(tool: string, err: unknown): ApplicationFailure {
  const e = err as { stderr?: string; message?: string; code?: unknown; killed?: boolean };
  const text = (e.stderr || e.message || String(err)).trim().split('\n').slice(-6).join(' | ');
  // A registry that cannot be reached is worth retrying; anything else is the source's fault.
  if (/connection refused|no such host|i\/o timeout|connection reset|TLS handshake timeout|EOF$/i.test(text)) {
    return ApplicationFailure.create({ type: FailureType.RegistryUnreachable, message: `${tool}: ${text}` });
  }
  if (e.code === 'ENOENT') return ApplicationFailure.create({ type: RenderFailure.RenderFailed, nonRetryable: true, message: `${tool} is not installed on this worker (${e.message})` });
  return ApplicationFailure.create({ type: RenderFailure.RenderFailed, nonRetryable: true, message: `${tool} failed: ${e.killed ? 'timed out' : text}` });
}

function objectsOf(tool: string, yamlText: string): unknown[] {
  const { objects, errors } = parseManifestText(yamlText);
  if (errors.length) throw ApplicationFailure.create({ type: RenderFailure.RenderFailed, nonRetryable: true, message: `${tool} rendered YAML that does not parse: document ${errors[0]!.doc + 1}: ${errors[0]!.message}` });
  return objects;
}

async function scratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-render-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `kustomize build <path>` over the given files. */
export async function kustomizeBuild(tools: RenderTools, files: Record<string, string>, dirPath: string): Promise<unknown[]> {
  return scratch(async (dir) => {
    for (const [rel, content] of Object.entries(files)) {
      const file = path.join(dir, rel);
      if (!file.startsWith(dir + path.sep)) throw ApplicationFailure.create({ type: RenderFailure.RenderFailed, nonRetryable: true, message: `kustomize: file ${rel} escapes the kustomization` });
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, content);
    }
    try {
      const { stdout } = await run(tools.kustomize, ['build', path.join(dir, dirPath)], { timeout: tools.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: { PATH: process.env.PATH ?? '', HOME: dir } });
      return objectsOf('kustomize', stdout);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw failed('kustomize build', err);
    }
  });
}

export interface HelmInput {
  chart?: string;
  archive?: string;
  version?: string;
  values: Record<string, unknown>;
  releaseName: string;
  namespace: string;
  /** oci:// over plain HTTP (a loopback or `tls: none` registry). */
  plainHttp?: boolean;
  insecureSkipTlsVerify?: boolean;
}

/** `helm template` of the chart with the values. */
export async function helmTemplate(tools: RenderTools, h: HelmInput): Promise<unknown[]> {
  return scratch(async (dir) => {
    const values = path.join(dir, 'values.json');
    await writeFile(values, JSON.stringify(h.values)); // JSON is YAML
    let chart = h.chart!;
    if (h.archive) {
      chart = path.join(dir, 'chart.tgz');
      await writeFile(chart, Buffer.from(h.archive, 'base64'));
    }
    const args = [
      'template', h.releaseName, chart,
      '--namespace', h.namespace,
      '--values', values,
      '--kube-version', tools.kubeVersion ?? '1.36.0',
      ...(h.version ? ['--version', h.version] : []),
      ...(h.chart && h.plainHttp ? ['--plain-http'] : []),
      ...(h.chart && h.insecureSkipTlsVerify ? ['--insecure-skip-tls-verify'] : []),
    ];
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      HELM_CACHE_HOME: path.join(dir, 'cache'),
      HELM_CONFIG_HOME: path.join(dir, 'config'),
      HELM_DATA_HOME: path.join(dir, 'data'),
    };
    try {
      const { stdout } = await run(tools.helm, args, { timeout: tools.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env });
      return objectsOf('helm template', stdout);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw failed('helm template', err);
    }
  });
}
