/**
 * The real `flotilla` process against the real API (on a port) and the real
 * worker, on the local stack's Temporal and Kubernetes control planes. What a
 * user checks: exit codes, what the CLI prints, and what each cluster runs,
 * read back from its API server.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import type { StackInfo } from '../../stack/types.ts';
import { parseConfig } from '../../worker/config.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { tokens } from '../support/tokens.ts';
import { clusterClients, deleteNamespaces, deploymentsIn, digestOf, expectedRef } from './support.ts';

const stack: StackInfo = inject('stack');
const inventory = inventoryFromStack(stack);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const pinned = async (tag: string) => `${central}/demo/web@${await digestOf(image(tag))}`;
const tokenOf = (role: string) => Object.entries(tokens).find(([, v]) => v.role === role)![0];
const CI = tokenOf('ci');
const SRE = tokenOf('sre');
const VIEWER = tokenOf('viewer');
const main = path.resolve(import.meta.dirname, '../../cli/main.ts');

let workers: WorkersHandle;
let connection: Connection;
let server: Server;
let apiUrl: string;
let work: string;
const clients = clusterClients(inventory);
const namespaces = new Set<string>();
const outputs: string[] = [];

beforeAll(async () => {
  const silent = createLogger('silent');
  const config = parseConfig({
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    logLevel: 'warn',
  });
  workers = await startWorkers(config, { inventory, logger: silent });
  connection = await Connection.connect({ address: stack.temporal.address });
  const temporal = new Client({ connection, namespace: stack.temporal.namespace });
  const app = createApp({ temporal, inventory, tokens, logger: silent });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  work = mkdtempSync(path.join(tmpdir(), 'cli-it-'));
});

afterAll(async () => {
  await deleteNamespaces(clients, namespaces);
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await workers?.shutdown();
  await connection?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as its own process (never in this one: the API it talks to runs here). */
function flotilla(args: string[], opts: { token?: string; env?: Record<string, string>; cwd?: string; stdin?: string } = {}): Promise<Run> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: work, NO_COLOR: '1', ...opts.env };
  if (!opts.env) Object.assign(env, { FLOTILLA_API_URL: apiUrl, FLOTILLA_TOKEN: opts.token ?? SRE });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', main, ...args], { cwd: opts.cwd ?? work, env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      outputs.push(stdout, stderr);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

function freshNamespace(prefix: string): string {
  const ns = `cli-${prefix}-${randomUUID().slice(0, 8)}`;
  namespaces.add(ns);
  return ns;
}

function specFile(name: string, ns: string, tag: string, extra: Record<string, unknown> = {}, template?: Record<string, unknown>): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({
      app: { name: 'web', namespace: ns, image: image(tag), replicas: 4, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] }, ...(template ? { template } : {}) },
      waves: [['beijing'], ['shenzhen', 'cloud-hk']],
      onFailure: 'pause',
      rolloutTimeout: '2m',
      grace: { unready: '5s', unschedulable: '10s' },
      ...extra,
    }),
  );
  return file;
}

const unready = { annotations: { 'flotilla.dev/simulate': 'unready' } };
const startedId = (out: string): string => /started delivery (\S+)/.exec(out)?.[1] ?? '';
/** What each cluster runs for a pinned central reference: the same digest from its regional registry. */
const at = (cluster: string, ref: string) => expectedRef(inventory, cluster, ref);
const images = async (ns: string) => Object.fromEntries(Object.entries(await deploymentsIn(clients, ns)).map(([c, d]) => [c, d && `${d.image} ${d.ready}/${d.replicas}`]));

describe('flotilla on the local stack', () => {
  let ns: string;
  let first: string;

  it('deploy -f spec.yaml --wait exits 0 on a Healthy delivery, shows each wave, and every cluster runs the pinned image', async () => {
    ns = freshNamespace('ok');
    const r = await flotilla(['deploy', '-f', specFile('ok', ns, 'v2'), '--image', image('v1'), '--wait', '--idempotency-key', `ci-${ns}`], { token: CI });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    first = startedId(r.stdout);
    expect(first).toMatch(/^delivery-/);
    expect(r.stdout).toContain('wave 1/2: beijing');
    expect(r.stdout).toContain('wave 2/2: shenzhen, cloud-hk');
    expect(r.stdout).toMatch(/\n\[ *[\d.]+s\] {3}beijing {3}Healthy {7}2\/2 ready/);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^Healthy: .* \\(delivery ${first}\\)$`));
    const v1 = await pinned('v1');
    expect(await images(ns)).toEqual({ beijing: `${at('beijing', v1)} 2/2`, shenzhen: `${at('shenzhen', v1)} 1/1`, 'cloud-hk': `${at('cloud-hk', v1)} 1/1` });

    // A CI job retried with the same key gets the same delivery, and starts nothing new.
    const again = await flotilla(['deploy', '-f', path.join(work, 'ok.yaml'), '--image', image('v1'), '--idempotency-key', `ci-${ns}`], { token: CI });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`delivery ${first} was started earlier with this Idempotency-Key\n`);
  });

  it('status, list and app show the delivery and what each cluster runs', async () => {
    const v1 = await pinned('v1');
    const status = await flotilla(['status', first], { token: VIEWER });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`delivery ${first}: deploy of ${ns}/web ${image('v1')} in 2 waves [beijing] [shenzhen, cloud-hk]`);
    expect(status.stdout).toMatch(/phase: {4}Healthy/);
    expect(status.stdout).toMatch(/ {2}cloud-hk {2}Healthy {7}1\/1 ready {2}rev 1/);
    const asJson = JSON.parse((await flotilla(['-o', 'json', 'status', first], { token: VIEWER })).stdout) as { id: string; phase: string; clusters: Record<string, { image: string }> };
    expect(asJson).toMatchObject({ id: first, phase: 'Healthy' });
    expect(asJson.clusters.beijing!.image).toBe(at('beijing', v1));

    const list = await flotilla(['list', '--app', `${ns}/web`], { token: VIEWER });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${first} +${ns}/web +deploy +Healthy +${image('v1').replace(/[.]/g, '\\.')} `, 'm'));
    const app = await flotilla(['app', 'web', '-n', ns], { token: VIEWER });
    expect(app.code).toBe(0);
    for (const c of ['beijing', 'shenzhen', 'cloud-hk']) expect(app.stdout).toMatch(new RegExp(`^${c} +${at(c, v1).replace(/[.]/g, '\\.')} +\\d/\\d +1 +Healthy +${first} +yes$`, 'm'));
  });

  it('a bad spec prints one line naming the field, exits 1, and nothing reaches a cluster', async () => {
    const bad = freshNamespace('bad');
    const file = path.join(work, 'bad.yaml');
    writeFileSync(file, stringify({ app: { name: 'web', namespace: bad, image: image('v1'), replicas: 'four', placement: { clusters: ['beijing'] } } }));
    const r = await flotilla(['deploy', '-f', file, '--wait'], { token: CI });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: app\.replicas: .*expected number.* \(400 InvalidRequest, request [\w-]+\)\n$/);
    const unknown = await flotilla(['deploy', '-f', '-'], { token: CI, stdin: stringify({ app: { name: 'web', namespace: bad, image: image('v1'), replicas: 1, placement: { clusters: ['atlantis'] } } }) });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: app\.placement.*atlantis.*\(422 Unprocessable, request [\w-]+\)\n$/);
    expect(await images(bad)).toEqual({ beijing: null, shenzhen: null, 'cloud-hk': null });
  });

  it('a delivery that fails (pods never ready, onFailure fail) exits 2 with the reason', async () => {
    const failing = freshNamespace('fail');
    const r = await flotilla(['deploy', '-f', specFile('fail', failing, 'v1', { onFailure: 'fail' }, unready), '--wait'], { token: CI });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    const last = r.stdout.trimEnd().split('\n').slice(-4).join('\n');
    expect(last).toMatch(/^Degraded: .*beijing/m);
    expect(last).toMatch(/^ {2}beijing +Failed .*RolloutFailed: .*not Ready/m);
  });

  it('retry, rollback and abort of running deliveries, and a rollback of a finished one, with --wait', async () => {
    const v1 = await pinned('v1');
    // v2 with pods that never get ready: wave 1 fails and the delivery waits for an SRE.
    const paused = await flotilla(['deploy', '-f', specFile('pause', ns, 'v2', {}, unready), '--wait', '--fail-on-pause'], { token: CI });
    expect(paused.code, paused.stdout + paused.stderr).toBe(3);
    const id = startedId(paused.stdout);
    expect(paused.stdout).toContain(`waiting for an SRE: flotilla retry|skip|rollback|abort ${id}`);

    const retry = await flotilla(['retry', id, '--cluster', 'beijing', '-m', 'node pool fixed', '--wait', '--fail-on-pause']);
    expect(retry.code, retry.stdout + retry.stderr).toBe(3);
    expect(retry.stdout).toMatch(new RegExp(`^retry of ${id} \\(beijing\\) done; the delivery is Progressing`));
    expect(retry.stdout).toContain('attempt 2');

    const back = await flotilla(['rollback', id, '-m', 'bad build', '--wait']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toMatch(new RegExp(`^RolledBack: .*\\(delivery ${id}\\)$`, 'm'));
    expect((await images(ns)).beijing).toBe(`${at('beijing', v1)} 2/2`);
    const audit = (await flotilla(['status', id], { token: VIEWER })).stdout;
    expect(audit).toMatch(/retry +beijing +node pool fixed/);
    expect(audit).toMatch(/rollback +bad build/);

    const again = await flotilla(['deploy', '-f', path.join(work, 'pause.yaml'), '--wait', '--fail-on-pause'], { token: CI });
    expect(again.code).toBe(3);
    const abort = await flotilla(['abort', startedId(again.stdout), '-m', 'not today', '--wait']);
    expect(abort.code, abort.stdout + abort.stderr).toBe(0);
    expect(abort.stdout).toMatch(/^Aborted: aborted by alice: not today/m);

    // A finished, Healthy delivery of v2; its rollback starts a delivery that brings v1 back everywhere.
    const v2 = await flotilla(['deploy', '-f', specFile('v2', ns, 'v2'), '--wait'], { token: CI });
    expect(v2.code, v2.stdout + v2.stderr).toBe(0);
    const undo = await flotilla(['rollback', startedId(v2.stdout), '--wait']);
    expect(undo.code, undo.stdout + undo.stderr).toBe(0);
    expect(undo.stdout).toMatch(new RegExp(`^rollback of ${startedId(v2.stdout)} started delivery \\S+ \\(restores what ${startedId(v2.stdout)} changed\\)`));
    expect(await images(ns)).toEqual({ beijing: `${at('beijing', v1)} 2/2`, shenzhen: `${at('shenzhen', v1)} 1/1`, 'cloud-hk': `${at('cloud-hk', v1)} 1/1` });
  });

  it('a role that may not act is one line, exit 1; an action that does not apply now says why', async () => {
    const r = await flotilla(['abort', first], { token: VIEWER });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*\(403 Forbidden, request [\w-]+\); token from FLOTILLA_TOKEN\n$/);
    const done = await flotilla(['retry', first]);
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(/\(409 /);
  });

  it('finds the API and a token of the right role in the local stack\'s .flotilla/stack.json', async () => {
    const checkout = path.join(work, 'checkout');
    mkdirSync(path.join(checkout, '.flotilla'), { recursive: true });
    mkdirSync(path.join(checkout, 'sub'), { recursive: true });
    writeFileSync(path.join(checkout, '.flotilla', 'stack.json'), JSON.stringify({ ...stack, api: { url: apiUrl, tokens: { ci: CI, sre: SRE, viewer: VIEWER } } }), { mode: 0o600 });
    const env = { HOME: work, FLOTILLA_CONFIG_FILE: '' };
    const config = await flotilla(['config'], { cwd: path.join(checkout, 'sub'), env });
    expect(config.stdout).toBe(`api:   ${apiUrl}  (from ${path.join(checkout, '.flotilla', 'stack.json')})\ntoken: from ${path.join(checkout, '.flotilla', 'stack.json')} (role viewer)\n`);
    const list = await flotilla(['list', '--app', `${ns}/web`, '--limit', '2'], { cwd: path.join(checkout, 'sub'), env });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')).toHaveLength(4); // header, two items, the final newline
  });

  it('never printed a token', () => {
    for (const t of [CI, SRE, VIEWER]) expect(outputs.join('\n')).not.toContain(t);
  });
});
