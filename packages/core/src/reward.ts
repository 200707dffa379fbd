/**
 * Vector rewards (as WMIL phase 1 keeps them): environments report named components (goal, pred, ...) and they stay
 * apart until the learner scalarises them with configured weights, so every component is logged.
 */
export type RewardVector = Readonly<Record<string, number>>;

/** sum_c weights[c] * r[c]; a component without a weight counts 0, a weight without a component too. */
export function scalarise(r: RewardVector, weights: Readonly<Record<string, number>>): number {
  let total = 0;
  for (const [c, w] of Object.entries(weights)) total += w * (r[c] ?? 0);
  return total;
}
