/**
 * The delivery spec a user hands the CLI (`-f spec.yaml`, `-f -` for stdin):
 * the body of POST /v1/deliveries in YAML or JSON (JSON is YAML). The CLI does
 * not validate it beyond that: the API is the authority on what a delivery is
 * and answers with the field at fault. Only what the CLI itself changes is
 * checked here (`type` against the command, `--image` into `app.image`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export class SpecError extends Error {
  override name = 'SpecError';
}

/** The delivery types the commands send: deploy, canary, bluegreen (as the API spells them). */
export const DeliveryType = { deploy: 'deploy', canary: 'canary', blueGreen: 'blueGreen' } as const;
export type DeliveryType = (typeof DeliveryType)[keyof typeof DeliveryType];

export function parseSpec(text: string, source: string): Record<string, unknown> {
  const docs = [...parseAllDocuments(text)];
  const err = docs.flatMap((d) => d.errors)[0];
  if (err) {
    const at = err.linePos?.[0];
    throw new SpecError(`${source}${at ? `:${at.line}:${at.col}` : ''}: not valid YAML or JSON: ${err.message.split('\n')[0]}`);
  }
  const real = docs.filter((d) => d.contents !== null);
  if (real.length === 0) throw new SpecError(`${source}: empty`);
  if (real.length > 1) throw new SpecError(`${source}: holds ${real.length} YAML documents; give one delivery per file`);
  const doc = real[0]!;
  const value: unknown = doc.toJS();
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new SpecError(`${source}: must be a mapping (the body of POST /v1/deliveries), not ${Array.isArray(value) ? 'a list' : typeof value}`);
  return value as Record<string, unknown>;
}

export function readSpec(file: string, cwd: string, readStdin: () => string): { text: string; source: string } {
  if (file === '-') return { text: readStdin(), source: '(stdin)' };
  try {
    return { text: readFileSync(path.resolve(cwd, file), 'utf8'), source: file };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SpecError(`${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

/**
 * The body to send: the spec with `type` set by the command (a spec naming
 * another type is refused: it was written for another command) and `--image`
 * in `app.image`.
 */
export function deliveryBody(
  spec: Record<string, unknown>,
  opts: { type: DeliveryType; image?: string; source: string },
): Record<string, unknown> {
  const body: Record<string, unknown> = structuredClone(spec);
  if (body.type !== undefined && body.type !== opts.type) {
    const cmd = body.type === 'blueGreen' ? 'bluegreen' : String(body.type);
    throw new SpecError(`${opts.source}: type is "${String(body.type)}" but this command starts a ${opts.type} delivery (use \`flotilla ${cmd}\`, or drop type from the file)`);
  }
  body.type = opts.type;
  if (opts.image !== undefined) {
    const app = body.app;
    if (app !== undefined && (typeof app !== 'object' || app === null || Array.isArray(app)))
      throw new SpecError(`${opts.source}: app must be a mapping to take --image`);
    body.app = { ...((app as Record<string, unknown> | undefined) ?? {}), image: opts.image };
  }
  return body;
}
