/**
 * The inventory of the local stack, from `.flotilla/stack.json`:
 *
 *   node worker/inventory-from-stack.ts [--stack .flotilla/stack.json] > .flotilla/inventory.yaml
 *   node worker/inventory-from-stack.ts --out .flotilla/inventory.yaml --format json
 *
 * A cluster's mirror is the host of its regional registry.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { InventorySchema, type Inventory } from '../model/inventory.ts';
import type { StackInfo } from '../stack/types.ts';

export function inventoryFromStack(info: StackInfo): Inventory {
  const registries = new Map(info.registries.map((r) => [r.name, r]));
  const clusters = info.clusters.map((c) => {
    const mirror = c.mirror ? registries.get(c.mirror) : undefined;
    if (c.mirror && !mirror)
      throw new Error(`cluster "${c.name}": mirror registry "${c.mirror}" is not in the stack's registries`);
    return {
      name: c.name,
      region: c.region,
      ...(c.zone ? { zone: c.zone } : {}),
      provider: c.provider,
      labels: { ...c.labels },
      kubeconfig: { path: c.kubeconfig },
      ...(mirror ? { mirror: mirror.host } : {}),
      capacity: c.capacity,
    };
  });
  // The stack's registries speak plain HTTP on loopback, without credentials.
  const regs = info.registries.map((r) => ({ name: r.name, host: r.host, region: r.region, type: 'oci', tls: 'none' }));
  // Validate what we hand out: a stack that does not make a valid inventory is a bug to hear about now.
  return InventorySchema.parse({ clusters, registries: regs });
}

export function readStackInfo(path: string): StackInfo {
  return JSON.parse(readFileSync(path, 'utf8')) as StackInfo;
}

function main(argv: string[]): void {
  const program = new Command()
    .name('inventory-from-stack')
    .description("Writes the local stack's cluster inventory (YAML or JSON) for the worker and the API")
    .option(
      '--stack <path>',
      'stack.json written by `npm run stack -- up`',
      resolve(import.meta.dirname, '../.flotilla/stack.json'),
    )
    .option('--format <format>', 'yaml or json', 'yaml')
    .option('--out <path>', 'write here instead of stdout')
    .parse(argv);
  const opts = program.opts<{ stack: string; format: string; out?: string }>();
  if (!['yaml', 'json'].includes(opts.format))
    program.error(`--format must be yaml or json, not "${opts.format}"`);
  let info: StackInfo;
  try {
    info = readStackInfo(opts.stack);
  } catch (err) {
    program.error(
      `cannot read ${opts.stack}: ${(err as Error).message} (is the stack up? npm run stack -- up)`,
    );
  }
  const inv = inventoryFromStack(info!);
  const text = opts.format === 'json' ? `${JSON.stringify(inv, null, 2)}\n` : toYaml(inv);
  if (opts.out) writeFileSync(opts.out, text);
  else process.stdout.write(text);
}

if (import.meta.main) main(process.argv);
