/**
 * The statistics of one evaluation: an interval for each environment's success rate, summaries of
 * returns and lengths, and weighted aggregates across environments.
 *
 * Success rates get the Jeffreys interval, the equal-tailed interval of the posterior
 * Beta(s + 1/2, n - s + 1/2) under the Jeffreys prior Beta(1/2, 1/2), as recommended by Brown, Cai &
 * DasGupta (2001), "Interval Estimation for a Binomial Proportion", Statistical Science 16(2),
 * 101-133, section 4.1.2: it keeps close to nominal coverage for small n, where evaluations with a
 * few dozen episodes live, unlike the Wald interval. Their boundary modification is applied: the
 * lower bound is 0 when s = 0 and the upper bound is 1 when s = n (the posterior quantile would
 * otherwise exclude a rate the data cannot rule out). Scores may be fractional (accuracies in
 * [0, 1]); s is then their sum, and the same posterior is used with a fractional count.
 */
import type { Aggregate, EnvironmentResult, RateInterval, Summary } from '@rlmesh/core';
import betaQuantile from '@stdlib/stats-base-dists-beta-quantile';

/** The default coverage: 80%, two-sided, so each tail holds 10%. */
export const DEFAULT_LEVEL = 0.8;

/** The Jeffreys interval for `successes` (a sum of scores in [0, 1]) out of `n` episodes. */
export function jeffreysInterval(successes: number, n: number, level = DEFAULT_LEVEL): RateInterval {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be an integer >= 1, got ${n}`);
  if (!Number.isFinite(successes) || successes < 0 || successes > n)
    throw new RangeError(`successes must be a number in [0, ${n}], got ${successes}`);
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be in (0, 1), got ${level}`);
  const tail = (1 - level) / 2;
  const a = successes + 0.5;
  const b = n - successes + 0.5;
  return {
    low: successes === 0 ? 0 : betaQuantile(tail, a, b),
    high: successes === n ? 1 : betaQuantile(1 - tail, a, b),
    level,
    method: 'jeffreys',
  };
}

/** Mean, median, standard deviation (population, divisor n) and range of a non-empty sample. */
export function summarize(xs: number[]): Summary {
  if (xs.length === 0) throw new RangeError('cannot summarise an empty sample');
  const n = xs.length;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const std = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / n);
  return { mean, median, std, min: sorted[0], max: sorted[n - 1] };
}

/**
 * Weighted means of success rate and mean return over environments, weights normalised to sum 1;
 * `weight` is the group's total weight. Environments with weight 0 count for nothing; a group whose
 * weights are all 0 gets equal weights so it still has an aggregate.
 */
export function aggregate(envs: readonly EnvironmentResult[]): Aggregate {
  if (envs.length === 0) throw new RangeError('cannot aggregate no environments');
  const total = envs.reduce((a, e) => a + e.weight, 0);
  const w = (e: EnvironmentResult) => (total > 0 ? e.weight / total : 1 / envs.length);
  return {
    success_rate: envs.reduce((a, e) => a + w(e) * e.success_rate, 0),
    return_mean: envs.reduce((a, e) => a + w(e) * e.returns.mean, 0),
    weight: total,
  };
}

/** The aggregate over all environments and one per split label. */
export function aggregates(envs: readonly EnvironmentResult[]): { all: Aggregate; by_split: Record<string, Aggregate> } {
  const splits = [...new Set(envs.map((e) => e.split))];
  return {
    all: aggregate(envs),
    by_split: Object.fromEntries(splits.map((s) => [s, aggregate(envs.filter((e) => e.split === s))])),
  };
}
