import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSuite, parseSuite } from '../src/suite';

const entry = (over: Record<string, unknown> = {}) => ({ name: 'a', env: { id: 'PatternEcho' }, episodes: 10, ...over });
const suite = (...entries: unknown[]) => ({ name: 's', entries });

describe('parseSuite', () => {
  it('fills defaults and the env options', () => {
    const s = parseSuite(suite(entry()));
    expect(s).toEqual({
      name: 's',
      mode: 'greedy',
      entries: [
        {
          name: 'a',
          env: { id: 'PatternEcho', options: { num_symbols: 8, max_episode_steps: 1 } },
          episodes: 10,
          seed: 0,
          split: 'ID',
          weight: 1,
        },
      ],
    });
    // A parsed suite parses to itself.
    expect(parseSuite(s)).toEqual(s);
    const full = parseSuite({
      ...suite(entry({ level: 2, max_steps: 7, split: 'OOD', weight: 0.5, env: { id: 'SequenceNext' } })),
      mode: 'sampled',
    });
    expect(full.mode).toBe('sampled');
    expect(full.entries[0]).toMatchObject({ level: 2, max_steps: 7, split: 'OOD', weight: 0.5 });
  });

  it.each([
    [suite(entry({ episodes: 0 })), /^entries\[0\]\.episodes: must be an integer >= 1 and <= 1000000, got 0/],
    [suite(entry(), entry({ name: 'b', episodes: 2.5 })), /^entries\[1\]\.episodes: must be an integer/],
    [suite(entry({ env: { id: 'Nope' } })), /^entries\[0\]\.env\.id: unknown env "Nope"; known envs: .*PatternEcho/],
    [suite(entry({ env: { id: 'PatternEcho', options: { colour: 1 } } })), /^entries\[0\]\.env\.options\.colour: unknown key/],
    [
      suite(entry({ env: { id: 'PatternEcho', options: { num_symbols: 1 } } })),
      /^entries\[0\]\.env\.options\.num_symbols: must be an integer >= 2/,
    ],
    [suite(entry({ level: 1 })), /^entries\[0\]\.level: must be an integer in \[0, 0\] for PatternEcho, got 1/],
    [suite(entry({ level: 3, env: { id: 'Conditional' } })), /^entries\[0\]\.level: must be an integer in \[0, 2\]/],
    [suite(entry(), entry()), /^entries\[1\]\.name: "a" is used by an earlier entry/],
    [suite(entry({ weight: -1 })), /^entries\[0\]\.weight: must be a number >= 0/],
    [suite(entry({ seed: 2 ** 31 - 5 })), /^entries\[0\]\.seed: seed \+ episodes must be <=/],
    [suite(entry({ colour: 'red' })), /^entries\[0\]\.colour: unknown key/],
    [suite(entry({ name: undefined })), /^entries\[0\]\.name: is required/],
    [{ name: 's', entries: [] }, /^entries: must be a non-empty list/],
    [{ name: 's' }, /^entries: must be a non-empty list/],
    [{ entries: [entry()] }, /^name: is required/],
    [{ ...suite(entry()), mode: 'fast' }, /^mode: must be one of greedy, sampled, got "fast"/],
    [{ ...suite(entry()), extra: 1 }, /^extra: unknown key/],
    [[1, 2], /^\(root\): a suite must be a mapping/],
  ])('rejects %j naming the key', (raw, message) => {
    expect(() => parseSuite(raw)).toThrow(message);
  });
});

describe('loadSuite', () => {
  it('reads every shipped suite', () => {
    const dir = join(__dirname, '..', '..', '..', 'configs', 'suites');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) {
      const s = loadSuite(join(dir, f));
      expect(s.entries.length).toBeGreaterThan(0);
      expect(new Set(s.entries.map((e) => e.split)).size).toBeGreaterThanOrEqual(1);
    }
  });

  it('names the file when it is missing or not YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rlmesh-suite-'));
    expect(() => loadSuite(join(dir, 'none.yaml'))).toThrow(/cannot read suite .*none.yaml: ENOENT/);
    writeFileSync(join(dir, 'bad.yaml'), 'name: [unclosed');
    expect(() => loadSuite(join(dir, 'bad.yaml'))).toThrow(/bad.yaml: is not valid YAML or JSON/);
  });
});
