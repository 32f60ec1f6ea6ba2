/**
 * One registry's HTTP client (OCI distribution API) on undici: pooled
 * keep-alive connections, streamed bodies, and the registry auth dance:
 *
 *   anonymous                    requests go out bare;
 *   401 + `Basic realm=...`      the worker's {username, password} as Basic;
 *   401 + `Bearer realm,service,scope`
 *                                GET <realm>?service=..&scope=.. (Basic with the worker's credentials when it
 *                                has them, anonymous otherwise) -> {token | access_token, expires_in};
 *                                tokens cached per scope set until shortly before they expire;
 *   {token} credentials          sent as Bearer from the start.
 *
 * A request that carries a body is never sent twice, so before one the client
 * learns the registry's scheme first (GET /v2/) and fetches the token for its
 * scopes. Credentials and tokens never reach a log line or an error message.
 */
import { Agent, request, type Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RegistryTls, type Registry } from '../../model/registry.ts';
import { mergeScopes, parseChallenges, type Challenge } from './auth.ts';
import type { Credential } from './credentials.ts';
import { RegistryAuthError, RegistryHttpError, type RegistryErrorBody } from './errors.ts';

export interface HttpSettings {
  /** Connections per registry (blobs in parallel use one each). */
  connections: number;
  headersTimeoutMs: number;
  /** Longest pause between two pieces of a body (a stalled registry). */
  bodyTimeoutMs: number;
  userAgent: string;
}

export const defaultHttpSettings: HttpSettings = {
  connections: 16,
  headersTimeoutMs: 60_000,
  bodyTimeoutMs: 60_000,
  userAgent: 'flotilla-copier/0.1',
};

export interface RegistryRequest {
  method: Dispatcher.HttpMethod;
  /** `/v2/...` on this registry, or an absolute URL the registry gave (an upload Location). */
  path: string;
  headers?: Record<string, string>;
  body?: Readable | Buffer | string;
  /** Token scopes this request needs (`repository:<name>:pull[,push]`). */
  scopes: string[];
  signal?: AbortSignal;
  /** Statuses the caller handles itself; any other throws RegistryHttpError (after reading the error body). */
  expect: number[];
  /** Do not follow a redirect (blob GETs follow one, without credentials, e.g. to object storage). */
  noRedirect?: boolean;
}

interface CachedToken {
  value: string;
  expiresAt: number;
}

type AuthScheme =
  { kind: 'anonymous' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

const MAX_ERROR_BODY = 64 * 1024;

export class RegistryClient {
  readonly host: string;
  readonly baseUrl: string;
  private readonly dispatcher: Agent;
  private scheme: AuthScheme | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  /** Token requests under way, so blobs copied in parallel share one. */
  private readonly fetching = new Map<string, Promise<string>>();
  private pinging: Promise<void> | undefined;

  readonly registry: Pick<Registry, 'host' | 'tls'>;
  private readonly credential: Readonly<Credential> | undefined;
  private readonly log: Logger;
  private readonly settings: HttpSettings;

  constructor(
    registry: Pick<Registry, 'host' | 'tls'>,
    credential: Readonly<Credential> | undefined,
    log: Logger,
    settings: HttpSettings = defaultHttpSettings,
  ) {
    this.registry = registry;
    this.credential = credential;
    this.log = log;
    this.settings = settings;
    this.host = registry.host;
    this.baseUrl = `${registry.tls === RegistryTls.none ? 'http' : 'https'}://${registry.host}`;
    this.dispatcher = new Agent({
      connections: settings.connections,
      keepAliveTimeout: 10_000,
      headersTimeout: settings.headersTimeoutMs,
      bodyTimeout: settings.bodyTimeoutMs,
      connect: { rejectUnauthorized: registry.tls !== RegistryTls.skipVerify },
    });
    if (credential && 'token' in credential) this.scheme = { kind: 'bearer', realm: '' };
  }

  /** Closes the connections; requests still under way after `graceMs` are destroyed. */
  async close(graceMs = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)));
    const closed = await Promise.race([this.dispatcher.close().then(() => 'closed' as const), late]);
    clearTimeout(timer);
    if (closed === 'late') await this.dispatcher.destroy();
  }

  /** Absolute URL for a path or a Location header (which may be relative). */
  url(pathOrUrl: string): URL {
    return new URL(pathOrUrl, this.baseUrl);
  }

  /**
   * Sends the request with whatever auth the registry wants. The response's body
   * must be consumed (or dumped) by the caller when the status is expected.
   */
  async request(req: RegistryRequest): Promise<Dispatcher.ResponseData> {
    const hasBody = req.body !== undefined && typeof req.body !== 'string' && !Buffer.isBuffer(req.body);
    if (hasBody && !this.scheme) await this.learnScheme(req.signal);
    const sent = await this.authorization(req.scopes, req.signal);
    let res = await this.send(req, sent);
    if (res.statusCode === 401 && !hasBody) {
      const challenges = parseChallenges(res.headers['www-authenticate']);
      await res.body.dump();
      this.adopt(challenges);
      const challengeScopes = challenges.find((c) => c.scheme === 'bearer')?.params.scope;
      const scopes = challengeScopes ? mergeScopes([...req.scopes, challengeScopes]) : req.scopes;
      // A token the registry refused is not asked for again; a new one is fetched.
      if (this.scheme?.kind === 'bearer') this.forgetToken(scopes, sent.authorization);
      const again = await this.authorization(scopes, req.signal);
      if (again.authorization === sent.authorization) {
        throw new RegistryAuthError(
          `registry ${this.host} refused the ${this.credential ? 'configured credentials' : 'anonymous request'} (HTTP 401)`,
        );
      }
      // (Requests running at the same time may have learnt the scheme already: then this one just catches up.)
      res = await this.send(req, again);
    }
    if (req.expect.includes(res.statusCode)) return res;
    if (!req.noRedirect && [301, 302, 303, 307, 308].includes(res.statusCode) && res.headers.location) {
      const location = String(res.headers.location);
      await res.body.dump();
      const target = this.url(location);
      const sameOrigin = target.origin === new URL(this.baseUrl).origin;
      const redirected = await request(target, {
        method: req.method,
        headers: {
          'user-agent': this.settings.userAgent,
          ...(req.headers ?? {}),
          ...(sameOrigin ? await this.authorization(req.scopes, req.signal) : {}),
        },
        dispatcher: this.dispatcher,
        signal: req.signal ?? null,
      });
      if (req.expect.includes(redirected.statusCode)) return redirected;
      throw await this.httpError(req.method, target, redirected);
    }
    throw await this.httpError(req.method, this.url(req.path), res);
  }

  private send(req: RegistryRequest, auth: Record<string, string>): Promise<Dispatcher.ResponseData> {
    const url = this.url(req.path);
    this.log.debug({ method: req.method, registry: this.host, path: url.pathname }, 'registry request');
    return request(url, {
      method: req.method,
      headers: { 'user-agent': this.settings.userAgent, ...(req.headers ?? {}), ...auth },
      body: req.body ?? null,
      dispatcher: this.dispatcher,
      signal: req.signal ?? null,
    });
  }

  private async httpError(
    method: string,
    url: URL,
    res: Dispatcher.ResponseData,
  ): Promise<RegistryHttpError> {
    let errors: RegistryErrorBody[] = [];
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of res.body as AsyncIterable<Buffer>) {
        if (size < MAX_ERROR_BODY) chunks.push(c);
        size += c.length;
      }
      const text = Buffer.concat(chunks).toString('utf8').slice(0, MAX_ERROR_BODY);
      const parsed = JSON.parse(text) as { errors?: RegistryErrorBody[] };
      if (Array.isArray(parsed.errors))
        errors = parsed.errors.map((e) => ({
          ...(typeof e.code === 'string' ? { code: e.code } : {}),
          ...(typeof e.message === 'string' ? { message: e.message.slice(0, 300) } : {}),
        }));
    } catch {
      // not an OCI error body
    }
    return new RegistryHttpError(res.statusCode, method, this.host, url.pathname, errors);
  }

  /** GET /v2/ once: 200 means anonymous; a 401 names the scheme (and the token realm). */
  private learnScheme(signal?: AbortSignal): Promise<void> {
    this.pinging ??= (async () => {
      const res = await this.send(
        { method: 'GET', path: '/v2/', scopes: [], expect: [], ...(signal ? { signal } : {}) },
        {},
      );
      const challenges = parseChallenges(res.headers['www-authenticate']);
      await res.body.dump();
      if (res.statusCode === 200) this.scheme = { kind: 'anonymous' };
      else if (res.statusCode === 401) this.adopt(challenges);
      else throw await this.httpError('GET', this.url('/v2/'), res);
    })().finally(() => {
      this.pinging = undefined;
    });
    return this.pinging;
  }

  /** Takes the scheme a 401 asked for. */
  private adopt(challenges: Challenge[]): void {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (this.credential && 'token' in this.credential) return; // a registry token is all we have
    if (bearer) {
      this.scheme = {
        kind: 'bearer',
        realm: bearer.params.realm!,
        ...(bearer.params.service ? { service: bearer.params.service } : {}),
      };
    } else if (basic) {
      if (!this.credential || !('username' in this.credential))
        throw new RegistryAuthError(
          `registry ${this.host} wants Basic credentials and the worker has none for it`,
        );
      this.scheme = { kind: 'basic' };
    } else {
      throw new RegistryAuthError(
        `registry ${this.host} answered 401 without a challenge this client knows (${challenges.map((c) => c.scheme).join(', ') || 'none'})`,
      );
    }
  }

  private forgetToken(scopes: string[], authorization: string | undefined): void {
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && authorization === `Bearer ${cached.value}`) this.tokens.delete(key);
  }

  private async authorization(scopes: string[], signal?: AbortSignal): Promise<Record<string, string>> {
    const s = this.scheme;
    if (!s || s.kind === 'anonymous') return {};
    const cred = this.credential;
    if (s.kind === 'basic') {
      if (!cred || !('username' in cred)) return {};
      return {
        authorization: `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`,
      };
    }
    if (cred && 'token' in cred) return { authorization: `Bearer ${cred.token}` };
    return { authorization: `Bearer ${await this.token(s, mergeScopes(scopes), signal)}` };
  }

  private async token(
    s: { realm: string; service?: string },
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<string> {
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now() + 30_000) return cached.value;
    let pending = this.fetching.get(key);
    if (!pending) {
      pending = this.fetchToken(s, scopes, key, signal).finally(() => this.fetching.delete(key));
      this.fetching.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(
    s: { realm: string; service?: string },
    scopes: string[],
    key: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const url = new URL(s.realm, this.baseUrl);
    if (s.service) url.searchParams.set('service', s.service);
    for (const sc of scopes) url.searchParams.append('scope', sc);
    const cred = this.credential;
    const headers: Record<string, string> = { 'user-agent': this.settings.userAgent };
    if (cred && 'username' in cred)
      headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
    this.log.debug(
      { registry: this.host, realm: url.origin + url.pathname, scopes },
      'registry token request',
    );
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'GET',
        headers,
        dispatcher: this.dispatcher,
        signal: signal ?? null,
      });
    } catch (err) {
      throw Object.assign(err as Error, { message: `token server ${url.origin}: ${(err as Error).message}` });
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw new RegistryAuthError(
        `token server ${url.origin}${url.pathname} refused ${cred ? 'the configured credentials' : 'an anonymous token'} for ${this.host} (HTTP ${res.statusCode}, scope ${scopes.join(' ') || 'none'})`,
      );
    }
    if (res.statusCode !== 200) throw await this.httpError('GET', url, res);
    const body = (await res.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const value = body.token ?? body.access_token;
    if (!value)
      throw new RegistryAuthError(`token server ${url.origin}${url.pathname} answered without a token`);
    // The token protocol's default lifetime is 60 s.
    const ttl = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    this.tokens.set(key, { value, expiresAt: Date.now() + ttl * 1000 });
    return value;
  }
}

const scopeKey = (scopes: string[]) => mergeScopes(scopes).join(' ');
