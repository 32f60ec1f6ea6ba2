import { z } from 'zod';
import { dnsLabel, labelMap } from './names.ts';
import { RegistrySchema } from './registry.ts';
import { FailoverSettingsSchema } from './failover.ts';

/**
 * The fleet: every cluster Flotilla may deliver to. The file holds how to reach
 * each cluster (a kubeconfig path); that part is read on the worker only and
 * never enters a workflow. Workflows and the API see `ClusterInfo`.
 */
export const ClusterSchema = z.object({
  name: dnsLabel,
  region: z.string().min(1),
  zone: z.string().min(1).optional(),
  provider: z.string().min(1),
  labels: labelMap.default({}),
  kubeconfig: z.object({ path: z.string().min(1), context: z.string().min(1).optional() }),
  /** The regional registry (host[:port]) this cluster pulls from, if not the central one. */
  mirror: z.string().min(1).optional(),
  /** Relative capacity, for `divided` replica distribution. */
  capacity: z.number().positive().default(1),
  /** Task queue that carries this cluster's activities; default `flotilla-cluster-<name>`. */
  taskQueue: z.string().min(1).optional(),
});
export type Cluster = z.infer<typeof ClusterSchema>;

export const InventorySchema = z
  .object({
    clusters: z.array(ClusterSchema).min(1),
    /** The image registries (central and regional): how to reach each, never its secret (model/registry.ts). */
    registries: z.array(RegistrySchema).default([]),
    /** Health probing, failover and failback of the fleet (model/failover.ts; absent: its defaults, failover off). */
    failover: FailoverSettingsSchema.optional(),
  })
  .superRefine((inv, ctx) => {
    const seen = new Set<string>();
    inv.clusters.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['clusters', i, 'name'], message: `duplicate cluster "${c.name}"` });
      seen.add(c.name);
    });
    for (const key of ['name', 'host'] as const) {
      const hosts = new Set<string>();
      inv.registries.forEach((r, i) => {
        const v = key === 'host' ? r.host.toLowerCase() : r.name;
        if (hosts.has(v)) ctx.addIssue({ code: 'custom', path: ['registries', i, key], message: `duplicate registry ${key} "${v}"` });
        hosts.add(v);
      });
    }
  });
export type Inventory = z.infer<typeof InventorySchema>;

/** What a workflow may know of a cluster: no credentials, no file paths. */
export interface ClusterInfo {
  name: string;
  region: string;
  zone?: string;
  provider: string;
  labels: Record<string, string>;
  mirror?: string;
  capacity: number;
  taskQueue: string;
}

export function clusterTaskQueue(name: string): string {
  return `flotilla-cluster-${name}`;
}

export function toClusterInfo(c: Cluster): ClusterInfo {
  return {
    name: c.name,
    region: c.region,
    ...(c.zone ? { zone: c.zone } : {}),
    provider: c.provider,
    // region, zone and provider are selectable like labels: {region: cn-north}
    labels: { ...c.labels, region: c.region, provider: c.provider, ...(c.zone ? { zone: c.zone } : {}) },
    ...(c.mirror ? { mirror: c.mirror } : {}),
    capacity: c.capacity,
    taskQueue: c.taskQueue ?? clusterTaskQueue(c.name),
  };
}
