/**
 * The config of `rlmesh cycle`: the storyworld SAE <-> RL cycle. Stage configs are files of their own
 * plus overrides (as `--key value` would give on their command lines), as in rlmesh experiment;
 * everything is checked before any stage runs, and errors name the key.
 */
import { join } from 'node:path';
import { ConfigError, type Infer, type Schema, validate } from '@rlmesh/core';
import { UsageError } from './args';
import { checkWith } from './experiment-config';
import { loadConfig } from './main';

export const CYCLE_USAGE = `rlmesh cycle <config.yaml> [--force data|sft|rl|capture|sae|analysis|<stage>_<cycle>[,...]] [--section.key value ...]
    The storyworld SAE <-> RL cycle (configs/storyworld-cycle.yaml): writes synthetic storyworlds,
    trains a GPT-2 on them by SFT, then for each cycle: GRPO on the verifier's rewards plus the
    feature rewards the previous cycle chose, activations captured on the policy's completions, an
    SAE trained on them, and the latents correlated with the verifier picked as the next bonus and
    penalty. Cycle 0 measures the SFT model the same way. Writes out_dir/results.json and
    out_dir/report.html; a finished stage is skipped when its inputs are unchanged.`;

export const CYCLE_STAGE_KINDS = ['data', 'sft', 'rl', 'capture', 'sae', 'analysis'] as const;

const CYCLE_SCHEMA = {
  out_dir: { kind: 'string', doc: 'where every stage writes' },
  cycles: { kind: 'int', default: 3, min: 1, max: 50, doc: 'RL -> capture -> SAE -> analysis rounds after the SFT baseline' },
  data: {
    kind: 'section',
    fields: {
      seed: { kind: 'int', default: 0, min: 0, max: 2 ** 32 - 1, doc: 'rlmesh data storyworld --seed' },
      n_train: { kind: 'int', default: 3000, min: 1, max: 2_000_000 },
      n_val: { kind: 'int', default: 100, min: 1, max: 100_000 },
      n_test: { kind: 'int', default: 100, min: 1, max: 100_000 },
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
      config: { kind: 'string', doc: 'an rlmesh train config on the Storyworld env (GRPO), without feature_rewards' },
      overrides: { kind: 'open', doc: 'dotted keys and values, as --key value on the train command line' },
    },
  },
  capture: {
    kind: 'section',
    fields: {
      hook: { kind: 'string', default: 'blocks.0.hook_resid_post', doc: 'the hook point SAEs are trained on and feature rewards read' },
      prompts: { kind: 'int', default: 32, min: 1, max: 4096, doc: 'Storyworld prompts per capture (the same every cycle)' },
      generations: { kind: 'int', default: 4, min: 1, max: 256, doc: 'sampled completions per prompt' },
      max_new_tokens: { kind: 'int', default: 300, min: 1, max: 65_536 },
      temperature: { kind: 'number', default: 1, min: 0, doc: 'as GRPO samples (0: greedy)' },
      seed: { kind: 'int', default: 0, min: 0, max: 2 ** 31 - 1, doc: 'the prompts drawn and the sampling' },
    },
  },
  sae: {
    kind: 'section',
    fields: {
      config: { kind: 'open', doc: "SAELens's config keys (architecture, d_sae, k, ...); d_in is the hook's width" },
      steps: { kind: 'int', default: 1000, min: 1, max: 1_000_000 },
      batch_size: { kind: 'int', default: 256, min: 1, max: 65_536 },
    },
  },
  features: {
    kind: 'section',
    fields: {
      target: { kind: 'string', default: 'valid_json', doc: 'the component whose correlations pick the sets (total when it is constant)' },
      top: { kind: 'int', default: 4, min: 1, max: 256, doc: 'latents in the bonus set and in the penalty set' },
      min_abs_r: { kind: 'number', default: 0.1, min: 0, max: 1, doc: 'a latent needs at least this |r| to be picked' },
      weight: { kind: 'number', default: 0.1, min: 0, doc: "each set's weight in the reward" },
      reduce: { kind: 'string', default: 'mean', oneOf: ['mean', 'max'] },
    },
  },
} as const satisfies Schema;

export type CycleConfig = Infer<typeof CYCLE_SCHEMA>;

export interface CyclePlan {
  cfg: CycleConfig;
  configFile: string;
  dataDir: string;
  sftDir: string;
  sftRaw: Record<string, unknown>;
  /** The RL config, init_from, run.name and feature_rewards aside (each cycle sets them). */
  rlRaw: Record<string, unknown>;
}

/** Directories of cycle `c` (0: the SFT baseline, which has no RL). */
export const cycleDirs = (plan: CyclePlan, c: number) => ({
  rl: join(plan.cfg.out_dir, `cycle_${c}`, 'rl'),
  capture: join(plan.cfg.out_dir, `cycle_${c}`, 'capture'),
  saeId: `cycle_${c}`,
  sae: join(plan.cfg.out_dir, 'saes', `cycle_${c}`),
  analysis: join(plan.cfg.out_dir, `cycle_${c}`, 'analysis.json'),
});

/** Nested mappings as `--key value` strings (applyOverrides parses JSON values back). */
function flatten(v: Record<string, unknown>, prefix = ''): [string, string][] {
  return Object.entries(v).flatMap(([k, x]) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? flatten(x as Record<string, unknown>, `${prefix}${k}.`)
      : [[`${prefix}${k}`, JSON.stringify(x)] as [string, string]],
  );
}

function loadStage(section: string, file: string, overrides: Record<string, unknown>, own: readonly string[]): Record<string, unknown> {
  for (const [k] of flatten(overrides))
    if (own.some((o) => k === o || k.startsWith(`${o}.`) || o.startsWith(`${k}.`)))
      throw new ConfigError(`${section}.overrides.${k}`, `is set by the cycle (${own.join(', ')})`);
  try {
    return loadConfig(file, Object.fromEntries(flatten(overrides)));
  } catch (e) {
    if (e instanceof UsageError) throw new ConfigError(`${section}.config`, e.message);
    if (e instanceof ConfigError) throw new ConfigError(`${section}.config (${file}): ${e.key}`, e.rule);
    throw e;
  }
}

export async function planCycle(path: string, overrides: Record<string, string>): Promise<CyclePlan> {
  const cfg = validate(CYCLE_SCHEMA, loadConfig(path, overrides));
  const dataDir = join(cfg.out_dir, 'data');
  const { parseSftConfig, parseSequenceRunConfig } = await import('@rlmesh/learner');
  const { saeConfig } = await import('@rlmesh/sae');
  const sftRaw = {
    ...loadStage('sft', cfg.sft.config, cfg.sft.overrides, ['run.out_dir', 'run.name', 'data.dir']),
  };
  Object.assign(sftRaw, {
    run: { ...(sftRaw.run as object), out_dir: cfg.out_dir, name: 'sft' },
    data: { ...(sftRaw.data as object), dir: dataDir },
  });
  checkWith('sft', cfg.sft.config, () => parseSftConfig(sftRaw));
  const rlRaw = loadStage('rl', cfg.rl.config, cfg.rl.overrides, ['run.out_dir', 'run.name', 'init_from', 'feature_rewards']);
  if ('feature_rewards' in rlRaw)
    throw new ConfigError(`rl.config (${cfg.rl.config}): feature_rewards`, 'is set by the cycle from its analysis');
  checkWith('rl', cfg.rl.config, () => {
    const rl = parseSequenceRunConfig({ ...rlRaw, init_from: join(cfg.out_dir, 'sft', 'final') });
    if (rl.env.id !== 'Storyworld') throw new ConfigError('env.id', `must be Storyworld, got ${rl.env.id}`);
    const weights = (rl.algo as { reward_weights?: Record<string, number> }).reward_weights;
    if (!weights) throw new ConfigError('algo.reward_weights', "must name the verifier's components");
  });
  // d_in is the hook's width, known once the SFT model exists; the rest is checked now.
  checkWith('sae', 'config', () => saeConfig({ ...cfg.sae.config, d_in: 1 }));
  return { cfg, configFile: path, dataDir, sftDir: join(cfg.out_dir, 'sft'), sftRaw, rlRaw };
}
