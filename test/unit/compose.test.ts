/**
 * No Docker engine runs here, so docker-compose.yml and the Dockerfile are
 * checked for structure: the services and how they reach each other, what is
 * mounted read-only, what is published, and that no secret is written down.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SA_APP, SA_PHASE, SA_TYPE } from '../../workflows/messages.ts';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string> | string[];
  depends_on?: Record<string, { condition: string }> | string[];
  volumes?: string[];
  ports?: string[];
  secrets?: string[];
  configs?: { source: string; target: string }[];
  healthcheck?: { test: string[] };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file?: string }>;
  configs?: Record<string, { content?: string }>;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose;
const svc = (name: string): Service => {
  const s = compose.services[name];
  if (!s) throw new Error(`no service ${name}`);
  return s;
};
const env = (s: Service): Record<string, string> =>
  Array.isArray(s.environment)
    ? Object.fromEntries(s.environment.map((e) => e.split(/=(.*)/s).slice(0, 2) as [string, string]))
    : Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
const dependsOn = (s: Service): string[] =>
  Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
/** [source, target, mode] of a short-syntax volume; a ${VAR:-default} source counts as one part. */
const volume = (v: string): [string, string, string | undefined] => {
  const [source, target, mode] = v.replace(/\$\{[^}]*\}/g, (m) => m.replaceAll(':', '\u0000')).split(':');
  return [source!.replaceAll('\u0000', ':'), target!, mode];
};
const commandOf = (s: Service): string => [s.entrypoint, s.command].flat().filter(Boolean).join(' ');

describe('docker-compose.yml', () => {
  it('has Temporal on PostgreSQL, the Temporal UI, the API and the worker', () => {
    expect(Object.keys(compose.services)).toEqual(
      expect.arrayContaining(['temporal', 'postgresql', 'temporal-ui', 'api', 'worker']),
    );
    const temporal = svc('temporal');
    expect(temporal.image).toMatch(/^temporalio\/(server|auto-setup):\d+\.\d+/);
    expect(env(temporal)).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    expect(svc('postgresql').image).toMatch(/^postgres:\d+/);
    expect(
      dependsOn(temporal).some((d) => d === 'postgresql' || dependsOn(svc(d)).includes('postgresql')),
    ).toBe(true);
    expect(env(svc('temporal-ui')).TEMPORAL_ADDRESS).toBe('temporal:7233');
  });

  it('pins every image to a version', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      if (!s.image) continue;
      expect(s.image, name).toMatch(/:[^:]+$/);
      expect(s.image, name).not.toMatch(/:latest$/);
    }
  });

  it('keeps PostgreSQL data in a named volume', () => {
    const data = (svc('postgresql').volumes ?? [])
      .map(volume)
      .find(([, target]) => target === '/var/lib/postgresql/data');
    expect(data).toBeDefined();
    expect(Object.keys(compose.volumes ?? {})).toContain(data![0]);
  });

  it('builds the API and the worker from the one Dockerfile, with their own commands', () => {
    for (const [name, entry] of [
      ['api', 'api/main.ts'],
      ['worker', 'worker/main.ts'],
    ] as const) {
      const s = svc(name);
      const build = typeof s.build === 'string' ? { context: s.build } : s.build;
      expect(build, name).toBeDefined();
      expect(existsSync(new URL(`${build!.context}/${build!.dockerfile ?? 'Dockerfile'}`, root))).toBe(true);
      expect(s.command).toEqual(['node', entry]);
      expect(existsSync(new URL(entry, root)), entry).toBe(true);
    }
    expect(svc('api').image).toBe(svc('worker').image);
  });

  it('points the API and the worker at the temporal service and starts them after it', () => {
    for (const name of ['api', 'worker']) {
      const s = svc(name);
      expect(dependsOn(s), name).toContain('temporal');
      const address = env(s).FLOTILLA_TEMPORAL_ADDRESS!;
      expect(address, name).toMatch(/^temporal:\d+$/);
      expect(Object.keys(compose.services)).toContain(address.split(':')[0]);
      for (const d of dependsOn(s)) expect(compose.services, `${name} depends on ${d}`).toHaveProperty([d]);
    }
  });

  it('publishes the API port, and the API listens on it on every interface of its container', () => {
    const api = svc('api');
    const e = env(api);
    expect(e.FLOTILLA_API_HOST).toBe('0.0.0.0');
    expect((api.ports ?? []).some((p) => p.endsWith(`:${e.FLOTILLA_API_PORT}`))).toBe(true);
  });

  it('mounts the inventory and the kubeconfigs read-only into the worker; the API gets the inventory only', () => {
    const inventory = env(svc('worker')).FLOTILLA_INVENTORY!;
    const workerVolumes = (svc('worker').volumes ?? []).map(volume);
    expect(workerVolumes.find(([, target]) => target === inventory)?.[2]).toBe('ro');
    const kube = workerVolumes.find(([, target]) => target.includes('kubeconfigs'));
    expect(kube?.[2]).toBe('ro');
    const apiVolumes = (svc('api').volumes ?? []).map(volume);
    expect(apiVolumes.map(([, target, mode]) => [target, mode])).toEqual([[inventory, 'ro']]);
    expect(env(svc('api')).FLOTILLA_INVENTORY).toBe(inventory);
  });

  it('writes down no secret: passwords are ${placeholders}, API tokens a compose secret file', () => {
    const secretish = /PASSWORD|PWD|SECRET|TOKEN/i;
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [k, v] of Object.entries(env(s))) {
        if (!secretish.test(k)) continue;
        const placeholder = /^\$\{[A-Z_]+(:?[?-][^}]*)?\}$/.test(v);
        const fileRef = k.endsWith('_FILE') && v.startsWith('/run/secrets/');
        expect(placeholder || fileRef, `${name}.${k}=${v}`).toBe(true);
      }
    }
    const tokensFile = env(svc('api')).FLOTILLA_API_TOKENS_FILE!;
    const secret = tokensFile.replace('/run/secrets/', '');
    expect(svc('api').secrets).toContain(secret);
    expect(compose.secrets?.[secret]?.file).toMatch(/^\$\{/);
  });

  it('registers the search attributes deliveries are listed by, and enables update-with-start', () => {
    const setup = Object.values(compose.services).map(commandOf).join('\n');
    for (const sa of [SA_APP, SA_PHASE, SA_TYPE]) expect(setup).toContain(sa);
    expect(setup).toMatch(/search-attribute create/);
    const dynamic = Object.values(compose.configs ?? {})
      .map((c) => c.content ?? '')
      .join('\n');
    expect(parse(dynamic)).toMatchObject({ 'frontend.enableExecuteMultiOperation': [{ value: true }] });
    expect(svc('temporal').configs?.map((c) => c.source)).toEqual(Object.keys(compose.configs ?? {}));
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const lines = dockerfile.split('\n').map((l) => l.trim());

  it('builds in stages on node:24 slim, with production dependencies only', () => {
    const from = lines.filter((l) => /^FROM /i.test(l));
    expect(from.length).toBeGreaterThanOrEqual(2);
    // Node stages on node:24 slim (the runtime last); a Go stage builds only helm and kustomize.
    for (const f of from.filter((l) => !/ AS tools$/.test(l))) expect(f).toMatch(/^FROM node:\$\{NODE_VERSION\}-slim/);
    expect(from.at(-1)).toMatch(/^FROM node:\$\{NODE_VERSION\}-slim$/);
    const nodeVersion = /ARG NODE_VERSION=(\S+)/.exec(dockerfile)?.[1];
    expect(nodeVersion).toMatch(/^24\./);
    expect(read('scripts/env.sh')).toContain(`NODE_VERSION=${nodeVersion}`);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
  });

  it('carries helm and kustomize at the versions the local stack builds, where the worker looks for them', () => {
    const env = read('scripts/env.sh');
    for (const tool of ['HELM', 'KUSTOMIZE']) {
      const version = new RegExp(`ARG ${tool}_VERSION=(\\S+)`).exec(dockerfile)?.[1];
      expect(version, tool).toBeDefined();
      expect(env).toContain(`export ${tool}_VERSION=${version}`);
    }
    expect(dockerfile).toContain('COPY --from=tools /out/helm /out/kustomize /usr/local/bin/');
    expect(dockerfile).toMatch(/HELM_BIN=\/usr\/local\/bin\/helm/);
    expect(dockerfile).toMatch(/KUSTOMIZE_BIN=\/usr\/local\/bin\/kustomize/);
  });

  it('runs as a non-root user, the API by default, and ships every source folder the entry points import', () => {
    const user = lines.filter((l) => /^USER /.test(l)).pop();
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER (root|0)\b/);
    expect(lines.filter((l) => /^CMD /.test(l)).pop()).toBe('CMD ["node", "api/main.ts"]');
    const copied = lines.filter((l) => /^COPY (?!--from)/.test(l)).map((l) => l.split(/\s+/)[1]);
    for (const dir of ['model', 'workflows', 'activities', 'api', 'worker']) expect(copied).toContain(dir);
  });

  it('keeps secrets and local state out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const p of ['.git', 'node_modules', '.flotilla', '.env']) expect(ignored).toContain(p);
  });
});
