/**
 * Where the CLI finds the API and its token: flags, then the environment, then
 * the config file, then the local stack's .flotilla/stack.json, each field on
 * its own; a stack token only ever goes to the stack's own URL. Real files in
 * a temporary folder.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, resolveConnection, stackFiles, type Sources } from '../../cli/config.ts';

let root: string;
let home: string;
let checkout: string;
const STACK_URL = 'http://127.0.0.1:27080';
const stackTokens = { ci: 'stack-ci-token', sre: 'stack-sre-token', viewer: 'stack-viewer-token', 'release-manager': 'stack-rm-token' };

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'cli-config-'));
  home = path.join(root, 'home');
  checkout = path.join(root, 'checkout');
  mkdirSync(path.join(home, '.config', 'flotilla'), { recursive: true });
  mkdirSync(path.join(checkout, '.flotilla'), { recursive: true });
  mkdirSync(path.join(checkout, 'deep', 'er'), { recursive: true });
  writeFileSync(path.join(checkout, '.flotilla', 'stack.json'), JSON.stringify({ temporal: {}, api: { url: STACK_URL, tokens: stackTokens } }));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function src(over: Partial<Sources> = {}): Sources {
  return { flags: {}, env: {}, cwd: path.join(checkout, 'deep', 'er'), home, cliRoot: path.join(root, 'elsewhere'), need: 'read', ...over };
}

function configFile(text: string, mode = 0o600): string {
  const file = path.join(home, '.config', 'flotilla', 'config.yaml');
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

describe('precedence', () => {
  it('flags over env over file over stack, URL and token each on their own', () => {
    configFile('api: https://file.example\ntoken: file-token\n');
    const env = { FLOTILLA_API_URL: 'https://env.example/', FLOTILLA_TOKEN: 'env-token' };
    expect(resolveConnection(src({ flags: { api: 'https://flag.example', token: 'flag-token' }, env }))).toEqual({
      url: 'https://flag.example',
      token: 'flag-token',
      urlFrom: '--api',
      tokenFrom: '--token',
    });
    expect(resolveConnection(src({ flags: { token: 'flag-token' }, env }))).toMatchObject({ url: 'https://env.example', urlFrom: 'FLOTILLA_API_URL', tokenFrom: '--token' });
    expect(resolveConnection(src({ env: { FLOTILLA_TOKEN: 'env-token' } }))).toMatchObject({ url: 'https://file.example', urlFrom: '~/.config/flotilla/config.yaml', token: 'env-token' });
    expect(resolveConnection(src())).toMatchObject({ url: 'https://file.example', token: 'file-token', tokenFrom: '~/.config/flotilla/config.yaml' });
  });

  it('without flags, env or file, the local stack of the checkout gives URL and the token the command needs', () => {
    const noFile = { FLOTILLA_CONFIG_FILE: path.join(root, 'none.yaml') };
    rmSync(path.join(home, '.config', 'flotilla', 'config.yaml'), { force: true });
    expect(resolveConnection(src({ need: 'read' }))).toEqual({ url: STACK_URL, token: 'stack-viewer-token', urlFrom: '../../.flotilla/stack.json'.replace('../../', path.join(checkout, '/')), tokenFrom: expect.stringContaining('(role viewer)') });
    expect(resolveConnection(src({ need: 'start' })).token).toBe('stack-ci-token');
    expect(resolveConnection(src({ need: 'act' })).token).toBe('stack-sre-token');
    expect(resolveConnection(src({ need: 'decide' })).token).toBe('stack-rm-token');
    expect(resolveConnection(src({ need: 'start', flags: { role: 'sre' } })).token).toBe('stack-sre-token');
    expect(() => resolveConnection(src({ flags: { role: 'admin' } }))).toThrow('--role must be one of ci, release-manager, sre, viewer (got "admin")');
    expect(() => resolveConnection(src({ env: noFile }))).toThrow(ConfigError); // a named config file must exist
  });

  it('a stack token never goes to another URL; the stack URL named explicitly still gets one', () => {
    expect(resolveConnection(src({ flags: { api: 'https://prod.example' } }))).toEqual({ url: 'https://prod.example', urlFrom: '--api', tokenFrom: 'none' });
    expect(resolveConnection(src({ env: { FLOTILLA_API_URL: `${STACK_URL}/` } }))).toMatchObject({ url: STACK_URL, token: 'stack-viewer-token' });
  });

  it('the stack is found from FLOTILLA_STACK_DIR, then up from the working directory, then in the CLI\'s own checkout', () => {
    const files = stackFiles({ env: { FLOTILLA_STACK_DIR: '/w/.flotilla/stack' }, cwd: '/a/b', cliRoot: '/cli' });
    expect(files).toEqual(['/w/.flotilla/stack/stack.json', '/w/.flotilla/stack.json', '/a/b/.flotilla/stack.json', '/a/.flotilla/stack.json', '/.flotilla/stack.json', '/cli/.flotilla/stack.json']);
    // From a folder with no stack above it, the CLI's checkout is the last resort.
    expect(resolveConnection(src({ cwd: root, cliRoot: checkout }))).toMatchObject({ url: STACK_URL });
  });

  it('no URL anywhere is a ConfigError that says how to give one', () => {
    expect(() => resolveConnection(src({ cwd: root }))).toThrow(/no API URL: pass --api <url>, set FLOTILLA_API_URL/);
  });
});

describe('the config file', () => {
  it('names the field at fault, refuses unknown fields and bad URLs', () => {
    configFile('api: ftp://x\n');
    expect(() => resolveConnection(src())).toThrow(/config\.yaml: api: must be an http\(s\) URL/);
    configFile('server: https://x\n');
    expect(() => resolveConnection(src())).toThrow(/unknown field\(s\) server \(known: api, token\)/);
    configFile('api: [\n');
    expect(() => resolveConnection(src())).toThrow(/not valid YAML/);
    expect(() => resolveConnection(src({ flags: { api: 'not a url' } }))).toThrow('--api: "not a url" is not a URL');
  });

  it('warns when a file holding a token may be read by others', () => {
    const warnings: string[] = [];
    configFile('api: https://file.example\ntoken: file-token\n', 0o644);
    resolveConnection(src({ warn: (l) => warnings.push(l) }));
    configFile('api: https://file.example\ntoken: file-token\n', 0o600);
    resolveConnection(src({ warn: (l) => warnings.push(l) }));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/holds a token and others may read it \(mode 0644\); chmod 600 it$/);
    expect(warnings[0]).not.toContain('file-token');
  });

  it('FLOTILLA_CONFIG_FILE points elsewhere', () => {
    const other = path.join(root, 'other.yaml');
    writeFileSync(other, 'api: https://other.example\n');
    expect(resolveConnection(src({ env: { FLOTILLA_CONFIG_FILE: other } }))).toMatchObject({ url: 'https://other.example', urlFrom: other });
  });
});
