/**
 * `rlmesh train <config>` when the config's env is a text env: RL on token sequences (GRPO) from a
 * Hugging Face GPT-2 checkpoint, embedded (services/learner/src/run/sequence-run.ts). A bad config,
 * checkpoint or tokenizer file prints one line and exits 2. A `feature_rewards` list adds SAE
 * feature rewards (@rlmesh/sae's feature-rewards.ts): each set is a reward component of its own,
 * weighted +weight (bonus) or -weight (penalty) into algo.reward_weights.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '@rlmesh/core';
import { UsageError } from './args';
import { Progress } from './progress';

/** The config without `feature_rewards`, each set's signed weight added to algo.reward_weights. */
function withFeatureWeights(raw: Record<string, unknown>, weights: Record<string, number>): Record<string, unknown> {
  const { feature_rewards: _, ...rest } = raw;
  if (Object.keys(weights).length === 0) return rest;
  const algo = (rest.algo ?? {}) as Record<string, unknown>;
  const own = algo.reward_weights;
  if (typeof own !== 'object' || own === null)
    throw new ConfigError('algo.reward_weights', "must name the env's components when feature_rewards are set");
  for (const k of Object.keys(weights))
    if (k in own) throw new ConfigError(`algo.reward_weights.${k}`, 'is a feature set; its weight comes from feature_rewards');
  return { ...rest, algo: { ...algo, reward_weights: { ...own, ...weights } } };
}

export async function trainSequenceCommand(raw: Record<string, unknown>, resume: string | undefined): Promise<number> {
  if (resume !== undefined && !existsSync(join(resume, 'rl_state.json')))
    throw new UsageError(`--resume: ${resume} is not a checkpoint written by a sequence run (no rl_state.json)`);
  const { parseSequenceRunConfig, sequenceAlgorithmSpec, trainSequences } = await import('@rlmesh/learner');
  const { FeatureRewarder, featureRewardWeights, openGpt2Directory, parseFeatureRewards } = await import('@rlmesh/sae');
  const features = parseFeatureRewards(raw.feature_rewards);
  const cfg = parseSequenceRunConfig(withFeatureWeights(raw, featureRewardWeights(features)));
  const policyOf = (dir: string) =>
    openGpt2Directory(dir).catch((e) => {
      throw new ConfigError('init_from', (e as Error).message);
    });
  const extraRewards = features.length
    ? await FeatureRewarder.create(features, await policyOf(cfg.init_from), { threads: cfg.train.threads })
    : undefined;
  const shown = sequenceAlgorithmSpec(cfg.algo.name).progressMetrics;
  let bar: Progress | null = null;
  try {
    const s = await trainSequences(cfg, {
      resumeFrom: resume,
      extraRewards,
      onStart: (i) => {
        console.log(
          `rlmesh train: ${cfg.algo.name} on ${cfg.env.id} from ${cfg.init_from} (${i.architecture}, ${i.parameters} parameters), ` +
            `${i.prompts} prompts x ${i.generations} completions per update, ${i.total} updates, seed ${cfg.run.seed}` +
            (i.start > 0 ? `, resuming at update ${i.start}` : ''),
        );
        bar = new Progress(i.total, cfg.run.name);
      },
      onUpdate: (r) => {
        const fields: Record<string, string> = { success: `${(100 * r.success_mean).toFixed(1)}%` };
        for (const m of shown) if (r.metrics[m] !== undefined) fields[m] = r.metrics[m].toPrecision(3);
        bar?.update(r.update, fields);
      },
    });
    console.log(
      `done: ${s.updates} updates, ${s.env_steps} completions in ${s.seconds.toFixed(1)} s (${s.updates_per_s.toFixed(3)} updates/s); ` +
        `mean reward ${s.reward_start.toFixed(3)} over the first updates -> ${s.reward_end.toFixed(3)} over the last, success ${(100 * s.final_success).toFixed(1)}%`,
    );
    console.log(`checkpoint ${s.final_checkpoint}`);
    console.log(`run directory ${s.run_dir}`);
    return 0;
  } catch (e) {
    // A checkpoint or tokenizer the run cannot read is the user's input: one line, exit 2.
    const name = (e as Error).name;
    if (name === 'TokenizerFormatError' || name === 'InvalidUtf8Error') throw new UsageError(`train: ${(e as Error).message}`);
    throw e;
  } finally {
    await extraRewards?.release();
  }
}
