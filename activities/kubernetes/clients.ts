/**
 * One KubeConfig and one set of API clients per cluster, built on the worker
 * from the inventory. The kubeconfig (and what it holds: tokens, client keys)
 * stays here: workflows see only ClusterInfo, and nothing below logs it.
 */
import {
  AppsV1Api,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  KubernetesObjectApi,
  ServerConfiguration,
  type Configuration,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import type { Cluster } from '../../model/inventory.ts';

/** Bound on one API request: an apiserver that accepts but never answers counts as unreachable. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export interface ClusterClients {
  /** The inventory name of the cluster, for messages. */
  readonly cluster: string;
  /** The apiserver URL (no credentials), for messages. */
  readonly server: string;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  /** Generic client for server-side apply of any object. */
  readonly objects: KubernetesObjectApi;
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
          ctx.setSignal(AbortSignal.timeout(timeoutMs));
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
  return {
    cluster: name,
    server,
    core: new CoreV1Api(config),
    apps: new AppsV1Api(config),
    objects: new KubernetesObjectApi(config),
  };
}
