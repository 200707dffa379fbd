/**
 * REINFORCE with a baseline, as WMIL phase 1 trains its first policy (simpler to debug than PPO; vector rewards).
 *
 *   reward_i  = sum_c w_c * R_c,i  +  w_pred * pred_i          (vector reward scalarised here)
 *   R_c,i     = discounted return of component c to the episode's end (no bootstrap)
 *   pred_i    = -mean_s (wm(h_i, a_i) - s'_i)^2                (intrinsic: world-model accuracy)
 *   baseline  = ema: d * b + (1 - d) * mean(reward)  (updated before the advantages, as the source)
 *               value: V(s_i), trained by value_coef * MSE(V, reward)
 *   A_i       = reward_i - baseline_i  (no gradient)
 *   loss      = -mean(rho_i log pi(a_i|s_i) A_i) - entropy_coef * H[pi] + world_model_coef * MSE(wm, s') (+ value)
 *   rho_i     = with off_policy_correction, min(1, pi(a_i|s_i) / mu(a_i|s_i)) where mu is the behaviour
 *               policy that acted (an older version in the mesh): V-trace's truncated importance
 *               weight, so stale rollouts can only count for less, never for more.
 * Adam with global grad-norm clipping. Every term is a named metric of the train step. The world-model
 * terms need a model with a world-model head (BabyModel); other models train without them.
 */
import { ConfigError, type Schema } from '@rlmesh/core';
import { add, buildTrainProgram, exp, minimum, mul, neg, reduceMean, square, stopGradient, sub, type Value } from '@rlmesh/graph';
import type { AlgorithmSpec, Check, Feed } from '../registry';
import { discountedReturns } from './advantages';
import { actionInput, actionsFeed, policyTerms } from './policy-terms';

const CONFIG = {
  lr: { kind: 'number', default: 1e-3, min: 0, exclusiveMin: true },
  baseline: { kind: 'string', default: 'ema', oneOf: ['ema', 'value'] },
  baseline_decay: { kind: 'number', default: 0.99, min: 0, max: 1 },
  entropy_coef: { kind: 'number', default: 0.01, min: 0 },
  world_model_coef: { kind: 'number', default: 1.0, min: 0, doc: 'needs a model with a world-model head' },
  value_coef: { kind: 'number', default: 0.5, min: 0 },
  max_grad_norm: { kind: 'number', default: 1.0, min: 0, exclusiveMin: true },
  gamma: { kind: 'number', default: 1.0, min: 0, max: 1 },
  reward_weights: { kind: 'numberRecord', default: { goal: 1.0, pred: 0.0 } },
  off_policy_correction: { kind: 'bool', default: true, doc: 'truncated importance weights for rollouts of older versions' },
} as const satisfies Schema;

interface State {
  baseline: number;
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export const reinforce: AlgorithmSpec<typeof CONFIG, State> = {
  name: 'reinforce',
  description: 'REINFORCE with an EMA or value baseline, entropy bonus and world-model loss (WMIL phase 1)',
  config: CONFIG,
  check(cfg) {
    if (!Object.values(cfg.reward_weights).some((w) => w !== 0))
      throw new ConfigError('algo.reward_weights', 'at least one component needs a non-zero weight');
  },
  progressMetrics: ['entropy', 'loss/world_model'],
  rewardWeights: (cfg) => cfg.reward_weights,
  initialState: () => ({ baseline: 0 }),

  program(model, cfg, components) {
    const S = model.obsDim;
    const worldModel = model.predictNext && cfg.world_model_coef > 0 ? model.predictNext.bind(model) : null;
    if (!worldModel && (cfg.reward_weights.pred ?? 0) !== 0)
      throw new ConfigError('algo.reward_weights.pred', `needs a model with a world-model head; ${model.name} has none`);
    const correct = cfg.off_policy_correction;
    return buildTrainProgram({
      module: model.module,
      name: 'reinforce_step',
      batch: [
        ...(correct ? [{ name: 'behaviour_log_prob', dtype: 'float32' as const, shape: ['batch'] }] : []),
        { name: 'obs', dtype: 'float32', shape: ['batch', S] },
        actionInput(model.distribution),
        { name: 'next_obs', dtype: 'float32', shape: ['batch', S] },
        ...components.map((c) => ({ name: `return.${c}`, dtype: 'float32' as const, shape: ['batch'] })),
        { name: 'baseline', dtype: 'float32', shape: [] },
      ],
      optimizer: { kind: 'adam', maxGradNorm: cfg.max_grad_norm },
      loss: (b) => {
        const f = model.forward(b.obs);
        const metrics: Record<string, Value> = {};
        let reward: Value | null = null;
        for (const c of components) {
          const r = b[`return.${c}`];
          metrics[`reward/${c}`] = reduceMean(r);
          const w = cfg.reward_weights[c] ?? 0;
          if (w !== 0) reward = reward ? add(reward, mul(r, w)) : mul(r, w);
        }
        let worldModelLoss: Value | null = null;
        if (worldModel && f.hidden) {
          const wmErrorPerSample = reduceMean(square(sub(worldModel(f.hidden, b.actions), b.next_obs)), [-1]);
          worldModelLoss = reduceMean(wmErrorPerSample);
          const predReward = stopGradient(neg(wmErrorPerSample));
          metrics['reward/pred'] = reduceMean(predReward);
          const wPred = cfg.reward_weights.pred ?? 0;
          if (wPred !== 0) reward = reward ? add(reward, mul(predReward, wPred)) : mul(predReward, wPred);
        }
        if (!reward) throw new ConfigError('algo.reward_weights', `no weighted component among ${components.join(', ')}`);
        metrics['reward/total'] = reduceMean(reward);

        const { logProb, entropy: entropyRows } = policyTerms(model.distribution, f, b.actions);
        const entropy = reduceMean(entropyRows);
        let baseline: Value;
        if (cfg.baseline === 'ema') {
          baseline = add(mul(b.baseline, cfg.baseline_decay), mul(metrics['reward/total'], 1 - cfg.baseline_decay));
          metrics.baseline = baseline;
        } else {
          baseline = stopGradient(f.value);
          metrics.baseline = reduceMean(baseline);
        }
        let weighted = stopGradient(sub(reward, baseline));
        if (correct) {
          const rho = stopGradient(minimum(exp(sub(logProb, b.behaviour_log_prob)), 1));
          metrics.importance_weight = reduceMean(rho);
          weighted = mul(weighted, rho);
        }
        const policyLoss = neg(reduceMean(mul(logProb, weighted)));
        let loss = sub(policyLoss, mul(entropy, cfg.entropy_coef));
        if (worldModelLoss) {
          loss = add(loss, mul(worldModelLoss, cfg.world_model_coef));
          metrics['loss/world_model'] = worldModelLoss;
        }
        if (cfg.baseline === 'value') {
          const valueLoss = reduceMean(square(sub(f.value, reward)));
          metrics['loss/value'] = valueLoss;
          loss = add(loss, mul(valueLoss, cfg.value_coef));
        }
        Object.assign(metrics, { 'loss/policy': policyLoss, entropy });
        return { loss, metrics };
      },
    });
  },

  async update(r, ctx) {
    const { cfg, state } = ctx;
    const B = r.numSteps * r.numEnvs;
    const done = r.terminated.map((t, i) => t | r.truncated[i]);
    const feed: Feed = {
      obs: { data: r.obs, shape: [B, r.obsDim] },
      actions: actionsFeed(ctx.distribution, r.actions, B),
      next_obs: { data: r.nextObs, shape: [B, r.obsDim] },
      baseline: { data: Float32Array.of(state.baseline), shape: [] },
    };
    if (cfg.off_policy_correction) feed.behaviour_log_prob = { data: r.logProbs, shape: [B] };
    for (const c of ctx.components) {
      feed[`return.${c}`] = { data: discountedReturns(r.rewards[c], done, r.numSteps, r.numEnvs, cfg.gamma), shape: [B] };
    }
    const metrics = await ctx.step(feed, cfg.lr);
    if (cfg.baseline === 'ema') state.baseline = metrics.baseline;
    return metrics;
  },

  /** WMIL phase 1's MVP criteria: success above random and above 50%, entropy and world-model loss going down. */
  criteria(rows, { numActions }): Check[] {
    const k = Math.max(1, Math.floor(rows.length / 10));
    const ends = (f: (r: (typeof rows)[number]) => number | undefined) => {
      const xs = rows.map(f);
      return { start: mean(xs.slice(0, k).map(Number)), end: mean(xs.slice(-k).map(Number)) };
    };
    const s = ends((r) => r.success);
    const e = ends((r) => r.metrics.entropy);
    const random = 1 / numActions;
    const checks: Check[] = [
      { name: 'success > random', ...s, target: `> ${(100 * random).toFixed(1)}%`, pass: s.end > random },
      { name: 'success > 50%', ...s, target: '> 50%', pass: s.end > 0.5 },
      { name: 'entropy down', ...e, target: 'end < start', pass: e.end < e.start },
    ];
    if (rows.some((r) => r.metrics['loss/world_model'] !== undefined)) {
      const w = ends((r) => r.metrics['loss/world_model']);
      checks.push({ name: 'world-model loss down', ...w, target: 'end < start', pass: w.end < w.start });
    }
    return checks;
  },
};
