/**
 * PPO on token sequences, in Hugging Face TRL's PPOTrainer's names and maths (trl/trainer/ppo_trainer.py,
 * ppo_config.py). Named ppo_seq because `ppo` is the numeric PPO of algorithms/ppo.ts and one name
 * means one algorithm in the error messages of both registries. For each rollout (batch_size prompts,
 * one completion each, completion tokens t = 0..n_i-1 of row i, EOS included):
 *
 *   score_i   = sum_c w_c * reward_c,i  - missing_eos_penalty (rows that never wrote EOS)
 *   logr_it   = ref_it - logp_it                         logp: the behaviour log-probs of the rollout
 *   kl_it     = k1: -logr_it      k3: exp(logr_it) - 1 - logr_it
 *   r_it      = -kl_coef * kl_it  (+ score_i at t = n_i - 1)      (whiten_rewards: whitened, mean kept)
 *   V_it      = the value head at the slot that predicts token t (before any update on this rollout)
 *   A_it      = GAE(gamma, lam) over t with V past the last token 0; R_it = A_it + V_it
 *   A_it      <- (A_it - mean A) / sqrt(var A + 1e-8)   over every completion token of the rollout
 *   num_ppo_epochs x (shuffle, num_mini_batches minibatches, one AdamW step each):
 *     ratio   = exp(log pi(t) - logp_it)
 *     pg      = max(-A ratio, -A clip(ratio, 1 - cliprange, 1 + cliprange))
 *     vf      = 1/2 max((v - R)^2, (V + clip(v - V, +-cliprange_value) - R)^2)
 *     loss    = token mean over the minibatch of (pg + vf_coef * vf)
 *
 * Multi-turn rollouts (one row per policy turn of a conversation, core's ConversationCollector;
 * batch_size conversations, each of any number of turns k = 0..K-1): credit is turn-level across
 * turns and token-level inside a turn. The value head reads the LM's hidden state over the whole
 * conversation so far; turn k's score is its discounted return-to-go
 *   score_k   = s_k + turn_gamma * score_{k+1}     (s_k: the turn's own score as above; score_K = 0)
 * put on the turn's last token, and GAE runs over the turn's tokens with V past its last token 0,
 * so a turn's tokens learn from everything the conversation earned from that turn on. An episode cut
 * by a limit (turns, context) is not bootstrapped: its return-to-go stops at its last turn.
 * Minibatches split the rows (turns) as evenly as their number allows.
 *
 * Logged: loss, policy_loss, value_loss, clipfrac, vf_clipfrac, approx_kl (1/2 mean log-ratio^2),
 * ratio_mean, entropy, kl (per-row sum of kl_it, averaged: TRL's objective/kl), non_score_reward
 * (per-row sum of -kl_coef kl_it), rlhf_reward (score + non_score_reward), score_mean, reward_mean
 * (the verifier's weighted reward, before the EOS penalty), value_mean, return_mean_tokens,
 * completion_length_mean, eos_frac, grad_norm, lr.
 *
 * Differences from TRL, each for a reason:
 *  - One GPT-2 trunk carries the policy and the value head (`v_head.summary`, as TRL's
 *    AutoModelForCausalLMWithValueHead), not a second value model, so the value loss also trains
 *    the trunk and vf_coef weighs that; the head is saved as value_head.safetensors so `transformers`
 *    still loads the LM alone.
 *  - The score sits on the last completion token (EOS included) and the value loss covers exactly
 *    the completion tokens: TRL's truncation puts the score and one extra value on the slot after
 *    the last non-pad token (its sequence_lengths + 1), which with pad == EOS is that EOS and with
 *    a distinct pad is a padding slot; here the episode ends at the token that ended it.
 *  - Log-probs at temperature 1 and dropout off, as GRPO (grpo.ts): the behaviour log-probs are the
 *    model's own, so with one minibatch the first step's ratio is 1.
 *  - Each minibatch is one gradient over micro-batches of micro_batch_size rows whose loss carries
 *    the minibatch's token count, so the update equals TRL's with gradient_accumulation_steps 1
 *    (a token mean over the minibatch) whatever the micro-batch size; approx_kl and the clip
 *    fractions are token means over completion tokens (TRL averages approx_kl over padding too).
 */
import { ConfigError, type Infer, Rng, type Schema, type SequenceRollout, sequenceRows } from '@rlmesh/core';
import {
  add,
  cast,
  categoricalEntropy,
  clip,
  exp,
  greater,
  type HostTensor,
  maximum,
  mul,
  neg,
  reduceSum,
  square,
  sub,
  unsqueeze,
  type Value,
} from '@rlmesh/graph';
import type { CausalLm } from '../models/causal-lm';
import { tokenLogProbs } from '../models/gpt2-step';
import type { SequenceAlgorithmSpec, SequenceUpdateContext } from '../registry';
import { vtrace } from './advantages';
import { completionLengths, rolloutLmBatch } from './sequence-batch';
import { adamwOf, OPTIMIZER_OPTIONS, SAMPLING_OPTIONS, sequenceLr } from './sequence-optimizer';

const CONFIG = {
  batch_size: { kind: 'int', default: 16, min: 1, max: 65_536, doc: 'prompts (one completion each) per rollout and update' },
  num_mini_batches: { kind: 'int', default: 1, min: 1, max: 65_536, doc: 'optimizer steps per epoch; must divide batch_size' },
  micro_batch_size: { kind: 'int', default: 16, min: 1, max: 65_536, doc: 'rows per gradient pass; must divide a minibatch' },
  num_ppo_epochs: { kind: 'int', default: 4, min: 1, max: 1024, doc: 'passes over each rollout' },
  response_length: { kind: 'int', default: 16, min: 1, max: 65_536, doc: 'new tokens per completion (EOS included)' },
  ...SAMPLING_OPTIONS,
  kl_coef: { kind: 'number', default: 0.05, min: 0, doc: 'per-token KL penalty in the reward; 0 skips the reference forward' },
  kl_estimator: { kind: 'string', default: 'k1', oneOf: ['k1', 'k3'], doc: 'k1: log pi - log ref; k3: unbiased, non-negative' },
  missing_eos_penalty: { kind: 'number', default: 0, min: 0, doc: 'subtracted from the score of a completion without EOS; 0: none' },
  whiten_rewards: { kind: 'bool', default: false, doc: 'whiten the per-token rewards (keeping their mean) before GAE' },
  cliprange: { kind: 'number', default: 0.2, min: 0, exclusiveMin: true },
  cliprange_value: { kind: 'number', default: 0.2, min: 0, exclusiveMin: true },
  vf_coef: { kind: 'number', default: 0.1, min: 0 },
  gamma: { kind: 'number', default: 1, min: 0, max: 1 },
  turn_gamma: {
    kind: 'number',
    default: 0.99,
    min: 0,
    max: 1,
    doc: 'discount per turn of a multi-turn episode, for each turn its return-to-go (unused by single-turn envs)',
  },
  lam: { kind: 'number', default: 0.95, min: 0, max: 1 },
  learning_rate: { kind: 'number', default: 3e-6, min: 0, exclusiveMin: true },
  ...OPTIMIZER_OPTIONS,
  reward_weights: { kind: 'numberRecord', default: { correct: 1, format: 0 }, doc: "the verifier's components, weighted into the score" },
} as const satisfies Schema;

export type PpoSeqConfig = Infer<typeof CONFIG>;

/** TRL's masked_whiten over the tokens where mask is 1: Bessel-corrected variance, eps 1e-8; shiftMean false keeps the mean. */
export function maskedWhiten(x: ArrayLike<number>, mask: ArrayLike<number>, shiftMean: boolean): Float64Array {
  let n = 0;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    if (!mask[i]) continue;
    n++;
    m += x[i];
  }
  m /= Math.max(1, n);
  let v = 0;
  for (let i = 0; i < x.length; i++) if (mask[i]) v += (x[i] - m) ** 2;
  v = n > 1 ? v / (n - 1) : 0;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) if (mask[i]) out[i] = (x[i] - m) / Math.sqrt(v + 1e-8) + (shiftMean ? 0 : m);
  return out;
}

export interface PpoTargetsInput {
  /** Per row: the score (weighted reward less the EOS penalty) and the completion tokens. */
  scores: ArrayLike<number>;
  lengths: ArrayLike<number>;
  /** Per token [rows, Lc]: behaviour log-probs, reference log-probs (null without a KL term), values. */
  logProbs: ArrayLike<number>;
  refLogProbs: ArrayLike<number> | null;
  values: ArrayLike<number>;
  completionLength: number;
  cfg: Pick<PpoSeqConfig, 'kl_coef' | 'kl_estimator' | 'whiten_rewards' | 'gamma' | 'lam'>;
}

/**
 * Each turn's score replaced by its discounted return-to-go within its episode (rows of an episode
 * contiguous and in turn order, as episodeIds lays them out).
 */
export function turnReturnsToGo(scores: ArrayLike<number>, episodeIds: ArrayLike<number>, gamma: number): Float64Array {
  const out = Float64Array.from(scores);
  for (let i = out.length - 2; i >= 0; i--) if (episodeIds[i + 1] === episodeIds[i]) out[i] += gamma * out[i + 1];
  return out;
}

/** Per-token KL estimates, rewards, whitened advantages and returns [rows, Lc], 0 past each row's last token. */
export function ppoTargets(x: PpoTargetsInput) {
  const N = x.scores.length;
  const Lc = x.completionLength;
  const mask = new Uint8Array(N * Lc);
  const kl = new Float64Array(N * Lc);
  let rewards: Float64Array = new Float64Array(N * Lc);
  for (let i = 0; i < N; i++) {
    for (let t = 0; t < x.lengths[i]; t++) {
      const k = i * Lc + t;
      mask[k] = 1;
      if (x.refLogProbs) {
        const logr = x.refLogProbs[k] - x.logProbs[k];
        kl[k] = x.cfg.kl_estimator === 'k3' ? Math.exp(logr) - 1 - logr : -logr;
      }
      rewards[k] = -x.cfg.kl_coef * kl[k];
    }
    if (x.lengths[i] > 0) rewards[i * Lc + x.lengths[i] - 1] += x.scores[i];
  }
  const nonScore = Float64Array.from(kl, (v) => -x.cfg.kl_coef * v);
  if (x.cfg.whiten_rewards) rewards = maskedWhiten(rewards, mask, false);
  // GAE is V-trace with every ratio 1 (advantages.ts), on [Lc steps, N rows]; a row's episode ends at its last token.
  const r = new Float32Array(N * Lc);
  const v = new Float32Array(N * Lc);
  const next = new Float32Array(N * Lc);
  const terminated = new Uint8Array(N * Lc);
  for (let i = 0; i < N; i++)
    for (let t = 0; t < Lc; t++) {
      const k = i * Lc + t;
      r[t * N + i] = mask[k] ? rewards[k] : 0;
      v[t * N + i] = mask[k] ? x.values[k] : 0;
      next[t * N + i] = t + 1 < x.lengths[i] ? x.values[k + 1] : 0;
      terminated[t * N + i] = t + 1 >= x.lengths[i] ? 1 : 0;
    }
  const gae = vtrace({
    steps: Lc,
    envs: N,
    rewards: r,
    values: v,
    nextValues: next,
    terminated,
    truncated: new Uint8Array(N * Lc),
    gamma: x.cfg.gamma,
    lambda: x.cfg.lam,
  });
  const raw = new Float64Array(N * Lc);
  const returns = new Float64Array(N * Lc);
  for (let i = 0; i < N; i++)
    for (let t = 0; t < x.lengths[i]; t++) {
      raw[i * Lc + t] = gae.advantages[t * N + i];
      returns[i * Lc + t] = gae.returns[t * N + i];
    }
  return { mask, kl, nonScore, rewards, rawAdvantages: raw, advantages: maskedWhiten(raw, mask, true), returns };
}

/** The per-token loss and its named sums, traced on a micro-batch (see the file comment). */
function ppoSeqLoss(model: CausalLm, b: Record<string, Value>, cfg: PpoSeqConfig) {
  const { logProbs, logits, value } = tokenLogProbs(model, b);
  if (!value) throw new Error('ppo_seq: the model has no value head');
  const mask = cast(b.loss_mask, logProbs.dtype);
  // Masked first, so padding carries a zero log ratio (never exp of a large number times a zero weight).
  const diff = sub(mul(logProbs, mask), b.old_log_probs);
  const ratio = exp(diff);
  const negAdv = neg(b.advantages);
  const pg1 = mul(negAdv, ratio);
  const pg2 = mul(negAdv, clip(ratio, 1 - cfg.cliprange, 1 + cfg.cliprange));
  const v = mul(value, mask);
  // clamp(v, V - c, V + c) = V + clamp(v - V, -c, c), with scalar bounds.
  const vClipped = add(b.old_values, clip(sub(v, b.old_values), -cfg.cliprange_value, cfg.cliprange_value));
  const vf1 = square(sub(v, b.returns));
  const vf2 = square(sub(vClipped, b.returns));
  const w = mul(unsqueeze(b.row_weight, [-1]), mask);
  const policyLoss = reduceSum(mul(maximum(pg1, pg2), w));
  const valueLoss = mul(reduceSum(mul(maximum(vf1, vf2), w)), 0.5);
  const sums: Record<string, Value> = {
    policy_loss: policyLoss,
    value_loss: valueLoss,
    clip_sum: reduceSum(mul(cast(greater(pg2, pg1), 'float32'), mask)),
    vf_clip_sum: reduceSum(mul(cast(greater(vf2, vf1), 'float32'), mask)),
    approx_kl_sum: reduceSum(mul(mul(square(diff), 0.5), mask)),
    ratio_sum: reduceSum(mul(ratio, mask)),
    entropy_sum: reduceSum(mul(categoricalEntropy(logits), mask)),
  };
  return { loss: add(policyLoss, mul(valueLoss, cfg.vf_coef)), sums };
}

const meanOf = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : 0;
};

/** A seeded permutation of the rows (Fisher-Yates). */
function shuffled(rows: number, rng: Rng): number[] {
  const order = Array.from({ length: rows }, (_, i) => i);
  for (let i = rows - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

async function update(
  r: SequenceRollout,
  ctx: SequenceUpdateContext<PpoSeqConfig, Record<string, never>>,
): Promise<Record<string, number>> {
  const cfg = ctx.cfg;
  const rows = sequenceRows(r);
  const Lc = r.completionLength;
  // 1. Scores: the verifier's components weighted, less the penalty for a completion that never ended.
  const reward = new Float64Array(rows);
  for (const [c, w] of Object.entries(cfg.reward_weights)) {
    const comp = r.rewards[c];
    if (!comp && w === 0) continue;
    if (!comp)
      throw new ConfigError(`algo.reward_weights.${c}`, `is not a reward component of this env (it has: ${ctx.components.join(', ')})`);
    for (let i = 0; i < rows; i++) reward[i] += w * comp[i];
  }
  const turnScores = Float64Array.from(reward, (v, i) => v - (r.truncated[i] ? cfg.missing_eos_penalty : 0));
  // Multi-turn: each turn is scored by what the conversation earned from it on.
  const scores = r.episodeIds ? turnReturnsToGo(turnScores, r.episodeIds, cfg.turn_gamma) : turnScores;
  // 2. Values and reference log-probs of every completion token, before any step on this rollout.
  const lengths = completionLengths(r);
  const values = new Float32Array(rows * Lc);
  const ref = cfg.kl_coef > 0 ? new Float32Array(rows * Lc) : null;
  for (let at = 0; at < rows; at += cfg.micro_batch_size) {
    const idx = Array.from({ length: Math.min(cfg.micro_batch_size, rows - at) }, (_, k) => at + k);
    const lm = rolloutLmBatch(r, idx, ctx.padId);
    lm.take(await ctx.values(lm.feeds), values);
    if (ref) lm.take(await ctx.referenceLogProbs(lm.feeds), ref);
  }
  // 3. Per-token rewards -> GAE -> whitened advantages and returns.
  const t = ppoTargets({ scores, lengths, logProbs: r.logProbs, refLogProbs: ref, values, completionLength: Lc, cfg });
  // 4. Epochs of shuffled minibatches, one AdamW step each; the shuffle is seeded by the update alone so a resumed run replays it.
  // Minibatch m is rows [edge(m), edge(m + 1)) of the shuffle: batch_size / num_mini_batches rows each
  // for single-turn rollouts, as even a split as the turn count allows for multi-turn ones.
  const edge = (m: number) => Math.floor((m * rows) / cfg.num_mini_batches);
  const rng = new Rng(0x5eed_0000 + ctx.update);
  const sums: Record<string, number> = {};
  let tokens = 0;
  let gradNorm = 0;
  let lr = 0;
  let steps = 0;
  const totalSteps = ctx.totalUpdates * cfg.num_ppo_epochs * cfg.num_mini_batches;
  for (let epoch = 0; epoch < cfg.num_ppo_epochs; epoch++) {
    const order = shuffled(rows, rng);
    for (let m = 0; m < cfg.num_mini_batches; m++) {
      const batchRows = order.slice(edge(m), edge(m + 1));
      if (batchRows.length === 0) continue;
      let miniTokens = 0;
      for (const i of batchRows) miniTokens += lengths[i];
      const micro: Record<string, HostTensor>[] = [];
      for (let at = 0; at < batchRows.length; at += cfg.micro_batch_size) {
        const idx = batchRows.slice(at, at + cfg.micro_batch_size);
        const lm = rolloutLmBatch(r, idx, ctx.padId);
        const shape = lm.feeds.input_ids.shape;
        micro.push({
          ...lm.feeds,
          old_log_probs: { data: lm.place(r.logProbs), shape },
          old_values: { data: lm.place(values), shape },
          advantages: { data: lm.place(t.advantages), shape },
          returns: { data: lm.place(t.returns), shape },
          row_weight: { data: new Float32Array(idx.length).fill(1 / Math.max(1, miniTokens)), shape: [idx.length] },
        });
      }
      lr = sequenceLr(cfg, ctx.optimizerSteps + steps, totalSteps);
      const g = await ctx.gradient(micro);
      for (const [k, v] of Object.entries(g.sums)) sums[k] = (sums[k] ?? 0) + v;
      gradNorm += await ctx.apply(g.grad, lr);
      tokens += miniTokens;
      steps++;
    }
  }
  const perToken = (k: string) => (sums[k] ?? 0) / Math.max(1, tokens);
  const rowSum = (x: Float64Array) => {
    let s = 0;
    for (const v of x) s += v;
    return s / rows;
  };
  let valueSum = 0;
  let returnSum = 0;
  for (let k = 0; k < rows * Lc; k++) {
    if (!t.mask[k]) continue;
    valueSum += values[k];
    returnSum += t.returns[k];
  }
  const allTokens = Math.max(1, meanOf(lengths) * rows);
  const nonScore = rowSum(t.nonScore);
  const metrics: Record<string, number> = {
    loss: sums.loss / steps,
    policy_loss: sums.policy_loss / steps,
    value_loss: sums.value_loss / steps,
    clipfrac: perToken('clip_sum'),
    vf_clipfrac: perToken('vf_clip_sum'),
    approx_kl: perToken('approx_kl_sum'),
    ratio_mean: perToken('ratio_sum'),
    entropy: perToken('entropy_sum'),
    kl: rowSum(t.kl),
    non_score_reward: nonScore,
    rlhf_reward: meanOf(scores) + nonScore,
    score_mean: meanOf(scores),
    reward_mean: meanOf(reward),
    value_mean: valueSum / allTokens,
    return_mean_tokens: returnSum / allTokens,
    completion_length_mean: meanOf(lengths),
    eos_frac: 1 - meanOf(r.truncated),
    refused_frac: meanOf(r.refused),
    grad_norm: gradNorm / steps,
    lr,
  };
  for (const c of Object.keys(r.rewards)) metrics[`reward_${c}`] = meanOf(r.rewards[c]);
  return metrics;
}

export const ppoSeq: SequenceAlgorithmSpec<typeof CONFIG, Record<string, never>> = {
  name: 'ppo_seq',
  description: "PPO on token sequences (Hugging Face TRL's PPOTrainer: value head, per-token KL penalty, token-level GAE, clipped losses)",
  rollout: 'sequence',
  config: CONFIG,
  progressMetrics: ['reward_mean', 'kl', 'value_loss'],
  rewardWeights: (cfg) => cfg.reward_weights,
  initialState: () => ({}),
  valueHead: true,
  check(cfg) {
    if (cfg.batch_size % cfg.num_mini_batches !== 0)
      throw new ConfigError('algo.num_mini_batches', `must divide batch_size (${cfg.batch_size}), got ${cfg.num_mini_batches}`);
    const mini = cfg.batch_size / cfg.num_mini_batches;
    if (mini % cfg.micro_batch_size !== 0)
      throw new ConfigError(
        'algo.micro_batch_size',
        `must divide a minibatch (batch_size / num_mini_batches = ${cfg.batch_size} / ${cfg.num_mini_batches} = ${mini} rows), got ${cfg.micro_batch_size}`,
      );
  },
  sampling: (cfg) => ({
    numGenerations: 1,
    promptsPerUpdate: cfg.batch_size,
    maxCompletionLength: cfg.response_length,
    temperature: cfg.temperature,
    topK: cfg.top_k,
    topP: cfg.top_p,
  }),
  adamw: adamwOf,
  usesReference: (cfg) => cfg.kl_coef > 0,
  inputs: () => [
    ...['loss_mask', 'old_log_probs', 'old_values', 'advantages', 'returns'].map(
      (name) => ({ name, dtype: 'float32', shape: ['batch', 'sequence'] }) as const,
    ),
    { name: 'row_weight', dtype: 'float32', shape: ['batch'] },
  ],
  loss: ppoSeqLoss,
  update,
};
