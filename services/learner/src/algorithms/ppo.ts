/**
 * PPO with GAE, as CleanRL's ppo.py and ppo_continuous_action.py (Huang et al., "The 37
 * Implementation Details of PPO"): for each rollout,
 *   advantages, returns = GAE(gamma, lambda)  (V-trace(lambda) with truncated ratios for stale rollouts)
 *   repeat update_epochs: shuffle, split into num_minibatches, one Adam step each, on
 *     ratio     = exp(log pi(a|s) - log mu(a|s))
 *     A         = (A - mean A) / (std A + 1e-8)        per minibatch (norm_adv), in the feed
 *     pg_loss   = mean(max(-A ratio, -A clip(ratio, 1 - clip_coef, 1 + clip_coef)))
 *     v_loss    = 1/2 mean(max((V - R)^2, (V_old + clip(V - V_old, +-clip_coef) - R)^2))   (clip_vloss)
 *     loss      = pg_loss - ent_coef * entropy + vf_coef * v_loss
 *   and stop the epochs early once approx_kl = mean((ratio - 1) - log ratio) exceeds target_kl.
 * The learning rate anneals linearly to 0 over the run; Adam eps 1e-5; global grad-norm clip.
 * Unlike CleanRL, a time-limit truncation bootstraps from the value of the final observation.
 */
import type { Schema } from '@rlmesh/core';
import { logProbOf } from '@rlmesh/core';
import { abs, add, buildTrainProgram, cast, clip, exp, greater, maximum, mul, neg, reduceMean, square, sub } from '@rlmesh/graph';
import type { AlgorithmSpec, Feed } from '../registry';
import { valuesOfRollout, vtrace } from './advantages';
import { actionInput, actionsFeed, policyTerms } from './policy-terms';

const CONFIG = {
  lr: { kind: 'number', default: 2.5e-4, min: 0, exclusiveMin: true },
  anneal_lr: { kind: 'bool', default: true },
  gamma: { kind: 'number', default: 0.99, min: 0, max: 1 },
  gae_lambda: { kind: 'number', default: 0.95, min: 0, max: 1 },
  num_minibatches: { kind: 'int', default: 4, min: 1 },
  update_epochs: { kind: 'int', default: 4, min: 1 },
  norm_adv: { kind: 'bool', default: true },
  clip_coef: { kind: 'number', default: 0.2, min: 0, exclusiveMin: true },
  clip_vloss: { kind: 'bool', default: true },
  ent_coef: { kind: 'number', default: 0.01, min: 0 },
  vf_coef: { kind: 'number', default: 0.5, min: 0 },
  max_grad_norm: { kind: 'number', default: 0.5, min: 0, exclusiveMin: true },
  target_kl: { kind: 'number', default: 0, min: 0, doc: '0: no early stop' },
  adam_eps: { kind: 'number', default: 1e-5, min: 0, exclusiveMin: true },
  rho_bar: { kind: 'number', default: 1, min: 0, exclusiveMin: true, doc: 'V-trace truncation of the TD ratios (stale rollouts)' },
  c_bar: { kind: 'number', default: 1, min: 0, exclusiveMin: true, doc: 'V-trace truncation of the trace ratios (stale rollouts)' },
  reward_weights: { kind: 'numberRecord', default: { goal: 1.0 } },
} as const satisfies Schema;

const mean = (x: Float32Array) => x.reduce((a, b) => a + b, 0) / Math.max(1, x.length);
function variance(x: Float32Array): number {
  const m = mean(x);
  return x.reduce((a, b) => a + (b - m) * (b - m), 0) / Math.max(1, x.length);
}

/** (x - mean x) / (std x + 1e-8) in place, with torch's unbiased std (divide by n - 1), as CleanRL's norm_adv. */
function normalised(x: Float32Array): Float32Array {
  const m = mean(x);
  let ss = 0;
  for (let k = 0; k < x.length; k++) ss += (x[k] - m) * (x[k] - m);
  const scale = 1 / (Math.sqrt(ss / (x.length - 1)) + 1e-8);
  for (let k = 0; k < x.length; k++) x[k] = (x[k] - m) * scale;
  return x;
}

/** Rows `idx` of a [rows, width] array (element loops: a subarray per row costs more than the copy). */
function gather<T extends Float32Array | Int32Array>(src: T, idx: Int32Array, width: number): T {
  const out = new (src.constructor as new (n: number) => T)(idx.length * width);
  if (width === 1) for (let k = 0; k < idx.length; k++) out[k] = src[idx[k]];
  else
    for (let k = 0; k < idx.length; k++) {
      const from = idx[k] * width;
      for (let j = 0; j < width; j++) out[k * width + j] = src[from + j];
    }
  return out;
}

export const ppo: AlgorithmSpec<typeof CONFIG, Record<string, never>> = {
  name: 'ppo',
  description: "PPO with GAE and CleanRL's details (clipped surrogate and value loss, per-minibatch advantage normalisation)",
  config: CONFIG,
  progressMetrics: ['entropy', 'approx_kl'],
  rewardWeights: (cfg) => cfg.reward_weights,
  initialState: () => ({}),

  program(model, cfg) {
    const S = model.obsDim;
    const eps = cfg.clip_coef;
    return buildTrainProgram({
      module: model.module,
      name: 'ppo_step',
      batch: [
        { name: 'obs', dtype: 'float32', shape: ['batch', S] },
        actionInput(model.distribution),
        { name: 'old_log_prob', dtype: 'float32', shape: ['batch'] },
        { name: 'advantages', dtype: 'float32', shape: ['batch'] },
        { name: 'returns', dtype: 'float32', shape: ['batch'] },
        { name: 'old_values', dtype: 'float32', shape: ['batch'] },
      ],
      optimizer: { kind: 'adam', eps: cfg.adam_eps, maxGradNorm: cfg.max_grad_norm },
      loss: (b) => {
        const f = model.forward(b.obs);
        const { logProb, entropy: entropyRows } = policyTerms(model.distribution, f, b.actions);
        const logRatio = sub(logProb, b.old_log_prob);
        const ratio = exp(logRatio);
        // Normalised per minibatch in the feed when norm_adv: no gradient flows through it, and a dozen
        // small nodes fewer in a step that runs 16 times per rollout.
        const adv = b.advantages;
        const pgLoss = reduceMean(maximum(mul(neg(adv), ratio), mul(neg(adv), clip(ratio, 1 - eps, 1 + eps))));
        const unclipped = square(sub(f.value, b.returns));
        const vLoss = cfg.clip_vloss
          ? mul(reduceMean(maximum(unclipped, square(sub(add(b.old_values, clip(sub(f.value, b.old_values), -eps, eps)), b.returns)))), 0.5)
          : mul(reduceMean(unclipped), 0.5);
        const entropy = reduceMean(entropyRows);
        const loss = add(sub(pgLoss, mul(entropy, cfg.ent_coef)), mul(vLoss, cfg.vf_coef));
        return {
          loss,
          metrics: {
            'loss/policy': pgLoss,
            'loss/value': vLoss,
            entropy,
            approx_kl: reduceMean(sub(sub(ratio, 1), logRatio)),
            old_approx_kl: reduceMean(neg(logRatio)),
            clipfrac: reduceMean(cast(greater(abs(sub(ratio, 1)), eps), 'float32')),
          },
        };
      },
    });
  },

  async update(r, ctx) {
    const { cfg } = ctx;
    const T = r.numSteps;
    const N = r.numEnvs;
    const B = T * N;
    const W = r.actionWidth;
    const weights = cfg.reward_weights;
    const rewards = new Float32Array(B);
    for (const [c, w] of Object.entries(weights)) {
      const rc = r.rewards[c];
      if (rc) for (let k = 0; k < B; k++) rewards[k] += w * rc[k];
    }
    // Values with the current parameters: the behaviour policy's at lag 0; what V-trace needs otherwise
    // (with the log-probs of the current policy, hence every head when the rollout is stale).
    const { heads, values, nextValues } = await valuesOfRollout(
      r,
      ctx.lag > 0 ? ctx.evaluate : async (obs, rows) => ({ value: await ctx.values(obs, rows) }),
    );
    let ratios: Float32Array | undefined;
    if (ctx.lag > 0) {
      // Stale rollout: V-trace with truncated ratios pi / mu.
      ratios = new Float32Array(B);
      for (let k = 0; k < B; k++) ratios[k] = Math.exp(logProbOf(ctx.distribution, heads, k, r.actions, k) - r.logProbs[k]);
    }
    const { advantages, returns } = vtrace({
      steps: T,
      envs: N,
      rewards,
      values,
      nextValues,
      terminated: r.terminated,
      truncated: r.truncated,
      gamma: cfg.gamma,
      lambda: cfg.gae_lambda,
      ratios,
      rhoBar: cfg.rho_bar,
      cBar: cfg.c_bar,
    });
    const lr = cfg.anneal_lr ? (1 - ctx.update / ctx.totalUpdates) * cfg.lr : cfg.lr;
    const mbSize = Math.floor(B / cfg.num_minibatches);
    const sums: Record<string, number> = {};
    let steps = 0;
    let last: Record<string, number> = {};
    const order = Int32Array.from({ length: B }, (_, k) => k);
    for (let epoch = 0; epoch < cfg.update_epochs; epoch++) {
      ctx.rng.shuffle(order as unknown as number[]);
      for (let start = 0; start + mbSize <= B; start += mbSize) {
        const idx = order.subarray(start, start + mbSize);
        const feed: Feed = {
          obs: { data: gather(r.obs, idx, r.obsDim), shape: [mbSize, r.obsDim] },
          actions: actionsFeed(ctx.distribution, gather(r.actions, idx, W), mbSize),
          old_log_prob: { data: gather(r.logProbs, idx, 1), shape: [mbSize] },
          advantages: { data: cfg.norm_adv ? normalised(gather(advantages, idx, 1)) : gather(advantages, idx, 1), shape: [mbSize] },
          returns: { data: gather(returns, idx, 1), shape: [mbSize] },
          old_values: { data: gather(values, idx, 1), shape: [mbSize] },
        };
        last = await ctx.step(feed, lr);
        for (const [k, v] of Object.entries(last)) sums[k] = (sums[k] ?? 0) + v;
        steps++;
      }
      if (cfg.target_kl > 0 && last.approx_kl > cfg.target_kl) break;
    }
    // Mean over minibatches, except the KL figures, which CleanRL logs from the last minibatch.
    const metrics: Record<string, number> = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / steps]));
    metrics.approx_kl = last.approx_kl;
    metrics.old_approx_kl = last.old_approx_kl;
    const residual = returns.map((y, k) => y - values[k]);
    const varY = variance(returns);
    metrics.explained_variance = varY === 0 ? Number.NaN : 1 - variance(residual) / varY;
    metrics.learning_rate = lr;
    metrics.minibatch_steps = steps;
    return metrics;
  },
};
