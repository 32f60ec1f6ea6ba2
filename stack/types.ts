/** The shape of `.flotilla/stack.json`, written by `npm run stack -- up`. */
export interface StackClusterInfo {
  name: string;
  region: string;
  zone?: string;
  provider: string;
  labels: Record<string, string>;
  apiserverUrl: string;
  kubeconfig: string;
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
  /** Bearer tokens per role for the API (written by the run command), file mode 0600. */
  api?: { url?: string; tokens: Record<string, string> };
}
