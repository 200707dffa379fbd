/**
 * `rlmesh data affine --env ID --out DIR --n N --seed S`: SFT demonstrations of an Affine task or an
 * AgentGym-style world, written by its expert and checked by the env (packages/envs/src/affine), as
 * DIR/<env>.jsonl plus DIR/<env>.manifest.json (env, seed, n, form, line count, sha256).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type Schema, validate } from '@rlmesh/core';
import { UsageError } from './args';

export const DATA_AFFINE_USAGE = `rlmesh data affine --env ID --out DIR --seed N [--n 1000] [--form conversations|turns] [--options JSON]
    Writes expert demonstrations for SFT: AffineSAT, AffineABD, AffineDED as prompt/completion;
    TextCraft, GridGoals, ShopSearch as one conversation per episode (--form turns: one
    prompt/completion line per action). Episode i is the env reset with seed N + i. --options sets
    the env's options as a JSON mapping ('{"n_max":10}'), as a train or eval config's env.options.`;

const OPTIONS = {
  env: { kind: 'string', doc: 'the env to demonstrate' },
  out: { kind: 'string', doc: 'output directory' },
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, doc: 'the first episode seed' },
  n: { kind: 'int', default: 1000, min: 1, max: 1_000_000, doc: 'episodes' },
  form: { kind: 'string', default: 'conversations', oneOf: ['conversations', 'turns'], doc: "multi-turn episodes' record form" },
  options: { kind: 'string', default: '{}', doc: "the env's options, a JSON mapping" },
} as const satisfies Schema;

export async function dataAffineCommand(options: Record<string, string>): Promise<number> {
  let o: ReturnType<typeof validate<typeof OPTIONS>>;
  try {
    o = validate(OPTIONS, options);
  } catch (e) {
    if (e instanceof ConfigError)
      throw new UsageError(`data affine: --${e.key}: ${e.rule.replace('unknown key (known keys here:', 'unknown option (known:')}`);
    throw e;
  }
  const { AFFINE_DEMO_ENVS, demonstrations } = await import('@rlmesh/envs');
  if (!AFFINE_DEMO_ENVS.includes(o.env))
    throw new UsageError(`data affine: --env: must be one of ${AFFINE_DEMO_ENVS.join(', ')}, got ${JSON.stringify(o.env)}`);
  try {
    mkdirSync(o.out, { recursive: true });
  } catch (e) {
    throw new UsageError(`data affine: --out: cannot create ${o.out}: ${(e as Error).message}`);
  }
  let envOptions: unknown;
  try {
    envOptions = JSON.parse(o.options);
  } catch {
    envOptions = undefined;
  }
  if (!envOptions || typeof envOptions !== 'object' || Array.isArray(envOptions))
    throw new UsageError(`data affine: --options: must be a JSON mapping, got ${JSON.stringify(o.options)}`);
  let records: Record<string, unknown>[];
  try {
    records = demonstrations(o.env, o.n, o.seed, o.form, envOptions as Record<string, unknown>);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(`data affine: --${e.message}`);
    throw e;
  }
  const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
  const file = join(o.out, `${o.env}.jsonl`);
  writeFileSync(file, text);
  const manifest = {
    dataset: 'affine',
    env: o.env,
    seed: o.seed,
    n: o.n,
    form: o.form,
    options: envOptions,
    lines: records.length,
    sha256: createHash('sha256').update(text).digest('hex'),
  };
  writeFileSync(join(o.out, `${o.env}.manifest.json`), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`${file} ${records.length} lines from ${o.n} episodes (seeds ${o.seed}..${o.seed + o.n - 1})`);
  return 0;
}
