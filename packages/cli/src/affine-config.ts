/**
 * The config of `rlmesh experiment` for the Affine pipeline (`pipeline: affine`): the environments
 * (each with its options, demonstration episodes, token budget and RL updates), the initial Llama,
 * the SFT and RL configs (files of their own plus overrides, as for the card experiment) and the
 * evaluation. Everything is checked before any stage runs; errors name the key.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOverrides, ConfigError, type Infer, makeTextEnv, type Schema, validate } from '@rlmesh/core';
import '@rlmesh/envs';
import { checkWith, loadStageConfig, overrideStrings } from './experiment-config';
import { loadConfig } from './main';

export const AFFINE_STAGES = ['data', 'init', 'eval_baseline', 'sft', 'eval_sft', 'rl', 'eval_rl'] as const;

const ENV_SCHEMA = {
  options: { kind: 'open', doc: "the env's options, the same for demonstrations, RL and evaluation" },
  demonstrations: { kind: 'int', default: 200, min: 1, max: 1_000_000, doc: 'expert episodes in the SFT data (seeds seed..)' },
  max_new_tokens: { kind: 'int', default: 32, min: 1, max: 4096, doc: "a completion's token budget in RL and evaluation" },
  weight: { kind: 'number', default: 1, min: 0, doc: "the env's weight in the evaluation's aggregates" },
  group: {
    kind: 'string',
    default: '',
    doc: "a label whose envs get a weighted row of their own in the table (e.g. affine, agentgym); '': none",
  },
  rl_updates: {
    kind: 'int',
    default: 0,
    min: 0,
    doc: 'RL updates on this env (0: none); RL runs the envs in config order, each from the last',
  },
  reward_weights: { kind: 'numberRecord', default: {}, doc: "RL's weight of each reward component; absent components weigh 1" },
} as const satisfies Schema;

export type AffineEnvConfig = Infer<typeof ENV_SCHEMA> & { id: string };

const AFFINE_SCHEMA = {
  pipeline: { kind: 'string', oneOf: ['affine'], doc: 'selects this pipeline in rlmesh experiment' },
  out_dir: { kind: 'string', doc: 'where every stage writes: data/, init/, sft/, rl_<env>/, eval/, results.json, report.html' },
  seed: { kind: 'int', default: 0, min: 0, max: 2 ** 31 - 1, doc: "the demonstrations' first episode seed and the initial weights" },
  envs: { kind: 'open', doc: 'env id -> its section (options, demonstrations, max_new_tokens, weight, rl_updates, reward_weights)' },
  model: { kind: 'open', doc: "the initial Llama's config.json keys (hidden_size, num_hidden_layers, ...); vocabulary from the tokenizer" },
  tokenizer: {
    kind: 'section',
    fields: { vocab_size: { kind: 'int', default: 1024, min: 259, max: 1_000_000, doc: 'a byte-level BPE trained on the demonstrations' } },
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
      config: { kind: 'string', doc: 'an rlmesh train config of a text env (ppo_seq or grpo); env and init_from are set per env' },
      overrides: { kind: 'open', doc: 'dotted keys and values, as --key value on the train command line' },
    },
  },
  eval: {
    kind: 'section',
    fields: {
      episodes: { kind: 'int', default: 100, min: 1, max: 1_000_000, doc: 'episodes per env and evaluation' },
      seed: { kind: 'int', default: 1_000_000, min: 0, max: 2 ** 31 - 1, doc: 'episode i of each env starts from seed + i' },
      mode: { kind: 'string', default: 'greedy', oneOf: ['greedy', 'sampled'] },
    },
  },
} as const satisfies Schema;

export type AffineConfig = Infer<typeof AFFINE_SCHEMA>;

export interface RlStagePlan {
  env: string;
  dir: string;
  /** The RL config with the overrides and the pipeline's keys applied; init_from is set when it starts. */
  raw: Record<string, unknown>;
}

export interface AffinePlan {
  cfg: AffineConfig;
  envs: AffineEnvConfig[];
  dataDir: string;
  initDir: string;
  sftDir: string;
  evalDir: string;
  suiteFile: string;
  suite: Record<string, unknown>;
  sftRaw: Record<string, unknown>;
  rl: RlStagePlan[];
}

const SFT_OWN = ['run.out_dir', 'run.name', 'data.dir', 'data.train', 'data.eval', 'init_from', 'model', 'tokenizer'];
const RL_OWN = [
  'run.out_dir',
  'run.name',
  'init_from',
  'env',
  'train.total_updates',
  'algo.reward_weights',
  'algo.response_length',
  'algo.max_completion_length',
];

/** The token budget key of each sequence algorithm, set from the env's max_new_tokens. */
const BUDGET_KEY: Record<string, string> = { ppo_seq: 'response_length', grpo: 'max_completion_length' };

/** Whether a raw config (before validation) is the Affine pipeline's. */
export const isAffineConfig = (raw: Record<string, unknown>): boolean => raw.pipeline === 'affine';

function envSections(cfg: AffineConfig): AffineEnvConfig[] {
  const ids = Object.keys(cfg.envs);
  if (ids.length === 0) throw new ConfigError('envs', 'must name at least one env');
  return ids.map((id) => {
    const env = { ...validate(ENV_SCHEMA, cfg.envs[id], `envs.${id}`), id };
    const made = (() => {
      try {
        return makeTextEnv(id, env.options, `envs.${id}.options`);
      } catch (e) {
        if (e instanceof ConfigError && !e.key.startsWith(`envs.${id}.`)) throw new ConfigError(`envs.${id}`, e.rule);
        throw e;
      }
    })();
    for (const c of Object.keys(env.reward_weights))
      if (!made.rewardComponents.includes(c))
        throw new ConfigError(`envs.${id}.reward_weights.${c}`, `is not a reward component of ${id} (${made.rewardComponents.join(', ')})`);
    return env;
  });
}

/** RL's weights of an env's reward components: the env's own shaping, each component 1 unless set. */
export function rewardWeights(env: AffineEnvConfig): Record<string, number> {
  const components = makeTextEnv(env.id, env.options).rewardComponents;
  return Object.fromEntries(components.map((c) => [c, env.reward_weights[c] ?? 1]));
}

/** The evaluation suite of every env, held out from the demonstrations by its seeds. */
function suiteOf(cfg: AffineConfig, envs: AffineEnvConfig[]): Record<string, unknown> {
  return {
    name: 'affine',
    mode: cfg.eval.mode,
    entries: envs.map((e) => ({
      name: e.id,
      env: { id: e.id, options: e.options },
      episodes: cfg.eval.episodes,
      seed: cfg.eval.seed,
      split: e.rl_updates > 0 ? 'RL' : 'SFT only',
      weight: e.weight,
      max_new_tokens: e.max_new_tokens,
    })),
  };
}

export async function planAffine(path: string, overrides: Record<string, string>): Promise<AffinePlan> {
  const cfg = validate(AFFINE_SCHEMA, loadConfig(path, overrides));
  const envs = envSections(cfg);
  const lastDemo = cfg.seed + Math.max(...envs.map((e) => e.demonstrations));
  if (cfg.eval.seed < lastDemo && cfg.eval.seed + cfg.eval.episodes > cfg.seed)
    throw new ConfigError('eval.seed', `must leave out the demonstrations' seeds ${cfg.seed}..${lastDemo - 1}, got ${cfg.eval.seed}`);
  const dataDir = join(cfg.out_dir, 'data');
  const initDir = join(cfg.out_dir, 'init');
  const { parseSftConfig, parseSequenceRunConfig, isSequenceRunConfig, LLAMA_OPTIONS, checkLlamaConfig } = await import('@rlmesh/learner');

  // The tokenizer fixes the vocabulary and special ids; everything else is checked now.
  checkWith('model', path, () =>
    checkLlamaConfig(validate(LLAMA_OPTIONS, { ...cfg.model, vocab_size: cfg.tokenizer.vocab_size }, 'model')),
  );

  const sftRaw = applyOverrides(loadStageConfig('sft.config', cfg.sft.config, overrideStrings('sft', cfg.sft.overrides, SFT_OWN)), {
    'run.out_dir': JSON.stringify(cfg.out_dir),
    'run.name': JSON.stringify('sft'),
    'data.dir': JSON.stringify(dataDir),
    'data.train': JSON.stringify('train.jsonl'),
    'data.eval': JSON.stringify('val.jsonl'),
    init_from: JSON.stringify(initDir),
  });
  checkWith('sft', cfg.sft.config, () => parseSftConfig(sftRaw));

  const rlBase = loadStageConfig('rl.config', cfg.rl.config, overrideStrings('rl', cfg.rl.overrides, RL_OWN));
  const algo = String((rlBase.algo as { name?: unknown } | undefined)?.name ?? 'grpo');
  const budgetKey = BUDGET_KEY[algo];
  if (!budgetKey)
    throw new ConfigError(`rl.config (${cfg.rl.config}): algo.name`, `must be ${Object.keys(BUDGET_KEY).join(' or ')}, got ${algo}`);
  const rl = envs
    .filter((e) => e.rl_updates > 0)
    .map((e) => {
      const name = `rl_${e.id}`;
      const raw = applyOverrides(rlBase, {
        'run.out_dir': JSON.stringify(cfg.out_dir),
        'run.name': JSON.stringify(name),
        env: JSON.stringify({ id: e.id, options: e.options }),
        'algo.reward_weights': JSON.stringify(rewardWeights(e)),
        [`algo.${budgetKey}`]: String(e.max_new_tokens),
        'train.total_updates': String(e.rl_updates),
      });
      if (!isSequenceRunConfig(raw)) throw new ConfigError(`envs.${e.id}`, 'is not a text env');
      checkWith('rl', cfg.rl.config, () => parseSequenceRunConfig({ ...raw, init_from: join(cfg.out_dir, 'sft', 'final') }));
      return { env: e.id, dir: join(cfg.out_dir, name), raw };
    });

  const suite = suiteOf(cfg, envs);
  const { parseSuite } = await import('@rlmesh/evaluator');
  checkWith('eval', path, () => parseSuite(suite));
  return {
    cfg,
    envs,
    dataDir,
    initDir,
    sftDir: join(cfg.out_dir, 'sft'),
    evalDir: join(cfg.out_dir, 'eval'),
    suiteFile: join(cfg.out_dir, 'suite.json'),
    suite,
    sftRaw,
    rl,
  };
}

/** The stages each evaluation follows, and the label each carries in tables and plots. */
export const EVALUATIONS = [
  { stage: 'eval_baseline', who: 'baseline', label: 'initial (untrained) Llama' },
  { stage: 'eval_sft', who: 'sft', label: 'after SFT' },
  { stage: 'eval_rl', who: 'rl', label: 'after SFT + RL' },
] as const;
export type Who = (typeof EVALUATIONS)[number]['who'];

export const affineEvalFile = (plan: AffinePlan, who: Who) => join(plan.evalDir, `${who}.json`);

/** The raw text of a file, for stage input hashes. */
export const textOf = (file: string) => readFileSync(file, 'utf8');
