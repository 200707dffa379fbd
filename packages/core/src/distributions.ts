/**
 * Action distributions, as the policy programs describe them and every inference path samples them
 * (the embedded loop, actors running their policy locally, the policy service). A policy program
 * outputs `value` [B] and, by kind:
 *   categorical        `log_probs` [B, n]            (normalised log-probabilities)
 *   multi_categorical  `log_probs` [B, sum(nvec)]    (one normalised segment per component)
 *   gaussian           `mean` [B, D], `log_std` [B, D] (diagonal; the env clips to its bounds)
 * Sampling happens here, in JS with a seeded Rng, so one seed gives the same actions whatever ORT
 * build ran the forward pass and however requests were batched.
 */
import { Rng } from './rng';
import type { Space } from './spaces';

export type ActionDistribution =
  | { kind: 'categorical'; n: number }
  | { kind: 'multi_categorical'; nvec: number[] }
  | { kind: 'gaussian'; dim: number };

/** The output names a policy program must have for `d`, besides `value`. */
export function distributionOutputs(d: ActionDistribution): string[] {
  return d.kind === 'gaussian' ? ['mean', 'log_std'] : ['log_probs'];
}

/** The distribution a policy over `space` uses. */
export function distributionFor(space: Space): ActionDistribution {
  switch (space.kind) {
    case 'discrete':
      return { kind: 'categorical', n: space.n };
    case 'multi_discrete':
      return { kind: 'multi_categorical', nvec: [...space.nvec] };
    case 'box':
      return { kind: 'gaussian', dim: space.size };
    default:
      throw new Error(`no action distribution for a ${space.kind} action space (text policies generate tokens instead)`);
  }
}

/** Values per action row: 1 (categorical), k (multi-categorical) or D (gaussian). */
export function actionWidth(d: ActionDistribution): number {
  return d.kind === 'categorical' ? 1 : d.kind === 'multi_categorical' ? d.nvec.length : d.dim;
}

export interface SampledActions {
  /** [rows, width]: int32 for categorical kinds, float32 for gaussian. */
  actions: Int32Array | Float32Array;
  /** log pi(a|s) of each row's action. */
  logProbs: Float32Array;
}

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

function pickCategorical(lp: Float32Array, base: number, n: number, greedy: boolean, rng: Rng, probs: Float64Array): number {
  let a = 0;
  if (greedy) {
    for (let i = 1; i < n; i++) if (lp[base + i] > lp[base + a]) a = i;
    return a;
  }
  for (let i = 0; i < n; i++) probs[i] = Math.exp(lp[base + i]);
  return rng.categorical(probs.subarray(0, n));
}

/**
 * Chooses actions for rows [start, start + rows) of a batch's distribution outputs: the mode when
 * `greedy`, else a sample drawn with `rng`.
 */
export function sampleActions(
  d: ActionDistribution,
  outputs: Readonly<Record<string, Float32Array>>,
  start: number,
  rows: number,
  greedy: boolean,
  rng: Rng,
): SampledActions {
  const logProbs = new Float32Array(rows);
  let actions: Int32Array | Float32Array;
  if (d.kind === 'gaussian') {
    const { mean, log_std: logStd } = outputs;
    actions = new Float32Array(rows * d.dim);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < d.dim; j++) {
        const k = (start + r) * d.dim + j;
        actions[r * d.dim + j] = mean[k] + Math.exp(logStd[k]) * (greedy ? 0 : rng.normal());
      }
    }
  } else {
    const lp = outputs.log_probs;
    const nvec = d.kind === 'categorical' ? [d.n] : d.nvec;
    const width = nvec.reduce((a, b) => a + b, 0);
    const probs = new Float64Array(Math.max(...nvec));
    actions = new Int32Array(rows * nvec.length);
    for (let r = 0; r < rows; r++) {
      let base = (start + r) * width;
      for (let c = 0; c < nvec.length; c++) {
        actions[r * nvec.length + c] = pickCategorical(lp, base, nvec[c], greedy, rng, probs);
        base += nvec[c];
      }
    }
  }
  // The log-probability of the stored (float32) action, so the learner's recomputation agrees.
  for (let r = 0; r < rows; r++) logProbs[r] = logProbOf(d, outputs, start + r, actions, r);
  return { actions, logProbs };
}

/** log pi(a|s): the action in row `actionRow` of `actions` under row `outputRow` of the distribution's outputs. */
export function logProbOf(
  d: ActionDistribution,
  outputs: Readonly<Record<string, Float32Array>>,
  outputRow: number,
  actions: ArrayLike<number>,
  actionRow: number,
): number {
  if (d.kind === 'gaussian') {
    let lp = 0;
    for (let j = 0; j < d.dim; j++) {
      const k = outputRow * d.dim + j;
      const u = (actions[actionRow * d.dim + j] - outputs.mean[k]) / Math.exp(outputs.log_std[k]);
      lp += -0.5 * u * u - outputs.log_std[k] - HALF_LOG_2PI;
    }
    return lp;
  }
  const nvec = d.kind === 'categorical' ? [d.n] : d.nvec;
  const width = nvec.reduce((a, b) => a + b, 0);
  let base = outputRow * width;
  let lp = 0;
  for (let c = 0; c < nvec.length; c++) {
    lp += outputs.log_probs[base + actions[actionRow * nvec.length + c]];
    base += nvec[c];
  }
  return lp;
}

/** A fresh generator for one act call's seed: batching cannot change which numbers a request draws. */
export function actRng(seed: number): Rng {
  return new Rng(seed);
}
