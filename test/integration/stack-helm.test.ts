/**
 * Helm and Kustomize as the stack builds them: a chart made by `helm package`
 * is pushed to the stack's `central` registry over OCI and rendered from there
 * by `helm template`, with Helm's homes in the data dir and an empty $HOME; a
 * Kustomize overlay renders with `kustomize build`. Real binaries, the real
 * registry; nothing from the internet.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { manifestDigest } from '../../stack/registry.ts';
import { helmEnv, runHelm, runKustomize } from '../../stack/tools.ts';
import type { StackInfo } from '../../stack/types.ts';

const stack: StackInfo = inject('stack');
const central = stack.registries.find((r) => r.name === 'central')!.host;
const work = mkdtempSync(path.join(tmpdir(), 'stack-helm-'));
const emptyHome = path.join(work, 'home');
mkdirSync(emptyHome);
const chartName = `web-${Date.now().toString(36)}`;

afterAll(() => rmSync(work, { recursive: true, force: true }));

function write(dir: string, files: Record<string, string>): string {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

interface Obj {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    template?: { spec?: { containers?: { image: string; env?: { name: string; value: string }[] }[] } };
  };
}
const docs = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJSON() as Obj | null)
    .filter((d): d is Obj => d !== null);

describe('helm', () => {
  /** Helm with an empty $HOME: anything it needs must come from the stack's Helm homes. */
  const helm = (args: string[]) => {
    const prev = process.env.HOME;
    process.env.HOME = emptyHome;
    try {
      return runHelm(stack.dataDir, args);
    } finally {
      process.env.HOME = prev;
    }
  };

  it('is the pinned version, with its homes in the data dir', async () => {
    const { stdout } = await helm(['version', '--short']);
    expect(stdout.trim()).toMatch(/^v3\.22\.0/);
    const env = await helm(['env']);
    const home = path.join(stack.dataDir, 'helm');
    expect(env.stdout).toContain(`HELM_CACHE_HOME="${path.join(home, 'cache')}"`);
    expect(env.stdout).toContain(`HELM_CONFIG_HOME="${path.join(home, 'config')}"`);
    expect(env.stdout).toContain(`HELM_DATA_HOME="${path.join(home, 'data')}"`);
    expect(helmEnv(stack.dataDir).HELM_REGISTRY_CONFIG).toBe(
      path.join(home, 'config', 'registry', 'config.json'),
    );
  });

  it('packages a chart, pushes it to central over OCI and renders it from there with helm template', async () => {
    const src = write(path.join(work, chartName), {
      'Chart.yaml': `apiVersion: v2\nname: ${chartName}\nversion: 0.1.0\nappVersion: "v1"\n`,
      'values.yaml': `image: ${central}/demo/web:v1\nreplicas: 2\nregion: none\n`,
      'templates/deployment.yaml': [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        '  name: {{ .Release.Name }}',
        '  labels: { kube: "{{ .Capabilities.KubeVersion.Major }}.{{ .Capabilities.KubeVersion.Minor }}" }',
        'spec:',
        '  replicas: {{ .Values.replicas }}',
        '  selector: { matchLabels: { app: {{ .Release.Name }} } }',
        '  template:',
        '    metadata: { labels: { app: {{ .Release.Name }} } }',
        '    spec:',
        '      containers:',
        '        - name: web',
        '          image: {{ .Values.image | quote }}',
        '          env: [{ name: REGION, value: {{ .Values.region | quote }} }]',
        '',
      ].join('\n'),
    });
    const out = path.join(work, 'packages');
    mkdirSync(out);
    await helm(['package', src, '--destination', out]);
    const tgz = path.join(out, `${chartName}-0.1.0.tgz`);
    expect(readdirSync(out)).toEqual([path.basename(tgz)]);

    const pushed = await helm(['push', tgz, `oci://${central}/charts`, '--plain-http']);
    const said = /Digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout + pushed.stderr)?.[1];
    expect(said).toBeDefined();
    // The registry holds it under charts/<name>:0.1.0 with the digest helm reported.
    expect(await manifestDigest(central, `charts/${chartName}`, '0.1.0')).toBe(said);

    const rendered = await helm([
      'template',
      'shop',
      `oci://${central}/charts/${chartName}`,
      '--version',
      '0.1.0',
      '--plain-http',
      '--set',
      'region=cn-north',
      '--set',
      'replicas=3',
    ]);
    const [d] = docs(rendered.stdout);
    expect(d).toMatchObject({ kind: 'Deployment', metadata: { name: 'shop' }, spec: { replicas: 3 } });
    expect(d!.spec!.template!.spec!.containers![0]).toMatchObject({
      image: `${central}/demo/web:v1`,
      env: [{ name: 'REGION', value: 'cn-north' }],
    });
    // Built with the Kubernetes version of its client-go (helm's Makefile ldflags), not helm's 1.20 default.
    expect(d!.metadata.labels?.kube).toBe('1.37');
    // Nothing went to $HOME.
    expect(readdirSync(emptyHome)).toEqual([]);
  });

  it('a chart version that is not in the registry fails with the registry saying so', async () => {
    await expect(
      helm(['template', 'x', `oci://${central}/charts/${chartName}`, '--version', '9.9.9', '--plain-http']),
    ).rejects.toThrow(/not found|manifest unknown/i);
  });
});

describe('kustomize', () => {
  it('is the pinned version and builds an overlay over a base', async () => {
    expect((await runKustomize(['version'])).stdout.trim()).toBe('v5.7.1');
    const dir = write(path.join(work, 'kustomize'), {
      'base/kustomization.yaml': 'resources: [deployment.yaml]\n',
      'base/deployment.yaml': [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: { name: web }',
        'spec:',
        '  replicas: 1',
        '  selector: { matchLabels: { app: web } }',
        '  template:',
        '    metadata: { labels: { app: web } }',
        '    spec: { containers: [{ name: web, image: demo/web:v1 }] }',
        '',
      ].join('\n'),
      'overlays/cn-north/kustomization.yaml': [
        'resources: [../../base]',
        'namePrefix: cn-north-',
        'labels: [{ pairs: { region: cn-north } }]',
        'replicas: [{ name: web, count: 4 }]',
        `images: [{ name: demo/web, newName: ${central}/demo/web, newTag: v2 }]`,
        '',
      ].join('\n'),
    });
    const { stdout } = await runKustomize(['build', path.join(dir, 'overlays', 'cn-north')]);
    const [d] = docs(stdout);
    expect(d).toMatchObject({
      kind: 'Deployment',
      metadata: { name: 'cn-north-web', labels: { region: 'cn-north' } },
      spec: { replicas: 4 },
    });
    expect(d!.spec!.template!.spec!.containers![0]!.image).toBe(`${central}/demo/web:v2`);
  });
});
