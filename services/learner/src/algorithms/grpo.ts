/**
 * GRPO on token sequences, in Hugging Face TRL's GRPOTrainer's names and maths. For each rollout
 * (P prompts x G completions, one group per prompt):
 *
 *   r_i       = sum_c w_c * reward_c,i                       (the verifier's components, weighted)
 *   A_i       = (r_i - mean_group r) / (std_group r + 1e-4)   scale_rewards group (std: Bessel-corrected)
 *               (r_i - mean_group r) / (std_batch r + 1e-4)   scale_rewards batch
 *                r_i - mean_group r                            scale_rewards none (Dr. GRPO)
 *   repeat num_iterations times, one AdamW step each, over every completion token t of row i:
 *     ratio_it  = exp(log pi(t) - log pi_old(t))               pi_old: the behaviour log-probs of the rollout
 *     l_it      = -min(ratio_it A_i, clip(ratio_it, 1 - epsilon, 1 + epsilon_high) A_i)
 *               + beta * (exp(ref_it - log pi(t)) - (ref_it - log pi(t)) - 1)   (k3 KL to the starting checkpoint)
 *     loss      = grpo:    mean over rows of (sum_t l_it / |o_i|)            (per-sequence length-normalised)
 *                 dr_grpo: sum_it l_it / (rows * max_completion_length)      (a constant normaliser)
 *                 dapo:    sum_it l_it / (completion tokens of the batch)    (token-level mean)
 *
 * Multi-turn rollouts (one row per policy turn of a conversation, core's ConversationCollector):
 * the episode is what a group compares, so r above is the episode's return R_e = sum over its turns
 * of the weighted per-turn (shaped) rewards, A_e is normalised among the G episodes of one problem,
 * and every turn of episode e carries A_e. Rows in the loss are turns: `grpo` averages turns, so a
 * longer conversation weighs more, as its extra turns are extra decisions. A single-turn rollout is
 * the case of one turn per episode, and the formulas above hold unchanged.
 *
 * The aggregation is one weight per row (row_weight below), so a loss summed over micro-batches is
 * exactly the loss of the whole batch, whatever the micro-batch size. Logged under stable names:
 * loss, policy_loss, kl, clip_ratio_low / _high / _region, ratio_mean, entropy, completion_length_mean,
 * completion_truncated_frac, reward_mean, reward_std, frac_reward_zero_std, refused_frac, grad_norm, lr.
 *
 * Differences from TRL, each for a reason: the log-probs are at temperature 1 (TRL divides the
 * logits by the sampling temperature), because the behaviour log-probs the generator and the policy
 * service report are the model's own; one optimizer step per iteration over the whole rollout
 * (TRL's steps_per_generation = 1); dropout is always off (TRL's disable_dropout), so the learner's
 * log-probs equal the generator's.
 */
import { ConfigError, type Infer, rowEpisodes, type Schema, type SequenceRollout, sequenceRows } from '@rlmesh/core';
import {
  add,
  cast,
  categoricalEntropy,
  clip,
  exp,
  greater,
  type HostTensor,
  less,
  logicalAnd,
  minimum,
  mul,
  neg,
  reduceSum,
  sub,
  unsqueeze,
  type Value,
} from '@rlmesh/graph';
import type { CausalLm } from '../models/causal-lm';
import { tokenLogProbs } from '../models/gpt2-step';
import type { SequenceAlgorithmSpec, SequenceUpdateContext } from '../registry';
import { completionLengths, rolloutLmBatch } from './sequence-batch';
import { adamwOf, OPTIMIZER_OPTIONS, SAMPLING_OPTIONS, sequenceLr } from './sequence-optimizer';

const CONFIG = {
  num_generations: { kind: 'int', default: 8, min: 2, max: 4096, doc: 'G: completions per prompt (a group)' },
  prompts_per_update: { kind: 'int', default: 16, min: 1, max: 65_536, doc: 'P: prompts (groups) per rollout and update' },
  micro_batch_size: { kind: 'int', default: 32, min: 1, max: 65_536, doc: 'rows per gradient pass; must divide P x G' },
  max_completion_length: { kind: 'int', default: 16, min: 1, max: 65_536, doc: 'new tokens per completion (EOS included)' },
  ...SAMPLING_OPTIONS,
  epsilon: { kind: 'number', default: 0.2, min: 0, max: 1, exclusiveMin: true, doc: 'lower clip: ratio >= 1 - epsilon' },
  epsilon_high: { kind: 'number', default: 0, min: 0, doc: 'upper clip: ratio <= 1 + epsilon_high; 0: epsilon' },
  beta: { kind: 'number', default: 0, min: 0, doc: 'weight of the k3 KL to the starting checkpoint; 0 skips the reference forward' },
  loss_type: { kind: 'string', default: 'dapo', oneOf: ['grpo', 'dr_grpo', 'dapo'] },
  scale_rewards: {
    kind: 'string',
    default: 'group',
    oneOf: ['group', 'batch', 'none'],
    doc: "advantages divided by the group's reward std, the batch's, or not at all (Dr. GRPO)",
  },
  num_iterations: { kind: 'int', default: 1, min: 1, max: 1024, doc: 'optimizer steps on each rollout' },
  learning_rate: { kind: 'number', default: 1e-6, min: 0, exclusiveMin: true },
  ...OPTIMIZER_OPTIONS,
  reward_weights: { kind: 'numberRecord', default: { correct: 1, format: 0 }, doc: "the verifier's components, weighted into r" },
} as const satisfies Schema;

type GrpoConfig = Infer<typeof CONFIG>;

/** The advantage denominator's epsilon, as TRL's. */
export const ADVANTAGE_EPS = 1e-4;

/** Sample standard deviation (n - 1), 0 for fewer than two values: torch.std as TRL's nanstd computes it. */
function std(xs: ArrayLike<number>, from: number, to: number): number {
  const n = to - from;
  if (n < 2) return 0;
  let m = 0;
  for (let i = from; i < to; i++) m += xs[i];
  m /= n;
  let v = 0;
  for (let i = from; i < to; i++) v += (xs[i] - m) ** 2;
  return Math.sqrt(v / (n - 1));
}

/** Group-relative advantages of rows laid out group after group (G each); also the share of groups whose rewards are all equal. */
export function groupAdvantages(
  rewards: ArrayLike<number>,
  G: number,
  scale: 'group' | 'batch' | 'none',
): { advantages: Float64Array; fracZeroStd: number } {
  const n = rewards.length;
  if (n % G !== 0) throw new Error(`groupAdvantages: ${n} rewards are not whole groups of ${G}`);
  const advantages = new Float64Array(n);
  const batchStd = std(rewards, 0, n);
  let zero = 0;
  for (let g = 0; g < n; g += G) {
    let mean = 0;
    for (let i = g; i < g + G; i++) mean += rewards[i];
    mean /= G;
    const s = std(rewards, g, g + G);
    if (Math.abs(s) < 1e-8) zero++;
    const denom = scale === 'group' ? s + ADVANTAGE_EPS : scale === 'batch' ? batchStd + ADVANTAGE_EPS : 1;
    for (let i = g; i < g + G; i++) advantages[i] = (rewards[i] - mean) / denom;
  }
  return { advantages, fracZeroStd: zero / (n / G) };
}

/**
 * Each row's advantage and each episode's return: the weighted rewards summed over an episode's
 * rows (its turns; one row for a single-turn episode), made group-relative among the G episodes of
 * one problem, and the episode's advantage given to every one of its rows.
 */
export function episodeAdvantages(
  r: SequenceRollout,
  weights: Record<string, number>,
  scale: 'group' | 'batch' | 'none',
): { advantages: Float64Array; returns: Float64Array; fracZeroStd: number } {
  const rows = sequenceRows(r);
  const episodeOf = rowEpisodes(r);
  const returns = new Float64Array(r.numPrompts * r.groupSize);
  for (const [c, w] of Object.entries(weights)) {
    const comp = r.rewards[c];
    if (!comp && w === 0) continue;
    if (!comp)
      throw new ConfigError(
        `algo.reward_weights.${c}`,
        `is not a reward component of this env (it has: ${Object.keys(r.rewards).join(', ')})`,
      );
    for (let i = 0; i < rows; i++) returns[episodeOf[i]] += w * comp[i];
  }
  const perEpisode = groupAdvantages(returns, r.groupSize, scale);
  return { advantages: Float64Array.from(episodeOf, (e) => perEpisode.advantages[e]), returns, fracZeroStd: perEpisode.fracZeroStd };
}

/**
 * Each row's weight in the loss sum, by loss_type: l_it is summed times this (see the file comment).
 * `lengths` are the rows' completion tokens.
 */
export function rowWeights(lossType: string, lengths: ArrayLike<number>, maxCompletionLength: number): Float64Array {
  const n = lengths.length;
  const w = new Float64Array(n);
  let tokens = 0;
  for (let i = 0; i < n; i++) tokens += lengths[i];
  for (let i = 0; i < n; i++) {
    if (lossType === 'grpo') w[i] = 1 / (Math.max(1, lengths[i]) * n);
    else if (lossType === 'dr_grpo') w[i] = 1 / (n * maxCompletionLength);
    else if (lossType === 'dapo') w[i] = 1 / Math.max(1, tokens);
    else throw new Error(`unknown loss_type ${lossType}`);
  }
  return w;
}

/**
 * The per-token loss, its aggregation and the named sums, traced on a micro-batch. The log-probs are
 * masked to the completion tokens first, so padding and prompt positions carry a zero log ratio and
 * no KL (never exp of a large number times a zero weight, which would be NaN).
 */
function grpoLoss(model: CausalLm, b: Record<string, Value>, cfg: GrpoConfig) {
  const { logProbs, logits } = tokenLogProbs(model, b);
  const mask = cast(b.loss_mask, logProbs.dtype);
  const logp = mul(logProbs, mask);
  const adv = unsqueeze(b.advantages, [-1]);
  const ratio = exp(sub(logp, b.old_log_probs));
  const low = 1 - cfg.epsilon;
  const high = 1 + (cfg.epsilon_high > 0 ? cfg.epsilon_high : cfg.epsilon);
  const surrogate = neg(minimum(mul(ratio, adv), mul(clip(ratio, low, high), adv)));
  const weight = mul(unsqueeze(b.row_weight, [-1]), mask);
  const sums: Record<string, Value> = {
    policy_loss: reduceSum(mul(surrogate, weight)),
    ratio_sum: reduceSum(mul(ratio, mask)),
    clip_low_sum: reduceSum(mul(cast(logicalAnd(less(ratio, low), less(adv, 0)), 'float32'), mask)),
    clip_high_sum: reduceSum(mul(cast(logicalAnd(greater(ratio, high), greater(adv, 0)), 'float32'), mask)),
    entropy_sum: reduceSum(mul(categoricalEntropy(logits), mask)),
  };
  let perToken = surrogate;
  if (cfg.beta > 0) {
    const d = sub(b.ref_log_probs, logp);
    const kl = sub(sub(exp(d), d), 1);
    sums.kl_sum = reduceSum(mul(kl, mask));
    perToken = add(surrogate, mul(kl, cfg.beta));
  }
  return { loss: reduceSum(mul(perToken, weight)), sums };
}

/** One micro-batch's feeds: the LM batch and the per-token and per-row inputs. */
function microBatch(r: SequenceRollout, rows: readonly number[], advantages: Float64Array, weights: Float64Array, padId: number) {
  const lm = rolloutLmBatch(r, rows, padId);
  const [B, T] = lm.feeds.input_ids.shape;
  const feeds: Record<string, HostTensor> = {
    ...lm.feeds,
    old_log_probs: { data: lm.place(r.logProbs), shape: [B, T] },
    advantages: { data: Float32Array.from(rows, (i) => advantages[i]), shape: [B] },
    row_weight: { data: Float32Array.from(rows, (i) => weights[i]), shape: [B] },
  };
  return { feeds, tokens: lm.tokens };
}

const meanOf = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : 0;
};

async function update(r: SequenceRollout, ctx: SequenceUpdateContext<GrpoConfig, Record<string, never>>): Promise<Record<string, number>> {
  const cfg = ctx.cfg;
  const rows = sequenceRows(r);
  const episodes = r.numPrompts * r.groupSize;
  // 1. Rewards -> episode returns -> group-relative advantages, one per episode, given to each of its rows.
  const {
    advantages,
    returns: rewards,
    fracZeroStd,
  } = episodeAdvantages(r, cfg.reward_weights, cfg.scale_rewards as 'group' | 'batch' | 'none');
  // 2. The loss's row weights, and the micro-batches (fixed for every iteration).
  const lengths = completionLengths(r);
  const rowW = rowWeights(cfg.loss_type, lengths, cfg.max_completion_length);
  const micro: Record<string, HostTensor>[] = [];
  let tokens = 0;
  for (let at = 0; at < rows; at += cfg.micro_batch_size) {
    const idx = Array.from({ length: Math.min(cfg.micro_batch_size, rows - at) }, (_, k) => at + k);
    const mb = microBatch(r, idx, advantages, rowW, ctx.padId);
    // 3. The frozen reference's log-probs, once per rollout (beta 0 never runs it).
    if (cfg.beta > 0) mb.feeds.ref_log_probs = { data: await ctx.referenceLogProbs(mb.feeds), shape: mb.feeds.old_log_probs.shape };
    micro.push(mb.feeds);
    tokens += mb.tokens;
  }
  // 4. num_iterations AdamW steps on the same rollout; pi_old stays the behaviour policy.
  const sums: Record<string, number> = {};
  let gradNorm = 0;
  let lr = 0;
  for (let it = 0; it < cfg.num_iterations; it++) {
    const step = ctx.optimizerSteps + it;
    lr = sequenceLr(cfg, step, ctx.totalUpdates * cfg.num_iterations);
    const g = await ctx.gradient(micro);
    for (const [k, v] of Object.entries(g.sums)) sums[k] = (sums[k] ?? 0) + v;
    gradNorm += await ctx.apply(g.grad, lr);
  }
  const iters = cfg.num_iterations;
  const perToken = (k: string) => (sums[k] ?? 0) / Math.max(1, tokens * iters);
  const metrics: Record<string, number> = {
    loss: sums.loss / iters,
    policy_loss: sums.policy_loss / iters,
    kl: cfg.beta > 0 ? perToken('kl_sum') : 0,
    clip_ratio_low: perToken('clip_low_sum'),
    clip_ratio_high: perToken('clip_high_sum'),
    clip_ratio_region: perToken('clip_low_sum') + perToken('clip_high_sum'),
    ratio_mean: perToken('ratio_sum'),
    entropy: perToken('entropy_sum'),
    completion_length_mean: meanOf(lengths),
    completion_truncated_frac: meanOf(r.truncated),
    reward_mean: meanOf(rewards),
    reward_std: std(rewards, 0, episodes),
    frac_reward_zero_std: fracZeroStd,
    refused_frac: meanOf(r.refused),
    grad_norm: gradNorm / iters,
    lr,
  };
  // Per episode (a conversation's sum over its turns): the same as per row for single-turn rollouts.
  for (const c of Object.keys(r.rewards)) metrics[`reward_${c}`] = r.rewards[c].reduce((acc, x) => acc + x, 0) / episodes;
  return metrics;
}

export const grpo: SequenceAlgorithmSpec<typeof CONFIG, Record<string, never>> = {
  name: 'grpo',
  description: "GRPO on token sequences (Hugging Face TRL's GRPOTrainer: group-relative advantages, clipped ratio, k3 KL)",
  rollout: 'sequence',
  config: CONFIG,
  progressMetrics: ['reward_mean', 'kl', 'completion_length_mean'],
  rewardWeights: (cfg) => cfg.reward_weights,
  initialState: () => ({}),
  check(cfg) {
    const rows = cfg.prompts_per_update * cfg.num_generations;
    if (rows % cfg.micro_batch_size !== 0)
      throw new ConfigError(
        'algo.micro_batch_size',
        `must divide prompts_per_update x num_generations (${cfg.prompts_per_update} x ${cfg.num_generations} = ${rows} rows), got ${cfg.micro_batch_size}`,
      );
  },
  sampling: (cfg) => ({
    numGenerations: cfg.num_generations,
    promptsPerUpdate: cfg.prompts_per_update,
    maxCompletionLength: cfg.max_completion_length,
    temperature: cfg.temperature,
    topK: cfg.top_k,
    topP: cfg.top_p,
  }),
  adamw: adamwOf,
  usesReference: (cfg) => cfg.beta > 0,
  inputs: (cfg) => [
    { name: 'loss_mask', dtype: 'float32', shape: ['batch', 'sequence'] },
    { name: 'old_log_probs', dtype: 'float32', shape: ['batch', 'sequence'] },
    ...(cfg.beta > 0 ? [{ name: 'ref_log_probs', dtype: 'float32', shape: ['batch', 'sequence'] } as const] : []),
    { name: 'advantages', dtype: 'float32', shape: ['batch'] },
    { name: 'row_weight', dtype: 'float32', shape: ['batch'] },
  ],
  loss: grpoLoss,
  update,
};
