/**
 * `rlmesh data storyworld --out DIR --seed N`: synthetic storyworlds for SFT as JSONL (train, val,
 * test), one example a line with prompt, completion (a space and the world's canonical JSON), theme
 * and counts, plus manifest.json (seed, sizes, each file's line count and sha256).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type Schema, validate } from '@rlmesh/core';
import { UsageError } from './args';

export const DATA_STORYWORLD_USAGE = `rlmesh data storyworld --out DIR --seed N [--n-train 5000] [--n-val 200] [--n-test 200]
    Writes synthetic storyworlds (every one passes every verifier component) for SFT:
    DIR/train.jsonl, val.jsonl, test.jsonl and DIR/manifest.json.`;

const OPTIONS = {
  out: { kind: 'string', doc: 'output directory' },
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, doc: 'the seed every set is drawn from' },
  'n-train': { kind: 'int', default: 5000, min: 1, max: 2_000_000 },
  'n-val': { kind: 'int', default: 200, min: 1, max: 100_000 },
  'n-test': { kind: 'int', default: 200, min: 1, max: 100_000 },
} as const satisfies Schema;

export async function dataStoryworldCommand(options: Record<string, string>): Promise<number> {
  let o: ReturnType<typeof validate<typeof OPTIONS>>;
  try {
    o = validate(OPTIONS, options);
  } catch (e) {
    if (e instanceof ConfigError)
      throw new UsageError(`data storyworld: --${e.key}: ${e.rule.replace('unknown key (known keys here:', 'unknown option (known:')}`);
    throw e;
  }
  const { buildStoryDatasets } = await import('@rlmesh/envs');
  const sets = buildStoryDatasets({ seed: o.seed, nTrain: o['n-train'], nVal: o['n-val'], nTest: o['n-test'] });
  try {
    mkdirSync(o.out, { recursive: true });
  } catch (e) {
    throw new UsageError(`data storyworld: --out: cannot create ${o.out}: ${(e as Error).message}`);
  }
  const files: Record<string, { file: string; examples: number; sha256: string }> = {};
  for (const s of sets) {
    const text = s.examples
      .map(({ prompt, completion, theme, encounters, characters, endings }) =>
        JSON.stringify({ prompt, completion, theme, counts: { encounters, characters, endings } }),
      )
      .map((line) => `${line}\n`)
      .join('');
    const file = `${s.name}.jsonl`;
    writeFileSync(join(o.out, file), text);
    files[s.name] = { file, examples: s.examples.length, sha256: createHash('sha256').update(text).digest('hex') };
    console.log(`${join(o.out, file).padEnd(40)} ${String(s.examples.length).padStart(7)} examples`);
  }
  const manifest = { dataset: 'storyworld', seed: o.seed, sizes: { train: o['n-train'], val: o['n-val'], test: o['n-test'] }, files };
  writeFileSync(join(o.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`manifest ${join(o.out, 'manifest.json')}`);
  return 0;
}
