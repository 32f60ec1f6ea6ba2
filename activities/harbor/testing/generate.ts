/** Writes activities/harbor/harbor-api.ts from Harbor's spec (run after changing the spec file). */
import { writeFileSync } from 'node:fs';
import { generateHarborTypes, HARBOR_TYPES } from './spec.ts';

writeFileSync(HARBOR_TYPES, await generateHarborTypes());
console.log(`wrote ${HARBOR_TYPES}`);
