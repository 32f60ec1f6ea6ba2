/**
 * One KubeConfig and one set of API clients per cluster, built on the worker
 * from the inventory. The kubeconfig (and what it holds: tokens, client keys)
 * stays here: workflows see only ClusterInfo, and nothing below logs it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  createConfiguration,
  HttpMethod,
  KubeConfig,
  KubernetesObjectApi,
  ServerConfiguration,
  Watch,
  type Configuration,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import type { Cluster } from '../../model/inventory.ts';

/**
 * The signal of the call in progress (an activity's cancellation): every request
 * made under `withCallSignal` is aborted with it, so a cancelled activity stops
 * its requests at once instead of letting them land later.
 */
const callSignal = new AsyncLocalStorage<AbortSignal>();
export function withCallSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return callSignal.run(signal, fn);
}
export const currentCallSignal = (): AbortSignal | undefined => callSignal.getStore();

export interface RestOptions {
  query?: Record<string, string | undefined>;
  /** A JSON-able body, sent as is (no model serialisation: nothing is dropped). */
  body?: unknown;
  contentType?: string;
}

/** Bound on one API request: an apiserver that accepts but never answers counts as unreachable. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export interface ClusterClients {
  /** The inventory name of the cluster, for messages. */
  readonly cluster: string;
  /** The apiserver URL (no credentials), for messages. */
  readonly server: string;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  /** Generic client (resource discovery, typed reads). */
  readonly objects: KubernetesObjectApi;
  /** Watches (list-then-watch helpers live in watch.ts). */
  readonly watch: Watch;
  /**
   * One request with the exact JSON in and out (the typed clients drop fields their
   * models do not know, which a faithful capture and restore cannot afford).
   * Non-2xx answers throw ApiException, like the typed clients.
   */
  rest<T = unknown>(method: keyof typeof HttpMethod, path: string, opts?: RestOptions): Promise<T>;
}

export interface ClientOptions {
  requestTimeoutMs?: number;
}

export class ClusterConfigError extends Error {
  override name = 'ClusterConfigError';
}

/** Reads the cluster's kubeconfig (file, optional context) and checks that it names a cluster. */
export function loadKubeConfig(cluster: Pick<Cluster, 'name' | 'kubeconfig'>): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(cluster.kubeconfig.path);
  } catch (err) {
    // The error of a YAML parser may quote the file; say only where and what kind.
    const code = (err as NodeJS.ErrnoException).code;
    throw new ClusterConfigError(
      `cluster "${cluster.name}": cannot read kubeconfig ${cluster.kubeconfig.path}${code ? ` (${code})` : ' (not a valid kubeconfig)'}`,
    );
  }
  if (cluster.kubeconfig.context) {
    if (!kc.getContexts().some((c) => c.name === cluster.kubeconfig.context)) {
      throw new ClusterConfigError(
        `cluster "${cluster.name}": kubeconfig ${cluster.kubeconfig.path} has no context "${cluster.kubeconfig.context}" (has: ${kc
          .getContexts()
          .map((c) => c.name)
          .join(', ')})`,
      );
    }
    kc.setCurrentContext(cluster.kubeconfig.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new ClusterConfigError(
      `cluster "${cluster.name}": kubeconfig ${cluster.kubeconfig.path} has no current cluster`,
    );
  }
  return kc;
}

/**
 * Builds the clients of one cluster. Every request carries a timeout (an
 * AbortSignal set by a middleware, which runs after authentication has been
 * applied) and reuses one connection pool.
 */
export function createClusterClients(
  cluster: Pick<Cluster, 'name' | 'kubeconfig'>,
  opts: ClientOptions = {},
): ClusterClients {
  const kc = loadKubeConfig(cluster);
  return clientsFromKubeConfig(cluster.name, kc, opts);
}

export function clientsFromKubeConfig(
  name: string,
  kc: KubeConfig,
  opts: ClientOptions = {},
): ClusterClients {
  const server = kc.getCurrentCluster()!.server;
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // client-node builds a new undici Agent (TLS settings of the kubeconfig) for every request, so every
  // request would open, handshake and abandon its own connection. The TLS settings of a loaded
  // kubeconfig do not change: keep the first Agent and its keep-alive connections.
  let dispatcher: ReturnType<RequestContext['getDispatcher']>;
  const config: Configuration = createConfiguration({
    baseServer: new ServerConfiguration(server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      {
        pre: async (ctx: RequestContext) => {
          ctx.setHeaderParam('User-Agent', 'flotilla');
          const call = callSignal.getStore();
          const timeout = AbortSignal.timeout(timeoutMs);
          ctx.setSignal(call ? AbortSignal.any([timeout, call]) : timeout);
          const fresh = ctx.getDispatcher();
          if (fresh) {
            if (!dispatcher) dispatcher = fresh;
            else if (fresh !== dispatcher) {
              ctx.setDispatcher(dispatcher);
              void fresh.close(); // never used: nothing to drain
            }
          }
          return ctx;
        },
        post: async (res: ResponseContext) => res,
      },
    ],
  });
  const watch = new Watch(kc);
  const rest = async <T,>(method: keyof typeof HttpMethod, path: string, opts: RestOptions = {}): Promise<T> => {
    let ctx = config.baseServer.makeRequestContext(path, HttpMethod[method]);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) ctx.setQueryParam(k, v);
    ctx.setHeaderParam('Accept', 'application/json');
    if (opts.body !== undefined) {
      ctx.setHeaderParam('Content-Type', opts.contentType ?? 'application/json');
      ctx.setBody(JSON.stringify(opts.body));
    }
    await kc.applySecurityAuthentication(ctx);
    for (const m of config.middleware) ctx = await m.pre(ctx).toPromise();
    const res = await config.httpApi.send(ctx).toPromise();
    const text = await res.body.text();
    if (res.httpStatusCode < 200 || res.httpStatusCode > 299) {
      throw new ApiException(res.httpStatusCode, `HTTP ${res.httpStatusCode} from ${method} ${path}`, text, res.headers);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  };
  return {
    cluster: name,
    server,
    core: new CoreV1Api(config),
    apps: new AppsV1Api(config),
    objects: new KubernetesObjectApi(config),
    watch,
    rest,
  };
}
