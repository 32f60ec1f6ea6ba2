/**
 * Registry credentials: a file on the worker (YAML or JSON, mode 0600), keyed
 * by registry host (or by the `credentials` name a registry entry gives):
 *
 *   registries:
 *     harbor.example.com:            # Basic, or exchanged for a Bearer token when the registry asks
 *       username: robot$flotilla
 *       password: "..."
 *     registry.example.org:
 *       token: "..."                 # a registry token used as is (Bearer)
 *
 * Parsed once, frozen, handed to the activities; never part of an input, a
 * result, a heartbeat or a log line. Hosts without an entry are anonymous.
 */
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const Basic = z.object({ username: z.string().min(1), password: z.string().min(1) }).strict();
const Token = z.object({ token: z.string().min(1) }).strict();
export const CredentialSchema = z.union([Basic, Token], {
  error: 'must be {username, password} or {token}',
});
export type Credential = z.infer<typeof CredentialSchema>;

export const CredentialsFileSchema = z
  .object({ registries: z.record(z.string().min(1), CredentialSchema).default({}) })
  .strict();
export type RegistryCredentials = Readonly<Record<string, Readonly<Credential>>>;

export class CredentialsFileError extends Error {}

/** Validates an already-parsed credentials document (messages name the key, never a value). */
export function parseCredentials(doc: unknown, source = 'credentials'): RegistryCredentials {
  const parsed = CredentialsFileSchema.safeParse(doc ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('\n');
    throw new CredentialsFileError(`invalid registry credentials in ${source}:\n${issues}`);
  }
  const out: Record<string, Credential> = {};
  for (const [key, cred] of Object.entries(parsed.data.registries))
    out[key.toLowerCase()] = Object.freeze(cred);
  return Object.freeze(out);
}

/** Reads and validates the file (FLOTILLA_REGISTRY_CREDENTIALS). Refuses a file others may read. */
export function loadCredentials(file: string): RegistryCredentials {
  let text: string;
  try {
    const mode = statSync(file).mode & 0o077;
    if (mode !== 0)
      throw new CredentialsFileError(
        `${file} is readable by group or others (mode ${(statSync(file).mode & 0o777).toString(8)}): chmod 600 it`,
      );
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof CredentialsFileError) throw err;
    throw new CredentialsFileError(`cannot read registry credentials ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new CredentialsFileError(`${file} is not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseCredentials(doc, file);
}

/** The credential for a registry: by its `credentials` key when it has one, else by host. */
export function credentialFor(
  creds: RegistryCredentials,
  host: string,
  key?: string,
): Readonly<Credential> | undefined {
  return creds[(key ?? host).toLowerCase()];
}
