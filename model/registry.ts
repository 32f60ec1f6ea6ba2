import { z } from 'zod';
import { dnsLabel } from './names.ts';

/**
 * Image registries of the inventory: the central one and one per region. The
 * worker reads this together with its credentials file (keyed by host, held
 * by the worker only); workflows and the API see `RegistryInfo`, which has no
 * credentials and no reference to them.
 *
 *   type   oci     any OCI distribution registry (Docker's registry, Harbor, cloud registries): Flotilla
 *                  copies images itself (activities/registry)
 *          harbor  a Harbor: replication may also run as a Harbor replication policy (activities/harbor)
 *   tls    verify (default) | skip-verify (self-signed) | none (plain HTTP, loopback test registries)
 */
export const RegistryType = { oci: 'oci', harbor: 'harbor' } as const;
export type RegistryType = (typeof RegistryType)[keyof typeof RegistryType];

export const RegistryTls = { verify: 'verify', skipVerify: 'skip-verify', none: 'none' } as const;
export type RegistryTls = (typeof RegistryTls)[keyof typeof RegistryTls];

/** host[:port] as image references carry it (no scheme, no path). */
export const registryHost = z
  .string()
  .regex(
    /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/,
    'must be host[:port] without a scheme or path (e.g. "harbor.example.com" or "127.0.0.1:5000")',
  );

export const RegistrySchema = z
  .object({
    name: dnsLabel,
    host: registryHost,
    /** "central" or the region whose clusters pull from it. */
    region: z.string().min(1),
    type: z.enum([RegistryType.oci, RegistryType.harbor]).default(RegistryType.oci),
    tls: z.enum([RegistryTls.verify, RegistryTls.skipVerify, RegistryTls.none]).default(RegistryTls.verify),
    /**
     * The key of this registry's entry in the worker's credentials file (default: the host).
     * A name, never a secret: the secret stays in the file on the worker.
     */
    credentials: z.string().min(1).optional(),
    /** Harbor only: Harbor's own URL when it differs from https://<host> (the API is under /api/v2.0). */
    harborUrl: z.url().optional(),
  })
  .strict();
export type Registry = z.infer<typeof RegistrySchema>;
export type RegistryInput = z.input<typeof RegistrySchema>;

export const RegistryInventorySchema = z
  .object({ registries: z.array(RegistrySchema) })
  .superRefine((inv, ctx) => {
    for (const key of ['name', 'host'] as const) {
      const seen = new Set<string>();
      inv.registries.forEach((r, i) => {
        const v = key === 'host' ? r.host.toLowerCase() : r.name;
        if (seen.has(v))
          ctx.addIssue({
            code: 'custom',
            path: ['registries', i, key],
            message: `duplicate registry ${key} "${v}"`,
          });
        seen.add(v);
      });
    }
  });
export type RegistryInventory = z.infer<typeof RegistryInventorySchema>;

/** What a workflow may know of a registry. */
export interface RegistryInfo {
  name: string;
  host: string;
  region: string;
  type: RegistryType;
}

export function toRegistryInfo(r: Registry): RegistryInfo {
  return { name: r.name, host: r.host, region: r.region, type: r.type };
}

/**
 * Failure types of the registry and Harbor activities (ApplicationFailure.type).
 * Workflows branch on these strings; only RegistryUnreachable is retryable
 * (ReplicationFailed: a Harbor replication execution ended in failure).
 */
export const RegistryFailure = {
  RegistryUnreachable: 'RegistryUnreachable',
  ImageNotFound: 'ImageNotFound',
  RegistryAuthFailed: 'RegistryAuthFailed',
  DigestMismatch: 'DigestMismatch',
  RegistryRejected: 'RegistryRejected',
  /** An input that is not an image reference, a target or a platform the copier can use. */
  InvalidReference: 'InvalidReference',
  ReplicationFailed: 'ReplicationFailed',
} as const;
export type RegistryFailure = (typeof RegistryFailure)[keyof typeof RegistryFailure];
