/**
 * Harbor's REST API contract (swagger-v2.15.2.yaml beside the adapter, Harbor's
 * own file, unchanged) turned into OpenAPI 3 (swagger2openapi), which both the
 * type generator (openapi-typescript) and the Harbor double's validator
 * (openapi-backend) read. Development and test code only.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { format, resolveConfig } from 'prettier';
import s2o from 'swagger2openapi';
import { parse as parseYaml } from 'yaml';

export const HARBOR_SPEC = path.join(import.meta.dirname, '..', 'swagger-v2.15.2.yaml');
export const HARBOR_TYPES = path.join(import.meta.dirname, '..', 'harbor-api.ts');

export type OpenApi3 = Record<string, unknown> & { paths: Record<string, Record<string, unknown>> };

let converted: Promise<OpenApi3> | undefined;

/** The spec as OpenAPI 3.0 (converted once per process; callers must not change it). */
export function harborOpenApi3(): Promise<OpenApi3> {
  converted ??= (async () => {
    const swagger = parseYaml(readFileSync(HARBOR_SPEC, 'utf8')) as Parameters<typeof s2o.convertObj>[0];
    const { openapi } = await s2o.convertObj(swagger, { patch: true, warnOnly: true });
    return openapi as unknown as OpenApi3;
  })();
  return converted;
}

const HEADER = `/**
 * Harbor REST API v2.15.2 types, generated from activities/harbor/swagger-v2.15.2.yaml
 * (converted to OpenAPI 3 by swagger2openapi, then openapi-typescript). Do not edit:
 * \`bash scripts/node.sh activities/harbor/testing/generate.ts\` writes it again, and
 * test/unit/harbor-spec.test.ts fails when it differs from what the spec gives.
 */
`;

/** The TypeScript the spec gives (what harbor-api.ts must hold). */
export async function generateHarborTypes(): Promise<string> {
  const ast = await openapiTS(structuredClone(await harborOpenApi3()) as never, { alphabetize: false });
  // In the project's own format, so `npm run format` leaves it as it is.
  const options = (await resolveConfig(HARBOR_TYPES)) ?? {};
  return format(HEADER + astToString(ast), { ...options, parser: 'typescript' });
}
