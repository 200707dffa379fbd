/**
 * The config of `rlmesh experiment`: the card game's data, the SFT and GRPO configs it trains with
 * (each a file of its own plus overrides, as `--key value` would give on their command lines), the
 * evaluation suite and the output directory. Everything is checked before any stage runs, so a typo
 * in the last stage's section does not surface after half an hour of SFT; errors name the key.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOverrides, ConfigError, type Infer, type Schema, validate } from '@rlmesh/core';
import { UsageError } from './args';
import { loadConfig } from './main';

export const EXPERIMENT_USAGE = `rlmesh experiment <config.yaml> [--force STAGE[,...]] [--section.key value ...]
    The card game's experiment (configs/cards-sft-rl.yaml; stages data, sft, rl, eval): writes the
    datasets, trains a GPT-2 by SFT, trains it further by GRPO on the ID rules, evaluates both final
    checkpoints on every split. A config saying pipeline: affine (configs/affine-pipeline.yaml; stages
    data, init, eval_baseline, sft, eval_sft, rl, eval_rl) runs the Affine pipeline: expert
    demonstrations, a fresh Llama, SFT, PPO per env, each stage evaluated on every env. Both write
    out_dir/results.json and out_dir/report.html. A stage whose outputs exist for the same config is
    skipped; --force re-runs the stages named (and so the ones after them).`;

export const STAGES = ['data', 'sft', 'rl', 'eval'] as const;
export type Stage = (typeof STAGES)[number];

const EXPERIMENT_SCHEMA = {
  out_dir: { kind: 'string', doc: 'where every stage writes: data/, sft/, rl/, eval/, results.json, report.html' },
  data: {
    kind: 'section',
    fields: {
      seed: { kind: 'int', default: 0, min: 0, max: 2 ** 32 - 1, doc: 'rlmesh data cards --seed' },
      n_train: { kind: 'int', default: 20000, min: 1, max: 2_000_000, doc: '--n-train' },
      n_val: { kind: 'int', default: 500, min: 1, max: 100_000, doc: '--n-val' },
      n_test: { kind: 'int', default: 500, min: 1, max: 100_000, doc: '--n-test: examples in each test set' },
      completion: { kind: 'string', default: 'worked', oneOf: ['answer', 'worked'], doc: "--completion: the SFT targets' form" },
    },
  },
  sft: {
    kind: 'section',
    fields: {
      config: { kind: 'string', doc: 'an rlmesh sft config' },
      overrides: { kind: 'open', doc: 'dotted keys and values, as --key value on the sft command line' },
    },
  },
  rl: {
    kind: 'section',
    fields: {
      config: { kind: 'string', doc: 'an rlmesh train config of a text env (GRPO)' },
      overrides: { kind: 'open', doc: 'dotted keys and values, as --key value on the train command line' },
    },
  },
  eval: {
    kind: 'section',
    fields: {
      suite: { kind: 'string', doc: "an evaluation suite whose entries are test sets of data.seed's datasets" },
    },
  },
} as const satisfies Schema;

export type ExperimentConfig = Infer<typeof EXPERIMENT_SCHEMA>;

/** The stage names each run directory gets under out_dir (`runs/<name>` of their own configs). */
export const SFT_RUN = 'sft';
export const RL_RUN = 'rl';

export interface ExperimentPlan {
  cfg: ExperimentConfig;
  dataDir: string;
  sftDir: string;
  rlDir: string;
  evalDir: string;
  /** The SFT config with the overrides and the experiment's own keys applied. */
  sftRaw: Record<string, unknown>;
  /** The RL config likewise, init_from excepted: that is the SFT stage's final checkpoint. */
  rlRaw: Record<string, unknown>;
  suiteText: string;
}

/** Keys the experiment sets itself: an override of one would break the chain of stages. */
const OWN_KEYS = {
  sft: ['run.out_dir', 'run.name', 'data.dir'],
  rl: ['run.out_dir', 'run.name', 'init_from', 'env.options.holdout_seed', 'env.options.holdout_n_val', 'env.options.holdout_n_test'],
};

/** Nested mappings as dotted keys: `{train: {lr: 1}}` and `{train.lr: 1}` set the same one key. */
function flatten(v: Record<string, unknown>, prefix = ''): [string, unknown][] {
  return Object.entries(v).flatMap(([k, x]) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? flatten(x as Record<string, unknown>, `${prefix}${k}.`)
      : [[`${prefix}${k}`, x] as [string, unknown]],
  );
}

/**
 * The overrides mapping as `--key value` strings (applyOverrides parses JSON values back); a key in
 * `own` (set by the pipeline itself) is an error at `<section>.overrides.<key>`.
 */
export function overrideStrings(section: string, overrides: Record<string, unknown>, own: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of flatten(overrides)) {
    if (own.some((o) => k === o || o.startsWith(`${k}.`) || k.startsWith(`${o}.`)))
      throw new ConfigError(`${section}.overrides.${k}`, `is set by the experiment (${own.join(', ')})`);
    out[k] = JSON.stringify(v);
  }
  return out;
}

/** Runs a stage config's own validation, naming the experiment's (or cycle's) section in its error. */
export function checkWith(section: string, file: string, check: () => void): void {
  try {
    check();
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${section} (${file}): ${e.key}`, e.rule);
    throw e;
  }
}

export async function planExperiment(path: string, overrides: Record<string, string>): Promise<ExperimentPlan> {
  const cfg = validate(EXPERIMENT_SCHEMA, loadConfig(path, overrides));
  const dataDir = join(cfg.out_dir, 'data');
  const d = cfg.data;
  const { parseSftConfig, parseSequenceRunConfig, isSequenceRunConfig } = await import('@rlmesh/learner');

  const sftRaw = applyOverrides(loadStageConfig('sft.config', cfg.sft.config, overrideStrings('sft', cfg.sft.overrides, OWN_KEYS.sft)), {
    'run.out_dir': JSON.stringify(cfg.out_dir),
    'run.name': JSON.stringify(SFT_RUN),
    'data.dir': JSON.stringify(dataDir),
  });
  checkWith('sft', cfg.sft.config, () => parseSftConfig(sftRaw));

  const rlBase = loadStageConfig('rl.config', cfg.rl.config, overrideStrings('rl', cfg.rl.overrides, OWN_KEYS.rl));
  if (!isSequenceRunConfig(rlBase)) throw new ConfigError('rl.config', `${cfg.rl.config} must train on a text env (env.id CardRules)`);
  const rlRaw = applyOverrides(rlBase, {
    'run.out_dir': JSON.stringify(cfg.out_dir),
    'run.name': JSON.stringify(RL_RUN),
    // RL never sees a val or test prompt of the experiment's data.
    'env.options.holdout_seed': String(d.seed),
    'env.options.holdout_n_val': String(d.n_val),
    'env.options.holdout_n_test': String(d.n_test),
  });
  // The SFT checkpoint does not exist yet: every other key is checked now, init_from when RL starts.
  checkWith('rl', cfg.rl.config, () => parseSequenceRunConfig({ ...rlRaw, init_from: join(cfg.out_dir, SFT_RUN, 'final') }));

  const suiteText = await checkSuite(cfg);
  return {
    cfg,
    dataDir,
    sftDir: join(cfg.out_dir, SFT_RUN),
    rlDir: join(cfg.out_dir, RL_RUN),
    evalDir: join(cfg.out_dir, 'eval'),
    sftRaw,
    rlRaw,
    suiteText,
  };
}

/** Where the eval stage writes each checkpoint's EvaluationResult. */
export const evalFile = (plan: ExperimentPlan, who: 'sft' | 'rl') => join(plan.evalDir, `${who}.json`);

export function loadStageConfig(key: string, file: string, overrides: Record<string, string>): Record<string, unknown> {
  try {
    return loadConfig(file, overrides);
  } catch (e) {
    if (e instanceof UsageError) throw new ConfigError(key, e.message);
    if (e instanceof ConfigError) throw new ConfigError(`${key} (${file}): ${e.key}`, e.rule);
    throw e;
  }
}

/**
 * The suite must evaluate the experiment's own test sets: every entry a CardRules test set of
 * data.seed whose episodes lie within data.n_test, the examples SFT's training data and RL's prompts
 * both leave out. Returns the suite's text (its hash decides whether the eval stage re-runs).
 */
async function checkSuite(cfg: ExperimentConfig): Promise<string> {
  const { loadSuite } = await import('@rlmesh/evaluator');
  let suite: ReturnType<typeof loadSuite>;
  try {
    suite = loadSuite(cfg.eval.suite);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError('eval.suite', e.key === '(file)' ? e.rule : `${cfg.eval.suite}: ${e.message}`);
    throw e;
  }
  for (const e of suite.entries) {
    const at = `eval.suite (${cfg.eval.suite}): entry ${e.name}`;
    if (e.env.id !== 'CardRules') throw new ConfigError(at, `must be a CardRules entry, got ${e.env.id}`);
    if (e.env.options.test_seed !== cfg.data.seed)
      throw new ConfigError(
        at,
        `must set env.options.test_seed ${cfg.data.seed} (data.seed), got ${JSON.stringify(e.env.options.test_seed)}`,
      );
    if (e.seed + e.episodes > cfg.data.n_test)
      throw new ConfigError(
        at,
        `evaluates test examples up to ${e.seed + e.episodes - 1}, past data.n_test (${cfg.data.n_test}): RL would not hold them out`,
      );
  }
  if (!suite.entries.some((e) => e.split === 'ID') || !suite.entries.some((e) => e.split !== 'ID'))
    throw new ConfigError(`eval.suite (${cfg.eval.suite})`, 'needs an entry of split ID and at least one of another split (OOD)');
  return readFileSync(cfg.eval.suite, 'utf8');
}

/** A JSON text with object keys sorted, so that equal configs hash equally whatever their key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

export function hashOf(v: unknown): string {
  return createHash('sha256').update(canonical(v)).digest('hex').slice(0, 16);
}
