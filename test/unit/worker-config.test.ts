/** The worker's FLOTILLA_MAX_CACHED_WORKFLOWS: how many workflows the hub keeps in memory (worker/config.ts). */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../worker/config.ts';

describe('FLOTILLA_MAX_CACHED_WORKFLOWS', () => {
  it('is left to the SDK when not set, and read as a count when set', () => {
    expect(loadConfig({ FLOTILLA_INVENTORY: 'i.yaml' }).maxCachedWorkflows).toBeUndefined();
    expect(loadConfig({ FLOTILLA_INVENTORY: 'i.yaml', FLOTILLA_MAX_CACHED_WORKFLOWS: '300' }).maxCachedWorkflows).toBe(300);
    expect(loadConfig({ FLOTILLA_INVENTORY: 'i.yaml', FLOTILLA_MAX_CACHED_WORKFLOWS: '0' }).maxCachedWorkflows).toBe(0);
  });

  it('refuses what is not a whole count, naming the variable', () => {
    for (const bad of ['lots', '-1', '2.5']) {
      expect(() => loadConfig({ FLOTILLA_INVENTORY: 'i.yaml', FLOTILLA_MAX_CACHED_WORKFLOWS: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ FLOTILLA_INVENTORY: 'i.yaml', FLOTILLA_MAX_CACHED_WORKFLOWS: bad })).toThrow(/FLOTILLA_MAX_CACHED_WORKFLOWS \(maxCachedWorkflows\)/);
    }
  });
});
