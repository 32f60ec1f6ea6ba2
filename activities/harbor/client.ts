/**
 * Harbor's REST API (v2.0, as activities/harbor/swagger-v2.15.2.yaml has it)
 * through openapi-fetch, typed by harbor-api.ts (generated from that file), so
 * a call that drifts from Harbor's contract does not type-check. Basic auth
 * with the worker's credentials for the Harbor (a robot account); never logged.
 */
import createClient, { type Client } from 'openapi-fetch';
import { Agent, fetch as undiciFetch } from 'undici';
import { RegistryFailure, RegistryTls, type Registry } from '../../model/registry.ts';
import type { Credential } from '../registry/credentials.ts';
import { registryFailure, RegistryHttpError, toRegistryFailure } from '../registry/errors.ts';
import type { components, paths } from './harbor-api.ts';

export type HarborPolicy = components['schemas']['ReplicationPolicy'];
export type HarborRegistry = components['schemas']['Registry'];
export type HarborExecution = components['schemas']['ReplicationExecution'];
export type HarborTask = components['schemas']['ReplicationTask'];
export type HarborFilter = components['schemas']['ReplicationFilter'];

export const API_BASE = '/api/v2.0';

/** Harbor's own URL for a registry entry of type harbor. */
export function harborUrl(r: Registry): string {
  return (r.harborUrl ?? `${r.tls === RegistryTls.none ? 'http' : 'https'}://${r.host}`).replace(/\/+$/, '');
}

export interface HarborCallError {
  status: number;
  errors: { code?: string; message?: string }[];
}

export class HarborClient {
  readonly url: string;
  readonly name: string;
  readonly api: Client<paths>;
  private readonly dispatcher: Agent;

  constructor(r: Registry, credential: Readonly<Credential> | undefined) {
    this.url = harborUrl(r);
    this.name = r.name;
    this.dispatcher = new Agent({
      connections: 4,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
      connect: { rejectUnauthorized: r.tls !== RegistryTls.skipVerify },
    });
    const headers: Record<string, string> = {};
    if (credential && 'username' in credential)
      headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`;
    else if (credential && 'token' in credential) headers.authorization = `Bearer ${credential.token}`;
    const dispatcher = this.dispatcher;
    this.api = createClient<paths>({
      baseUrl: `${this.url}${API_BASE}`,
      headers,
      // undici's fetch (for the connection settings) takes its own Request class: pass the parts.
      fetch: async (req: Request) =>
        (await undiciFetch(req.url, {
          method: req.method,
          headers: [...req.headers],
          ...(req.body ? { body: await req.arrayBuffer() } : {}),
          signal: req.signal,
          dispatcher,
        })) as unknown as Response,
    });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /**
   * Runs one call and returns its data, or throws a typed failure naming the
   * Harbor and what was being done. `call` is an openapi-fetch call.
   */
  async call<T>(
    operation: string,
    call: () => Promise<{ data?: T; error?: unknown; response: Response }>,
    opts: { notFound?: RegistryFailure } = {},
  ): Promise<{ data: T | undefined; response: Response }> {
    let out: { data?: T; error?: unknown; response: Response };
    try {
      out = await call();
    } catch (err) {
      throw toRegistryFailure(err, { registry: this.url, operation: `Harbor ${this.name}: ${operation}` });
    }
    if (out.response.ok) return { data: out.data, response: out.response };
    const errors = (
      (out.error as { errors?: { code?: string; message?: string }[] } | undefined)?.errors ?? []
    ).map((e) => ({
      ...(e.code ? { code: e.code } : {}),
      ...(e.message ? { message: String(e.message).slice(0, 300) } : {}),
    }));
    const status = out.response.status;
    if (status === 404 && opts.notFound) {
      throw registryFailure(opts.notFound, `Harbor ${this.name}: ${operation}: not found (HTTP 404)`, {
        registry: this.url,
        operation,
        httpStatus: 404,
      });
    }
    const path = new URL(out.response.url || this.url).pathname;
    throw toRegistryFailure(
      new RegistryHttpError(status, operation.split(' ')[0] ?? 'call', this.url, path, errors),
      {
        registry: this.url,
        operation: `Harbor ${this.name}: ${operation}`,
      },
    );
  }
}

/** The id at the end of a Location header (`.../replication/executions/42`). */
export function idFromLocation(location: string | null): number | undefined {
  const m = location?.match(/\/(\d+)\/?$/);
  return m ? Number(m[1]) : undefined;
}
