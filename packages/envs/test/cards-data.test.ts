/**
 * `rlmesh data cards` as a real process (the built bin/rlmesh.js, as users run it): the files it
 * writes hold exactly the examples buildCardsDatasets draws for the seed, the manifest's hashes
 * match the files, the same seed writes the same bytes, and bad arguments are one line and exit 2.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCardsDatasets, DATASET_SETS, exampleRecord } from '../src';

const BIN = join(__dirname, '..', '..', 'cli', 'bin', 'rlmesh.js');
const dir = mkdtempSync(join(tmpdir(), 'rlmesh-cards-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rlmesh = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
const SIZES = ['--n-train', '40', '--n-val', '10', '--n-test', '12'];

describe('rlmesh data cards', () => {
  it('writes the seed’s datasets as JSONL with a manifest that checks them', () => {
    const r = rlmesh('data', 'cards', '--out', join(dir, 'a'), '--seed', '3', ...SIZES);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dir, 'a', 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ dataset: 'cards', seed: 3, sizes: { train: 40, val: 10, test: 12 }, completion: 'worked' });
    expect(Object.keys(manifest.files)).toEqual(DATASET_SETS.map((s) => s.name));
    const want = buildCardsDatasets({ seed: 3, nTrain: 40, nVal: 10, nTest: 12, completion: 'worked' });
    for (const set of want) {
      const text = readFileSync(join(dir, 'a', `${set.name}.jsonl`), 'utf8');
      expect(createHash('sha256').update(text).digest('hex')).toBe(manifest.files[set.name].sha256);
      const lines = text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines).toEqual(set.examples.map(exampleRecord));
      for (const l of lines)
        expect(Object.keys(l)).toEqual(['prompt', 'completion', 'answer', 'split', 'family', 'rule', 'cards', 'labels']);
    }
    const again = rlmesh('data', 'cards', '--out', join(dir, 'b'), '--seed', '3', ...SIZES);
    expect(again.status).toBe(0);
    for (const s of DATASET_SETS)
      expect(readFileSync(join(dir, 'b', `${s.name}.jsonl`))).toEqual(readFileSync(join(dir, 'a', `${s.name}.jsonl`)));
    // --completion answer: the same examples with the bare answer as the completion.
    expect(rlmesh('data', 'cards', '--out', join(dir, 'c'), '--seed', '3', '--completion', 'answer', ...SIZES).status).toBe(0);
    const bare = readFileSync(join(dir, 'c', 'test_id.jsonl'), 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(bare).toEqual(buildCardsDatasets({ seed: 3, nTrain: 40, nVal: 10, nTest: 12 })[0].examples.map(exampleRecord));
  });

  it.each([
    [['data', 'cards', '--out', dir], /^rlmesh: data cards: --seed: is required$/],
    [['data', 'cards', '--out', dir, '--seed', '1', '--n-test', '0'], /^rlmesh: data cards: --n-test: must be an integer >= 1/],
    [['data', 'cards', '--out', dir, '--seed', '1', '--ntest', '5'], /^rlmesh: data cards: --ntest: unknown option/],
    [['data', 'dogs', '--seed', '1'], /^rlmesh: data: unknown dataset "dogs"; known datasets: cards, storyworld, affine$/],
    [
      ['data', 'cards', '--out', join(dir, 'a', 'manifest.json', 'x'), '--seed', '1', ...SIZES],
      /^rlmesh: data cards: --out: cannot create /,
    ],
  ])('%j: one line, exit 2', (args, message) => {
    const r = rlmesh(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr.trimEnd()).toMatch(message);
  });
});
