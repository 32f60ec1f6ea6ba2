/** Reads the cluster inventory (YAML or JSON) and resolves kubeconfig paths against its folder. */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { InventorySchema, type Inventory } from '../model/inventory.ts';

export class InventoryError extends Error {
  override name = 'InventoryError';
}

export function parseInventory(doc: unknown, source = 'inventory', baseDir?: string): Inventory {
  const r = InventorySchema.safeParse(doc);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new InventoryError(`invalid inventory ${source}:\n${lines.join('\n')}`);
  }
  if (!baseDir) return r.data;
  return {
    registries: r.data.registries,
    clusters: r.data.clusters.map((c) => ({
      ...c,
      kubeconfig: {
        ...c.kubeconfig,
        path: isAbsolute(c.kubeconfig.path) ? c.kubeconfig.path : resolve(baseDir, c.kubeconfig.path),
      },
    })),
  };
}

export function loadInventory(path: string): Inventory {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InventoryError(
      `cannot read inventory ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new InventoryError(
      `inventory ${path} is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  return parseInventory(doc, path, dirname(resolve(path)));
}
