/**
 * The behaviour table from the stack's side (`npm run stack -- behave`, setBehaviour):
 * make the pods of one image, or carrying one label, never become ready, crash-loop, or
 * turn unready some seconds after becoming ready, without touching their templates.
 *
 * An image rule is matched by repository and digest: a tag is resolved to its digest
 * now (in the registry the reference names, or, for `demo/web:v2` with no registry, in
 * the first of the stack's registries that has it), so a pod pulling the same image by
 * digest, or from a regional mirror, matches too; other versions of the repository do
 * not. The table lives in `<data>/behaviours.json`; the puller applies it to pods it
 * marks pulled from then on (pods already running keep their behaviour).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { StackConfig } from './config.ts';
import { httpRequest } from './net.ts';
import { isAlive, readState, withLock } from './process.ts';
import type { Behaviour, BehaviourRule } from './puller/behaviours.ts';
import { BehaviourRuleSchema, BehaviourTableSchema, parseBehaviour, ruleKey } from './puller/behaviours.ts';
import { parseImage, resolveImage } from './puller/registry.ts';
import { behavioursFile, PULLER_PART, pullerUrl } from './puller.ts';
import { registryInfo } from './registry.ts';

export interface BehaviourInput {
  /** An image reference: with the stack registry's host, or without (`demo/web:v2`), by tag or digest. */
  image?: string;
  /** `key=value`: pods carrying that label. */
  label?: string;
  /** `unready`, `crashloop`, `ready`, or `unready-after=30s` (or give afterSeconds). */
  behaviour: Behaviour | `unready-after=${string}`;
  afterSeconds?: number;
}

export function readBehaviours(cfg: StackConfig): BehaviourRule[] {
  const file = behavioursFile(cfg);
  if (!existsSync(file)) return [];
  return BehaviourTableSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

/** True when the reference names a registry host (`host:port/...`, `localhost/...`, `a.b/...`). */
const hasHost = (raw: string) => {
  const first = raw.split('/')[0]!;
  return raw.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
};

/** The repository (without host) and digest an image rule matches. */
async function resolveRule(cfg: StackConfig, image: string): Promise<{ repository: string; digest: string }> {
  const hosts = cfg.fleet.registries.map((r) => registryInfo(cfg, r).host);
  const candidates = hasHost(image) ? [image] : hosts.map((h) => `${h}/${image}`);
  const errors: string[] = [];
  for (const raw of candidates) {
    const ref = parseImage(raw);
    if (!ref) throw new Error(`"${image}" is not an image reference`);
    const r = await resolveImage(ref, new Set(hosts));
    if (r.ok) return { repository: ref.repository, digest: r.digest };
    errors.push(r.message);
  }
  throw new Error(
    hasHost(image)
      ? `cannot resolve ${image}: ${errors[0]}`
      : `${image} is in none of the stack's registries (${hosts.join(', ')})`,
  );
}

async function tellPuller(cfg: StackConfig): Promise<void> {
  if (!isAlive(readState(cfg.dataDir)?.processes[PULLER_PART])) return; // it reads the file when it starts
  const res = await httpRequest(`${pullerUrl(cfg)}/v1/behaviours/reload`, {
    method: 'POST',
    timeoutMs: 5_000,
  });
  if (res.status !== 200) throw new Error(`the puller refused the behaviour table: ${res.body}`);
}

function write(cfg: StackConfig, table: BehaviourRule[]): void {
  const file = behavioursFile(cfg);
  writeFileSync(`${file}.tmp`, JSON.stringify(table, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

/** Adds a rule (replacing one with the same image or label; the newest matching rule wins) and returns the table. */
export async function setBehaviourOn(cfg: StackConfig, input: BehaviourInput): Promise<BehaviourRule[]> {
  if (Boolean(input.image) === Boolean(input.label))
    throw new Error('give exactly one of --image and --label');
  const b = input.behaviour.startsWith('unready-after=')
    ? parseBehaviour(input.behaviour)
    : { behaviour: input.behaviour as Behaviour, afterSeconds: input.afterSeconds };
  if (b.behaviour === 'unready-after' && b.afterSeconds === undefined)
    throw new Error('unready-after needs a duration: unready-after=30s');
  const resolved = input.image ? await resolveRule(cfg, input.image) : {};
  const parsed = BehaviourRuleSchema.safeParse({
    ...(input.image ? { image: input.image } : { label: input.label }),
    behaviour: b.behaviour,
    ...(b.behaviour === 'unready-after' ? { afterSeconds: b.afterSeconds } : {}),
    ...resolved,
  });
  if (!parsed.success)
    throw new Error(
      `bad behaviour: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return withLock(cfg.dataDir, 'behave', async () => {
    const table = readBehaviours(cfg).filter((r) => ruleKey(r) !== ruleKey(parsed.data));
    table.push(parsed.data);
    write(cfg, table);
    await tellPuller(cfg);
    return table;
  });
}

/** Removes the rule for that image or label (both absent: every rule); returns how many and what is left. */
export async function clearBehaviourOn(
  cfg: StackConfig,
  which: { image?: string; label?: string } = {},
): Promise<{ removed: number; rules: BehaviourRule[] }> {
  return withLock(cfg.dataDir, 'behave', async () => {
    const before = readBehaviours(cfg);
    const all = !which.image && !which.label;
    const rules = all
      ? []
      : before.filter(
          (r) => !((which.image && r.image === which.image) || (which.label && r.label === which.label)),
        );
    write(cfg, rules);
    await tellPuller(cfg);
    return { removed: before.length - rules.length, rules };
  });
}
