/**
 * Action selection from a batch's log-probabilities, in JS with the seeded Rng: the program returns
 * log_probs, so one seed reproduces the same actions for the same requests in the same order,
 * whatever ORT build ran the forward pass.
 */
import type { Rng } from '@rlmesh/core';

export interface Chosen {
  actions: Int32Array;
  /** Log-probability of each chosen action. */
  logProbs: Float32Array;
  values: Float32Array;
}

/**
 * Chooses one action for each of `rows` rows starting at row `start` of a batch whose log_probs are
 * [*, numActions] and values [*]: the argmax when `greedy`, else a sample from exp(log_probs).
 */
export function chooseActions(
  logProbs: Float32Array,
  values: Float32Array,
  numActions: number,
  start: number,
  rows: number,
  greedy: boolean,
  rng: Rng,
): Chosen {
  const actions = new Int32Array(rows);
  const chosen = new Float32Array(rows);
  const probs = new Float64Array(numActions);
  for (let r = 0; r < rows; r++) {
    const base = (start + r) * numActions;
    let a = 0;
    if (greedy) {
      for (let i = 1; i < numActions; i++) if (logProbs[base + i] > logProbs[base + a]) a = i;
    } else {
      for (let i = 0; i < numActions; i++) probs[i] = Math.exp(logProbs[base + i]);
      a = rng.categorical(probs);
    }
    actions[r] = a;
    chosen[r] = logProbs[base + a];
  }
  return { actions, logProbs: chosen, values: values.slice(start, start + rows) };
}
