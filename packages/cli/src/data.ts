/**
 * `rlmesh data cards --out DIR --seed N`: writes the card game's datasets (train, val and a test set
 * per split) as JSONL, one example a line with prompt, completion, answer, labels, split, family,
 * rule and cards, plus manifest.json (the seed, the sizes, each split's definition and each file's
 * line count and sha256), so a dataset on disk can be checked against the seed that made it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type Schema, validate } from '@rlmesh/core';
import { parseArgs, UsageError } from './args';
import { DATA_AFFINE_USAGE, dataAffineCommand } from './data-affine';
import { DATA_STORYWORLD_USAGE, dataStoryworldCommand } from './data-storyworld';

export const DATA_USAGE = `rlmesh data cards --out DIR --seed N [--n-train 20000] [--n-val 500] [--n-test 1000] [--completion worked|answer]
    Writes the card-rule game's datasets from a seed: DIR/train.jsonl and val.jsonl (the id split),
    DIR/test_<split>.jsonl for id and every OOD split, and DIR/manifest.json. Completions show the
    work before the answer (" RED 3 = 3 - BLUE 2 = 1, ODD"); --completion answer writes the answer
    alone (" ODD"). Prompts, answers and labels are the same either way.
${DATA_STORYWORLD_USAGE}
${DATA_AFFINE_USAGE}`;

const OPTIONS = {
  out: { kind: 'string', doc: 'output directory' },
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, doc: 'the seed every set is drawn from' },
  'n-train': { kind: 'int', default: 20000, min: 1, max: 2_000_000 },
  'n-val': { kind: 'int', default: 500, min: 1, max: 100_000 },
  'n-test': { kind: 'int', default: 1000, min: 1, max: 100_000, doc: 'examples in each test set' },
  completion: { kind: 'string', default: 'worked', oneOf: ['answer', 'worked'], doc: "the completions' form" },
} as const satisfies Schema;

export async function dataCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length === 1 && positionals[0] === 'storyworld') return dataStoryworldCommand(options);
  if (positionals.length === 1 && positionals[0] === 'affine') return dataAffineCommand(options);
  if (positionals.length !== 1 || positionals[0] !== 'cards')
    throw new UsageError(`data: unknown dataset ${JSON.stringify(positionals.join(' '))}; known datasets: cards, storyworld, affine`);
  let o: ReturnType<typeof validate<typeof OPTIONS>>;
  try {
    o = validate(OPTIONS, options);
  } catch (e) {
    if (e instanceof ConfigError)
      throw new UsageError(`data cards: --${e.key}: ${e.rule.replace('unknown key (known keys here:', 'unknown option (known:')}`);
    throw e;
  }
  const { buildCardsDatasets, exampleRecord, SPLIT_SPECS } = await import('@rlmesh/envs');
  let sets: ReturnType<typeof buildCardsDatasets>;
  try {
    sets = buildCardsDatasets({ seed: o.seed, nTrain: o['n-train'], nVal: o['n-val'], nTest: o['n-test'], completion: o.completion });
  } catch (e) {
    throw new UsageError(`data cards: ${(e as Error).message}`);
  }
  try {
    mkdirSync(o.out, { recursive: true });
  } catch (e) {
    throw new UsageError(`data cards: --out: cannot create ${o.out}: ${(e as Error).message}`);
  }
  const files: Record<string, { file: string; split: string; examples: number; sha256: string; families: Record<string, number> }> = {};
  for (const s of sets) {
    const text = s.examples.map((ex) => `${JSON.stringify(exampleRecord(ex))}\n`).join('');
    const file = `${s.name}.jsonl`;
    writeFileSync(join(o.out, file), text);
    const families: Record<string, number> = {};
    for (const ex of s.examples) families[ex.family] = (families[ex.family] ?? 0) + 1;
    files[s.name] = {
      file,
      split: s.split,
      examples: s.examples.length,
      sha256: createHash('sha256').update(text).digest('hex'),
      families,
    };
    console.log(`${join(o.out, file).padEnd(40)} ${String(s.examples.length).padStart(7)} examples  ${s.split}`);
  }
  const manifest = {
    dataset: 'cards',
    seed: o.seed,
    sizes: { train: o['n-train'], val: o['n-val'], test: o['n-test'] },
    completion: o.completion,
    splits: SPLIT_SPECS,
    files,
  };
  writeFileSync(join(o.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`manifest ${join(o.out, 'manifest.json')}`);
  return 0;
}
