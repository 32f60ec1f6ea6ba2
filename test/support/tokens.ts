/** Bearer tokens the API tests use, one per role they exercise, and their Authorization headers. */
import type { TokensFile } from '../../api/auth.ts';

export const tokens: TokensFile = {
  'ci-token-0123456789abcdef': { name: 'gitlab-ci', role: 'ci' },
  'sre-token-0123456789abcdef': { name: 'alice', role: 'sre' },
  'viewer-token-0123456789abcdef': { name: 'carol', role: 'viewer' },
};
export const CI = 'Bearer ci-token-0123456789abcdef';
export const SRE = 'Bearer sre-token-0123456789abcdef';
export const VIEWER = 'Bearer viewer-token-0123456789abcdef';
