/**
 * REINFORCE with a baseline, WMIL phase 1 (seed 001, fix #3: REINFORCE before PPO).
 *
 *   reward_i  = sum_c w_c * R_c,i  +  w_pred * pred_i          (vector reward scalarised here, fix #4)
 *   pred_i    = -mean_s (wm(h_i, a_i) - s'_i)^2                (intrinsic: world-model accuracy)
 *   baseline  = ema: d * b + (1 - d) * mean(reward)  (updated before the advantages, as the source)
 *               value: V(s_i), trained by value_coef * MSE(V, reward)
 *   A_i       = reward_i - baseline_i  (no gradient)
 *   loss      = -mean(rho_i log pi(a_i|s_i) A_i) - entropy_coef * H[pi] + world_model_coef * MSE(wm, s') (+ value)
 *   rho_i     = 1 on-policy (embedded); with offPolicyCorrection, min(1, pi(a_i|s_i) / mu(a_i|s_i)) where mu
 *               is the behaviour policy that acted (an older version in the mesh): V-trace's truncated
 *               importance weight, so stale chunks can only count for less, never for more.
 * Adam with global grad-norm clipping at 1.0. Every term is a named metric of the train step.
 */
import {
  add,
  buildTrainProgram,
  categoricalEntropy,
  categoricalLogProb,
  exp,
  type InputSpec,
  minimum,
  mul,
  neg,
  reduceMean,
  square,
  stopGradient,
  sub,
  type TrainProgram,
  type Value,
} from '@rlmesh/graph';
import type { BabyModel } from '../models/baby';

export interface ReinforceConfig {
  /** 'ema': running mean of the batch reward; 'value': the value head V(s). */
  baseline: 'ema' | 'value';
  baselineDecay: number;
  entropyCoef: number;
  worldModelCoef: number;
  valueCoef: number;
  maxGradNorm: number;
  /** Weights of the reward components; `pred` is the world-model intrinsic reward. */
  rewardWeights: Record<string, number>;
  /** Adds the `behaviour_log_prob` batch input and weights the policy gradient by truncated importance ratios. */
  offPolicyCorrection?: boolean;
}

export const REINFORCE_DEFAULTS: ReinforceConfig = {
  baseline: 'ema',
  baselineDecay: 0.99,
  entropyCoef: 0.01,
  worldModelCoef: 1.0,
  valueCoef: 0.5,
  maxGradNorm: 1.0,
  rewardWeights: { goal: 1.0, pred: 0.0 },
};

/** Batch inputs of the train step, for a state of `stateDim` and env reward components. */
export function reinforceBatchSpec(stateDim: number, envComponents: readonly string[], offPolicy = false): InputSpec[] {
  const behaviour: InputSpec[] = offPolicy ? [{ name: 'behaviour_log_prob', dtype: 'float32', shape: ['batch'] }] : [];
  return [
    ...behaviour,
    { name: 'obs', dtype: 'float32', shape: ['batch', stateDim] },
    { name: 'actions', dtype: 'int64', shape: ['batch'] },
    { name: 'next_obs', dtype: 'float32', shape: ['batch', stateDim] },
    ...envComponents.map((c) => ({ name: `return.${c}`, dtype: 'float32' as const, shape: ['batch'] })),
    { name: 'baseline', dtype: 'float32', shape: [] },
  ];
}

export function buildReinforceProgram(model: BabyModel, cfg: ReinforceConfig, envComponents: readonly string[]): TrainProgram {
  return buildTrainProgram({
    module: model,
    name: 'reinforce_step',
    batch: reinforceBatchSpec(model.config.stateDim, envComponents, cfg.offPolicyCorrection),
    optimizer: { kind: 'adam', maxGradNorm: cfg.maxGradNorm },
    loss: (b) => {
      const { logits, value, hidden } = model.forward(b.obs);
      const predicted = model.predictNext(hidden, b.actions);
      const wmErrorPerSample = reduceMean(square(sub(predicted, b.next_obs)), [-1]);
      const worldModelLoss = reduceMean(wmErrorPerSample);
      const predReward = stopGradient(neg(wmErrorPerSample));

      const metrics: Record<string, Value> = {};
      let reward: Value | null = null;
      for (const c of envComponents) {
        const r = b[`return.${c}`];
        metrics[`reward/${c}`] = reduceMean(r);
        const w = cfg.rewardWeights[c] ?? 0;
        if (w !== 0) reward = reward ? add(reward, mul(r, w)) : mul(r, w);
      }
      metrics['reward/pred'] = reduceMean(predReward);
      const wPred = cfg.rewardWeights.pred ?? 0;
      if (wPred !== 0) reward = reward ? add(reward, mul(predReward, wPred)) : mul(predReward, wPred);
      if (!reward) throw new Error('reward_weights: at least one component needs a non-zero weight');
      metrics['reward/total'] = reduceMean(reward);

      const logp = categoricalLogProb(logits, b.actions);
      const entropy = reduceMean(categoricalEntropy(logits));
      let baseline: Value;
      let loss: Value;
      if (cfg.baseline === 'ema') {
        baseline = add(mul(b.baseline, cfg.baselineDecay), mul(metrics['reward/total'], 1 - cfg.baselineDecay));
        metrics.baseline = baseline;
      } else {
        baseline = stopGradient(value);
        metrics.baseline = reduceMean(baseline);
      }
      const advantage = stopGradient(sub(reward, baseline));
      let weightedAdvantage = advantage;
      if (cfg.offPolicyCorrection) {
        const rho = stopGradient(minimum(exp(sub(logp, b.behaviour_log_prob)), 1));
        metrics.importance_weight = reduceMean(rho);
        weightedAdvantage = mul(advantage, rho);
      }
      const policyLoss = neg(reduceMean(mul(logp, weightedAdvantage)));
      loss = add(sub(policyLoss, mul(entropy, cfg.entropyCoef)), mul(worldModelLoss, cfg.worldModelCoef));
      if (cfg.baseline === 'value') {
        const valueLoss = reduceMean(square(sub(value, reward)));
        metrics['loss/value'] = valueLoss;
        loss = add(loss, mul(valueLoss, cfg.valueCoef));
      }
      Object.assign(metrics, { 'loss/policy': policyLoss, 'loss/world_model': worldModelLoss, entropy });
      return { loss, metrics };
    },
  });
}
