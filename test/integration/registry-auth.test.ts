/**
 * Registry credentials: a docker-registry of the test's own with htpasswd
 * (Basic), and one with token auth (a small token server of the test's own
 * signing ES256 JWTs with an x5c chain the registry trusts). The copier gets
 * the credentials from the worker's credentials (never from inputs); they
 * never show in results or log lines. Everything started here is stopped by pid.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import bcrypt from 'bcryptjs';
import { importPKCS8, SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRegistryActivities } from '../../activities/registry/activities.ts';
import { parseCredentials } from '../../activities/registry/credentials.ts';
import type { CopyImageResult } from '../../activities/registry/types.ts';
import type { Registry } from '../../model/registry.ts';
import { REDACT_PATHS } from '../../worker/logger.ts';
import {
  freePort,
  inspect,
  registryHost,
  stackRegistries,
  startRegistry,
  type OwnRegistry,
} from '../support/registries.ts';

const stack = inject('stack');
const central = registryHost(stack, 'central');
const run = randomUUID().slice(0, 8);
const USER = 'flotilla';
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

let work: string;
let basicRegistry: OwnRegistry;
let tokenRegistry: OwnRegistry;
let tokenServer: Server;
const issued: string[] = [];
const tokenRequests: { user?: string; scopes: string[] }[] = [];
const lines: string[] = [];

/** A logger at debug level whose lines are kept, with the worker's redaction. */
const logger = pino(
  { level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  }),
);

async function startTokenServer(dir: string): Promise<{ realm: string; certFile: string }> {
  const key = path.join(dir, 'token.key');
  const cert = path.join(dir, 'token.crt');
  // prettier-ignore
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=flotilla-test-token-issuer']);
  const privateKey = await importPKCS8(readFileSync(key, 'utf8'), 'ES256');
  const der = readFileSync(cert, 'utf8').replace(/-----[^-]+-----|\s/g, '');
  const port = await freePort();
  tokenServer = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    const [user, pass] = auth.startsWith('Basic ')
      ? Buffer.from(auth.slice(6), 'base64').toString().split(':')
      : [];
    const scopes = url.searchParams.getAll('scope');
    tokenRequests.push({ ...(user ? { user } : {}), scopes });
    if (user !== USER || pass !== PASSWORD) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: 'bad credentials' }));
      return;
    }
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(':');
      return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [der] })
      .setIssuer('flotilla-test-issuer')
      .setSubject(user)
      .setAudience(url.searchParams.get('service') ?? '')
      .setIssuedAt(now)
      .setNotBefore(now - 10)
      .setExpirationTime(now + 300)
      .setJti(randomUUID())
      .sign(privateKey);
    issued.push(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => tokenServer.listen(port, '127.0.0.1', r));
  return { realm: `http://127.0.0.1:${port}/token`, certFile: cert };
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'registry-auth-'));
  const htpasswd = path.join(work, 'htpasswd');
  writeFileSync(htpasswd, `${USER}:${bcrypt.hashSync(PASSWORD, 5)}\n`);
  basicRegistry = await startRegistry(path.join(work, 'basic'), {
    htpasswd: { realm: 'flotilla-test', path: htpasswd },
  });
  const t = await startTokenServer(work);
  tokenRegistry = await startRegistry(path.join(work, 'token'), {
    token: {
      realm: t.realm,
      service: 'flotilla-test-registry',
      issuer: 'flotilla-test-issuer',
      rootcertbundle: t.certFile,
    },
  });
}, 120_000);

afterAll(async () => {
  await Promise.all([basicRegistry?.stop(), tokenRegistry?.stop()]);
  await new Promise<void>((r) => (tokenServer ? tokenServer.close(() => r()) : r()));
  expect(basicRegistry.proc.exitCode !== null || basicRegistry.proc.signalCode !== null).toBe(true);
  expect(tokenRegistry.proc.exitCode !== null || tokenRegistry.proc.signalCode !== null).toBe(true);
  rmSync(work, { recursive: true, force: true });
});

function inventory(): Registry[] {
  return [
    ...stackRegistries(stack),
    { name: 'basic', host: basicRegistry.host, region: 'test', type: 'oci', tls: 'none' },
    {
      name: 'token',
      host: tokenRegistry.host,
      region: 'test',
      type: 'oci',
      tls: 'none',
      credentials: 'token-registry',
    },
  ];
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

const copy = (acts: ReturnType<typeof createRegistryActivities>, source: string, target: string) =>
  new MockActivityEnvironment().run(acts.copyImage, { source, target }) as Promise<CopyImageResult>;

describe('registry credentials', () => {
  it('copies to a registry with Basic auth using the worker credentials', async () => {
    const credentials = parseCredentials({
      registries: { [basicRegistry.host]: { username: USER, password: PASSWORD } },
    });
    const acts = createRegistryActivities({ registries: inventory(), credentials, logger });
    const r = await copy(acts, `${central}/demo/web:v1`, `${basicRegistry.host}/basic-${run}/web`);
    const got = await inspect(`${basicRegistry.host}/basic-${run}/web:v1`, { creds: `${USER}:${PASSWORD}` });
    expect(got.Digest).toBe(r.digest);
    expect(r.blobs.copied).toBe(4);
    // A copy back out of it (a source that needs credentials), then a mount within it.
    const back = await copy(
      acts,
      `${basicRegistry.host}/basic-${run}/web:v1`,
      `${registryHost(stack, 'cn-north')}/from-basic-${run}/web`,
    );
    expect(back.digest).toBe(r.digest);
    const mounted = await copy(
      acts,
      `${basicRegistry.host}/basic-${run}/web:v1`,
      `${basicRegistry.host}/basic-${run}/other`,
    );
    expect(mounted.blobs.mounted).toBe(4);
    expect(JSON.stringify([r, back, mounted])).not.toContain(PASSWORD);
  });

  it('fails clearly with a wrong password or none', async () => {
    const wrong = createRegistryActivities({
      registries: inventory(),
      credentials: parseCredentials({
        registries: { [basicRegistry.host]: { username: USER, password: 'not-it' } },
      }),
      logger,
    });
    const f = await failureOf(
      copy(wrong, `${central}/demo/web:v1`, `${basicRegistry.host}/basic-${run}/web`),
    );
    expect(f.type).toBe('RegistryAuthFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(basicRegistry.host);
    expect(f.message).not.toContain('not-it');
    const none = createRegistryActivities({ registries: inventory(), credentials: {}, logger });
    const g = await failureOf(copy(none, `${central}/demo/web:v1`, `${basicRegistry.host}/basic-${run}/web`));
    expect(g.type).toBe('RegistryAuthFailed');
    expect(g.message).toContain('wants Basic credentials and the worker has none');
  });

  it('copies to a registry with a Bearer token challenge, the token fetched with the worker credentials', async () => {
    const credentials = parseCredentials({
      registries: { 'token-registry': { username: USER, password: PASSWORD } },
    });
    const acts = createRegistryActivities({ registries: inventory(), credentials, logger });
    const before = issued.length;
    const r = await copy(acts, `${central}/demo/web:multi`, `${tokenRegistry.host}/token-${run}/web`);
    expect(issued.length).toBeGreaterThan(before);
    const asked = tokenRequests.slice(-1)[0]!;
    expect(asked.user).toBe(USER);
    expect(asked.scopes).toContain(`repository:token-${run}/web:pull,push`);
    // skopeo logs in through the same token server.
    const got = await inspect(`${tokenRegistry.host}/token-${run}/web:multi`, {
      creds: `${USER}:${PASSWORD}`,
      raw: true,
    });
    expect((got as { manifests: unknown[] }).manifests).toHaveLength(2);
    expect(r.platforms).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const text = JSON.stringify(r);
    for (const t of issued) expect(text).not.toContain(t);
    expect(text).not.toContain(PASSWORD);

    const refused = createRegistryActivities({
      registries: inventory(),
      credentials: parseCredentials({
        registries: { 'token-registry': { username: USER, password: 'nope' } },
      }),
      logger,
    });
    const f = await failureOf(
      copy(refused, `${central}/demo/web:v1`, `${tokenRegistry.host}/token-${run}/web`),
    );
    expect(f.type).toBe('RegistryAuthFailed');
    expect(f.message).toContain('token server');
    expect(f.message).toContain('refused the configured credentials');
  });

  it('never logs a password or a token, at debug level', () => {
    expect(lines.length).toBeGreaterThan(10);
    const all = lines.join('');
    expect(all).toContain('registry token request');
    expect(all).not.toContain(PASSWORD);
    for (const t of issued) expect(all).not.toContain(t);
    expect(all).not.toMatch(/Basic [A-Za-z0-9+/=]{8,}/);
  });
});
