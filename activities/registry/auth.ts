/**
 * WWW-Authenticate challenges (RFC 7235) as registries send them:
 *
 *   Basic realm="Registry Realm"
 *   Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"
 *
 * and the scopes of the Docker token protocol (`repository:<name>:<actions>`).
 */

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const tokenChar = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/** Every challenge of a WWW-Authenticate header (several headers may be joined with ", "). */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  let i = 0;
  const n = text.length;
  const skipWs = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < n && tokenChar.test(text[i]!)) i++;
    return text.slice(start, i);
  };
  const readQuoted = () => {
    let v = '';
    i++; // opening quote
    while (i < n && text[i] !== '"') {
      if (text[i] === '\\' && i + 1 < n) i++;
      v += text[i];
      i++;
    }
    i++; // closing quote
    return v;
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (text[i] === ',') {
      i++;
      continue;
    }
    const tok = readToken();
    if (!tok) {
      i++; // not a token character: skip it
      continue;
    }
    skipWs();
    if (text[i] === '=' && current) {
      // auth-param: name=value (token68 forms such as "Negotiate abc==" are not used by registries)
      i++;
      skipWs();
      const value = text[i] === '"' ? readQuoted() : readToken();
      current.params[tok.toLowerCase()] = value;
    } else {
      current = { scheme: tok.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** `repository:<name>:<actions>` scopes, merged: one per repository, actions united and sorted. */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  const other: string[] = [];
  for (const s of scopes) {
    for (const one of s.split(' ').filter(Boolean)) {
      const last = one.lastIndexOf(':');
      if (last <= 0) {
        other.push(one);
        continue;
      }
      const resource = one.slice(0, last);
      const actions = one
        .slice(last + 1)
        .split(',')
        .filter(Boolean);
      const set = byResource.get(resource) ?? new Set<string>();
      actions.forEach((a) => set.add(a));
      byResource.set(resource, set);
    }
  }
  const merged = [...byResource].map(([r, a]) => `${r}:${[...a].sort().join(',')}`);
  return [...new Set([...merged, ...other])].sort();
}

export const pullScope = (repo: string) => `repository:${repo}:pull`;
export const pushScope = (repo: string) => `repository:${repo}:pull,push`;
