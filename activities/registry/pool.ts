/**
 * One RegistryClient per registry host, built from the registry inventory
 * (tls mode, credentials key) and the worker's credentials. A host that is not
 * in the inventory is reached over verified HTTPS, with the credentials filed
 * under its host if any.
 */
import type { Logger } from 'pino';
import { RegistryTls, type Registry } from '../../model/registry.ts';
import { credentialFor, type RegistryCredentials } from './credentials.ts';
import { defaultHttpSettings, RegistryClient, type HttpSettings } from './http.ts';

export class RegistryPool {
  private readonly clients = new Map<string, RegistryClient>();
  private readonly byHost: Map<string, Registry>;

  private readonly credentials: RegistryCredentials;
  private readonly log: Logger;
  private readonly http: HttpSettings;

  constructor(
    registries: readonly Registry[],
    credentials: RegistryCredentials,
    log: Logger,
    http: HttpSettings = defaultHttpSettings,
  ) {
    this.credentials = credentials;
    this.log = log;
    this.http = http;
    this.byHost = new Map(registries.map((r) => [r.host.toLowerCase(), r]));
  }

  registry(host: string): Registry | undefined {
    return this.byHost.get(host.toLowerCase());
  }

  client(host: string): RegistryClient {
    const key = host.toLowerCase();
    let c = this.clients.get(key);
    if (!c) {
      const r = this.byHost.get(key);
      const tls = r?.tls ?? RegistryTls.verify;
      c = new RegistryClient(
        { host, tls },
        credentialFor(this.credentials, host, r?.credentials),
        this.log,
        this.http,
      );
      this.clients.set(key, c);
    }
    return c;
  }

  /** Closes every client (requests still under way after `graceMs` are destroyed). */
  async close(graceMs?: number): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close(graceMs)));
    this.clients.clear();
  }
}
