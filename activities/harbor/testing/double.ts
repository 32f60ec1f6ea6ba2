/**
 * A Harbor test double: the replication part of Harbor's REST API, served on
 * loopback, with EVERY request and EVERY response validated against Harbor's
 * own spec (swagger-v2.15.2.yaml, via OpenAPI 3 and openapi-backend/Ajv). The
 * validation is stricter than Harbor's server on one point: objects may carry
 * only the properties the spec lists (Harbor ignores unknown fields, which is
 * how a misspelt field drifts silently). A request that does not match gets
 * Harbor's 400 and is recorded in `violations`; a route the spec does not have
 * is recorded too; a response of the double that does not match is recorded
 * and answered 500. Tests assert `violations` is empty.
 *
 * Executions move data for real: each (repository, tag) the policy's filters
 * match in the Harbor's own registry (a real registry, e.g. the stack's
 * central) becomes a task that copies it with Flotilla's copier to the
 * policy's destination registry endpoint, and writes a job log like Harbor's.
 * A pull-based policy (`src_registry` set, no `dest_registry`) does the
 * reverse: what its filters match in the source endpoint's registry is copied
 * into the Harbor's own registry.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { OpenAPIBackend, type Context, type Document, type Request as OabRequest } from 'openapi-backend';
import { pino, type Logger } from 'pino';
import { RegistryTls, type Registry } from '../../../model/registry.ts';
import { Copier, defaultCopierSettings } from '../../registry/copier.ts';
import { RegistryPool } from '../../registry/pool.ts';
import type { components } from '../harbor-api.ts';
import { harborOpenApi3, type OpenApi3 } from './spec.ts';

type Policy = components['schemas']['ReplicationPolicy'];
type RegistryEndpoint = components['schemas']['Registry'];
type Execution = components['schemas']['ReplicationExecution'];
type Task = components['schemas']['ReplicationTask'];

export const API_ROOT = '/api/v2.0';

export interface HarborDoubleOptions {
  /** host:port of the registry that holds this Harbor's artifacts (plain HTTP). */
  localRegistry: string;
  /** The admin account the API accepts (Basic). */
  username: string;
  password: string;
  logger?: Logger;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface HarborDouble {
  url: string;
  /** Requests or responses that broke the spec (empty when everything matched). */
  violations: string[];
  /** Every request served: method, path, operationId. */
  requests: { method: string; path: string; operationId?: string }[];
  policies: Map<number, Policy>;
  registries: Map<number, RegistryEndpoint & { credential?: components['schemas']['RegistryCredential'] }>;
  /** Validates a request as the double does (for tests of the validator itself). */
  validateRequest(req: OabRequest): string[];
  /** Validates a response body and headers for an operation and status. */
  validateResponse(
    operationId: string,
    status: number,
    body: unknown,
    headers: Record<string, string>,
  ): string[];
  stop(): Promise<void>;
}

/** Every object schema with properties gets additionalProperties: false (see the header). */
function strict(doc: OpenApi3): OpenApi3 {
  const copy = structuredClone(doc);
  const walk = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if (o.type === 'object' && o.properties && o.additionalProperties === undefined)
      o.additionalProperties = false;
    Object.values(o).forEach(walk);
  };
  walk(copy.components);
  walk(copy.paths);
  return copy;
}

const now = () => new Date().toISOString();
const errors = (code: string, message: string) => ({ errors: [{ code, message }] });

function globToRegExp(glob: string): RegExp {
  const re = glob
    .split('**')
    .map((part) =>
      part
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]'),
    )
    .join('.*');
  return new RegExp(`^${re}$`);
}

/** Harbor's `q` query: `k=v` exact, `k=~v` fuzzy, comma separated. */
function matchesQuery(item: Record<string, unknown>, q: string | undefined): boolean {
  if (!q) return true;
  return q.split(',').every((cond) => {
    const m = cond.match(/^([a-z_]+)=(~?)(.*)$/);
    if (!m) return true;
    const v = String(item[m[1]!] ?? '');
    return m[2] ? v.includes(m[3]!) : v === m[3];
  });
}

export async function startHarborDouble(opts: HarborDoubleOptions): Promise<HarborDouble> {
  const log = opts.logger ?? pino({ level: 'silent' });
  const doc = strict(await harborOpenApi3());
  const api = new OpenAPIBackend({
    definition: doc as unknown as Document,
    apiRoot: API_ROOT,
    validate: true,
    quick: false,
    strict: false,
    ajvOpts: { strict: false },
  });
  const violations: string[] = [];
  const requests: HarborDouble['requests'] = [];
  const policies = new Map<number, Policy>();
  const endpoints: HarborDouble['registries'] = new Map();
  const executions = new Map<number, Execution>();
  const tasks = new Map<number, Task & { log: string[] }>();
  const running = new Set<Promise<void>>();
  let nextId = 1;
  const id = () => nextId++;

  const page = <T extends Record<string, unknown>>(items: T[], c: Context): Reply => {
    const q = c.request.query as Record<string, string | undefined>;
    const filtered = items.filter((x) => matchesQuery(x, q.q ?? (q.name ? `name=${q.name}` : undefined)));
    const size = Number(q.page_size ?? 10);
    const p = Number(q.page ?? 1);
    return {
      status: 200,
      headers: { 'X-Total-Count': String(filtered.length) },
      body: filtered.slice((p - 1) * size, p * size),
    };
  };
  const location = (path: string) => ({ Location: `${API_ROOT}${path}` });

  /** Runs an execution: one task per matching (repository, tag), each a real copy. */
  async function execute(exec: Execution, policy: Policy) {
    // Push: from the Harbor's own registry to the destination endpoint; pull: from the source endpoint into it.
    const pull = Boolean(policy.src_registry?.id);
    const remote = endpoints.get((pull ? policy.src_registry?.id : policy.dest_registry?.id) ?? -1);
    const finish = (status: string, text: string) => {
      exec.status = status;
      exec.status_text = text;
      exec.end_time = now();
    };
    if (!remote?.url) return finish('Error', `the ${pull ? 'source' : 'destination'} registry does not exist`);
    const nameFilter = String(policy.filters?.find((f) => f.type === 'name')?.value ?? '**');
    const tagFilter = String(policy.filters?.find((f) => f.type === 'tag')?.value ?? '**');
    const remoteHost = new URL(remote.url).host;
    const remoteRegistry: Registry = {
      name: 'remote',
      host: remoteHost,
      region: 'remote',
      type: 'oci',
      tls: remote.url.startsWith('http:')
        ? RegistryTls.none
        : remote.insecure
          ? RegistryTls.skipVerify
          : RegistryTls.verify,
    };
    const local: Registry = {
      name: 'local',
      host: opts.localRegistry,
      region: 'local',
      type: 'oci',
      tls: RegistryTls.none,
    };
    const basic = remote.credential?.access_key
      ? { username: remote.credential.access_key, password: remote.credential.access_secret ?? '' }
      : undefined;
    const creds = basic ? { [remoteHost]: basic } : {};
    const copyPool = new RegistryPool([local, remoteRegistry], creds, log);
    const copier = new Copier(copyPool, defaultCopierSettings, log);
    // Where the filters are matched and copied from (plain HTTP on loopback, as the stack's registries are).
    const [fromHost, fromBase] = pull
      ? [remoteHost, `${remote.url.replace(/\/+$/, '')}`]
      : [opts.localRegistry, `http://${opts.localRegistry}`];
    const toHost = pull ? opts.localRegistry : remoteHost;
    const toUrl = pull ? `http://${opts.localRegistry}` : remote.url;
    const headers: Record<string, string> =
      pull && basic ? { Authorization: `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}` } : {};
    try {
      // What the filters match in the registry copied from.
      const all: string[] = [];
      for (let next: string | undefined = '/v2/_catalog?n=1000'; next;) {
        const res = await fetch(`${fromBase}${next}`, { headers });
        if (!res.ok) throw new Error(`catalog of ${fromHost}: HTTP ${res.status}`);
        all.push(...(((await res.json()) as { repositories?: string[] }).repositories ?? []));
        next = res.headers.get('link')?.match(/<([^>]+)>/)?.[1];
      }
      const repos = all.filter((r) => globToRegExp(nameFilter).test(r));
      const work: { repo: string; tag: string }[] = [];
      for (const repo of repos) {
        const res = await fetch(`${fromBase}/v2/${repo}/tags/list`, { headers });
        const tags = res.ok ? (((await res.json()) as { tags?: string[] }).tags ?? []) : [];
        for (const tag of tags.filter((t) => globToRegExp(tagFilter).test(t))) work.push({ repo, tag });
      }
      exec.total = work.length;
      exec.in_progress = work.length;
      exec.status = 'Running';
      await Promise.all(
        work.map(async ({ repo, tag }) => {
          const parts = repo.split('/');
          const count = policy.dest_namespace_replace_count ?? -1;
          const destRepo = policy.dest_namespace
            ? [policy.dest_namespace, ...(count < 0 ? parts.slice(-1) : parts.slice(count))].join('/')
            : repo;
          const t: Task & { log: string[] } = {
            id: id(),
            execution_id: exec.id!,
            status: 'Running',
            job_id: randomUUID().replace(/-/g, '').slice(0, 24),
            operation: 'copy',
            resource_type: 'image',
            src_resource: `${repo}:[${tag}]`,
            dst_resource: `${destRepo}:[${tag}](${toUrl})`,
            start_time: now(),
            log: [],
          };
          tasks.set(t.id!, t);
          const line = (level: string, msg: string) =>
            t.log.push(`${now()} [${level}] [/controller/replication/transfer/image/transfer.go:0]: ${msg}`);
          line(
            'INFO',
            `copying ${repo}:[${tag}](source registry) to ${destRepo}:[${tag}](destination registry)...`,
          );
          try {
            const r = await copier.copy({
              source: `${fromHost}/${repo}:${tag}`,
              target: `${toHost}/${destRepo}:${tag}`,
            });
            line(
              'INFO',
              `copy ${repo}:${tag} completed: ${r.digest} (${r.blobs.copied} blobs copied, ${r.blobs.skipped} present)`,
            );
            t.status = 'Success';
            exec.succeed = (exec.succeed ?? 0) + 1;
          } catch (err) {
            line('ERROR', `failed to copy ${repo}:${tag}: ${(err as Error).message}`);
            t.status = 'Error';
            exec.failed = (exec.failed ?? 0) + 1;
          }
          exec.in_progress = (exec.in_progress ?? 1) - 1;
          t.end_time = now();
        }),
      );
      if ((exec.failed ?? 0) > 0) finish('Error', `${exec.failed} of ${exec.total} tasks failed`);
      else finish('Success', '');
    } catch (err) {
      finish('Error', (err as Error).message);
    } finally {
      await copyPool.close(1_000);
    }
  }

  api.register({
    getHealth: () => ({ status: 200, body: { status: 'healthy', components: [] } }),
    listRegistries: (c: Context) =>
      page(
        [...endpoints.values()].map(({ credential, ...r }) => ({
          ...r,
          credential: {
            type: credential?.type ?? 'basic',
            access_key: credential?.access_key ?? '',
            access_secret: '*****',
          },
        })),
        c,
      ),
    createRegistry: (c: Context) => {
      const body = c.request.requestBody as RegistryEndpoint;
      if ([...endpoints.values()].some((r) => r.name === body.name))
        return { status: 409, body: errors('CONFLICT', `registry ${body.name} already exists`) };
      const r = { ...body, id: id(), status: 'healthy', creation_time: now(), update_time: now() };
      endpoints.set(r.id, r);
      return { status: 201, headers: location(`/registries/${r.id}`) };
    },
    getRegistry: (c: Context) => {
      const r = endpoints.get(Number(c.request.params.id));
      if (!r) return { status: 404, body: errors('NOT_FOUND', 'registry not found') };
      const { credential: _secret, ...shown } = r;
      return { status: 200, body: shown };
    },
    updateRegistry: (c: Context) => {
      const r = endpoints.get(Number(c.request.params.id));
      if (!r) return { status: 404, body: errors('NOT_FOUND', 'registry not found') };
      const u = c.request.requestBody as components['schemas']['RegistryUpdate'];
      if (u.url) r.url = u.url;
      if (u.insecure !== undefined && u.insecure !== null) r.insecure = u.insecure;
      if (u.access_key)
        r.credential = {
          type: u.credential_type ?? 'basic',
          access_key: u.access_key,
          access_secret: u.access_secret ?? '',
        };
      r.update_time = now();
      return { status: 200 };
    },
    listReplicationPolicies: (c: Context) => page([...policies.values()], c),
    createReplicationPolicy: (c: Context) => {
      const body = c.request.requestBody as Policy;
      if ([...policies.values()].some((p) => p.name === body.name))
        return { status: 409, body: errors('CONFLICT', `policy ${body.name} already exists`) };
      // Harbor replicates between itself and one remote endpoint: the source (pull) or the destination (push).
      if (body.src_registry?.id && body.dest_registry?.id)
        return { status: 400, body: errors('BAD_REQUEST', 'either the source or the destination must be Harbor itself') };
      if (!endpoints.has((body.src_registry?.id || body.dest_registry?.id) ?? -1))
        return { status: 400, body: errors('BAD_REQUEST', `${body.src_registry?.id ? 'source' : 'destination'} registry not found`) };
      const p: Policy = { ...body, id: id(), creation_time: now(), update_time: now() };
      policies.set(p.id!, p);
      return { status: 201, headers: location(`/replication/policies/${p.id}`) };
    },
    getReplicationPolicy: (c: Context) => {
      const p = policies.get(Number(c.request.params.id));
      return p ? { status: 200, body: p } : { status: 404, body: errors('NOT_FOUND', 'policy not found') };
    },
    updateReplicationPolicy: (c: Context) => {
      const pid = Number(c.request.params.id);
      const old = policies.get(pid);
      if (!old) return { status: 404, body: errors('NOT_FOUND', 'policy not found') };
      policies.set(pid, {
        ...(c.request.requestBody as Policy),
        id: pid,
        creation_time: old.creation_time,
        update_time: now(),
      });
      return { status: 200 };
    },
    deleteReplicationPolicy: (c: Context) =>
      policies.delete(Number(c.request.params.id))
        ? { status: 200 }
        : { status: 404, body: errors('NOT_FOUND', 'policy not found') },
    startReplication: (c: Context) => {
      const { policy_id } = c.request.requestBody as { policy_id: number };
      const policy = policies.get(policy_id);
      if (!policy)
        return { status: 404 as const, body: errors('NOT_FOUND', `policy ${policy_id} not found`) };
      const e: Execution = {
        id: id(),
        policy_id,
        status: 'Pending',
        status_text: '',
        trigger: 'MANUAL',
        start_time: now(),
        total: 0,
        failed: 0,
        succeed: 0,
        in_progress: 0,
        stopped: 0,
      };
      executions.set(e.id!, e);
      const job = execute(e, policy).finally(() => running.delete(job));
      running.add(job);
      return { status: 201, headers: location(`/replication/executions/${e.id}`) };
    },
    listReplicationExecutions: (c: Context) => page([...executions.values()], c),
    getReplicationExecution: (c: Context) => {
      const e = executions.get(Number(c.request.params.id));
      return e ? { status: 200, body: e } : { status: 404, body: errors('NOT_FOUND', 'execution not found') };
    },
    listReplicationTasks: (c: Context) =>
      page(
        [...tasks.values()]
          .filter((t) => t.execution_id === Number(c.request.params.id))
          .map(({ log: _log, ...t }) => t),
        c,
      ),
    getReplicationLog: (c: Context) => {
      const t = tasks.get(Number(c.request.params.task_id));
      if (!t || t.execution_id !== Number(c.request.params.id))
        return { status: 404, body: errors('NOT_FOUND', 'task not found') };
      return { status: 200, headers: { 'Content-Type': 'text/plain' }, body: t.log.join('\n') + '\n' };
    },
    validationFail: (c: Context) => {
      const what = (c.validation.errors ?? [])
        .map((e) => `${e.instancePath || '(body)'} ${e.message}`)
        .join('; ');
      violations.push(
        `request ${c.request.method.toUpperCase()} ${c.request.path} (${c.operation?.operationId}) breaks the spec: ${what}`,
      );
      return { status: 400, body: errors('BAD_REQUEST', what) };
    },
    notFound: (c: Context) => {
      violations.push(
        `request ${c.request.method.toUpperCase()} ${c.request.path}: no such route in Harbor's API`,
      );
      return { status: 404, body: errors('NOT_FOUND', 'no such route') };
    },
    methodNotAllowed: (c: Context) => {
      violations.push(
        `request ${c.request.method.toUpperCase()} ${c.request.path}: method not in Harbor's API`,
      );
      return { status: 405, body: errors('METHOD_NOT_ALLOWED', 'method not allowed') };
    },
    notImplemented: (c: Context) => {
      violations.push(
        `request ${c.request.method.toUpperCase()} ${c.request.path} (${c.operation?.operationId}): in the spec, not in the double`,
      );
      return { status: 500, body: errors('UNKNOWN', 'not implemented by the Harbor double') };
    },
  });
  await api.init();

  const validateResponse = (
    operationId: string,
    status: number,
    body: unknown,
    headers: Record<string, string>,
  ): string[] => {
    const out: string[] = [];
    const op = api.getOperation(operationId);
    const responses = (op?.responses ?? {}) as Record<
      string,
      { content?: Record<string, unknown>; headers?: Record<string, unknown> }
    >;
    const spec = responses[String(status)] ?? responses.default;
    if (!spec) return [`${operationId} has no ${status} response in the spec`];
    const v = api.validateResponse(body, operationId, status);
    if (v.errors?.length) out.push(...v.errors.map((e) => `body ${e.instancePath || ''} ${e.message}`));
    const h = api.validateResponseHeaders(headers, operationId, { statusCode: status });
    if (h.errors?.length) out.push(...h.errors.map((e) => `headers ${e.instancePath || ''} ${e.message}`));
    // Headers Harbor always sends where its spec lists them.
    for (const name of ['Location', 'X-Request-Id'])
      if (spec.headers?.[name] && !Object.keys(headers).some((k) => k.toLowerCase() === name.toLowerCase()))
        out.push(`headers: ${name} missing`);
    if (!spec.content && body !== undefined) out.push('a body where the spec has none');
    if (spec.content && body === undefined) out.push('no body where the spec has one');
    return out;
  };

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      let s = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (s += d));
      req.on('end', () => resolve(s));
      req.on('error', reject);
    });

  const basic = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`;

  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const requestId = String(req.headers['x-request-id'] ?? randomUUID());
    const send = (operationId: string | undefined, reply: Reply) => {
      const headers: Record<string, string> = { 'X-Request-Id': requestId, ...(reply.headers ?? {}) };
      let payload: string | undefined;
      if (reply.body !== undefined) {
        const text = typeof reply.body === 'string' && headers['Content-Type'] === 'text/plain';
        payload = text ? (reply.body as string) : JSON.stringify(reply.body);
        headers['Content-Type'] ??= 'application/json';
      }
      if (operationId) {
        const problems = validateResponse(operationId, reply.status, reply.body, headers);
        if (problems.length) {
          violations.push(
            `response ${reply.status} of ${operationId} breaks the spec: ${problems.join('; ')}`,
          );
          res.writeHead(500, { 'Content-Type': 'application/json', 'X-Request-Id': requestId });
          res.end(JSON.stringify(errors('UNKNOWN', 'the Harbor double answered outside the spec')));
          return;
        }
      }
      res.writeHead(reply.status, headers);
      res.end(payload);
    };
    try {
      const raw = await readBody(req);
      let body: unknown;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          violations.push(`request ${req.method} ${url.pathname}: body is not JSON`);
          return send(undefined, { status: 400, body: errors('BAD_REQUEST', 'invalid JSON') });
        }
      }
      const oreq: OabRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        headers: req.headers as Record<string, string>,
        query: Object.fromEntries(url.searchParams),
        ...(raw ? { body } : {}),
      };
      const op = api.matchOperation(oreq);
      requests.push({
        method: oreq.method,
        path: url.pathname,
        ...(op?.operationId ? { operationId: op.operationId } : {}),
      });
      if (req.headers.authorization !== basic && op?.operationId !== 'getHealth')
        return send(op?.operationId, { status: 401, body: errors('UNAUTHORIZED', 'unauthorized') });
      const reply = (await api.handleRequest(oreq)) as Reply;
      send(op?.operationId, reply);
    } catch (err) {
      violations.push(`the double failed on ${req.method} ${url.pathname}: ${(err as Error).message}`);
      if (!res.headersSent)
        res.writeHead(500, { 'Content-Type': 'application/json', 'X-Request-Id': requestId });
      res.end(JSON.stringify(errors('UNKNOWN', (err as Error).message)));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  return {
    url: base,
    violations,
    requests,
    policies,
    registries: endpoints,
    validateRequest(req) {
      const v = api.validateRequest(req);
      return (v.errors ?? []).map((e) => `${e.instancePath || '(request)'} ${e.message}`);
    },
    validateResponse,
    async stop() {
      await Promise.allSettled([...running]);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
