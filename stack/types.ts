/** The shape of `.flotilla/stack.json`, written by `npm run stack -- up`. */
export interface StackClusterInfo {
  name: string;
  region: string;
  zone?: string;
  provider: string;
  labels: Record<string, string>;
  /** The cluster's API as clients use it: the stack's API-server proxy (fault rules apply). */
  apiserverUrl: string;
  /** Kubeconfig (mode 0600) for `apiserverUrl`: what Flotilla's worker and the tests use. */
  kubeconfig: string;
  /** The apiserver itself, bypassing the proxy (to read back what a faulted request did). */
  directUrl: string;
  /** Kubeconfig for `directUrl`; the cluster's own components use it. */
  directKubeconfig: string;
  /** The regional registry's name in `registries`. */
  mirror?: string;
  capacity: number;
  nodes: number;
}
export interface StackRegistryInfo {
  name: string;
  /** "central" or a region name. */
  region: string;
  /** host:port, plain HTTP on loopback. */
  host: string;
  url: string;
}
export interface StackInfo {
  dataDir: string;
  /** Every port derives from it (stack/config.ts); pass it with dataDir to act on this stack from another process. */
  portBase?: number;
  temporal: { address: string; namespace: string; uiUrl: string };
  clusters: StackClusterInfo[];
  registries: StackRegistryInfo[];
  /** Prometheus (scrape interval 1 s): `${url}/api/v1/query?query=...`. */
  prometheus: { url: string };
  /**
   * The metrics target: made-up `http_requests_total{app,version,cluster,code}` counters,
   * `${url}/metrics`; set what it serves with setTraffic/clearTraffic (stack/index.ts).
   */
  metricsTarget: { url: string };
  /** Bearer tokens per role for the API (written by the run command), file mode 0600. */
  api?: { url?: string; tokens: Record<string, string> };
}
