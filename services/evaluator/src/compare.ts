/**
 * Comparing policies by their evaluations. Every rule works per environment of a suite and treats a
 * difference as real only when the evaluation can tell it from noise.
 *
 * - beats (one environment): A beats B when A's interval lies wholly above B's, A.low > B.high, and
 *   both were measured on at least `minEpisodes` episodes. Non-overlapping intervals are the
 *   conservative reading of two independent Bayesian intervals (Schenker & Gentleman, 2001, "On
 *   judging the significance of differences by examining the overlap between confidence intervals",
 *   The American Statistician 55(3)); the minimum count keeps a 2-episode interval from beating
 *   anything on luck.
 * - dominates (a suite): Pareto dominance as the evaluation guide states it, "A dominates B if A >= B
 *   on all environments and A > B on at least one", with ">" read as `beats` and ">=" as "B does not
 *   beat A": A dominates B when B beats A on no shared environment and A beats B on at least one.
 * - paretoFrontier: the results no other result dominates (the non-dominated set of multi-objective
 *   optimisation, one objective per environment).
 * - epsilon variant: instead of intervals, a difference of success rates counts only when it exceeds
 *   a tolerance epsilon (additive epsilon-dominance, Laumanns, Thiele, Deb & Zitzler, 2002,
 *   "Combining convergence and diversity in evolutionary multiobjective optimization", Evolutionary
 *   Computation 10(3)). With epsilon 'se' the tolerance is one standard error of the difference of
 *   the two rates, sqrt(pA(1-pA)/nA + pB(1-pB)/nB), as in the one-standard-error rule (Breiman,
 *   Friedman, Olshen & Stone, 1984, "Classification and Regression Trees", chapter 3): results
 *   within one standard error are ties. The rates in the standard error are the Jeffreys posterior
 *   means (s + 1/2) / (n + 1), so a 0/n or n/n result still has a positive standard error.
 */
import type { EnvironmentResult, EvaluationResult } from '@rlmesh/core';

/** Fewer episodes than this and an environment's result neither beats nor is beaten. */
export const DEFAULT_MIN_EPISODES = 10;

export interface CompareOptions {
  minEpisodes?: number;
  /** Absent: interval separation. 'se': one standard error of the difference. A number: a fixed tolerance on rates. */
  epsilon?: 'se' | number;
}

/** A's lower bound above B's upper bound, both with at least `minEpisodes` episodes. */
export function beats(a: EnvironmentResult, b: EnvironmentResult, minEpisodes = DEFAULT_MIN_EPISODES): boolean {
  if (a.interval.level !== b.interval.level)
    throw new Error(`cannot compare ${a.name}: intervals at levels ${a.interval.level} and ${b.interval.level}`);
  return a.episodes >= minEpisodes && b.episodes >= minEpisodes && a.interval.low > b.interval.high;
}

/** The standard error of the difference of two rates, from their Jeffreys posterior means. */
export function differenceStandardError(a: EnvironmentResult, b: EnvironmentResult): number {
  const p = (e: EnvironmentResult) => (e.successes + 0.5) / (e.episodes + 1);
  const pa = p(a);
  const pb = p(b);
  return Math.sqrt((pa * (1 - pa)) / a.episodes + (pb * (1 - pb)) / b.episodes);
}

/** A's rate above B's by more than the tolerance, both with at least `minEpisodes` episodes. */
export function beatsBeyond(
  a: EnvironmentResult,
  b: EnvironmentResult,
  epsilon: 'se' | number,
  minEpisodes = DEFAULT_MIN_EPISODES,
): boolean {
  if (typeof epsilon === 'number' && !(epsilon >= 0)) throw new RangeError(`epsilon must be 'se' or a number >= 0, got ${epsilon}`);
  const tol = epsilon === 'se' ? differenceStandardError(a, b) : epsilon;
  return a.episodes >= minEpisodes && b.episodes >= minEpisodes && a.success_rate - b.success_rate > tol;
}

const sameEnvironment = (a: EnvironmentResult, b: EnvironmentResult) =>
  a.env_id === b.env_id && (a.level ?? 0) === (b.level ?? 0) && JSON.stringify(a.options) === JSON.stringify(b.options);

/** Pairs of results for the same environment (same entry name, env id, level and options) in both evaluations. */
export function sharedEnvironments(a: EvaluationResult, b: EvaluationResult): [EnvironmentResult, EnvironmentResult][] {
  const byName = new Map(b.environments.map((e) => [e.name, e]));
  const pairs: [EnvironmentResult, EnvironmentResult][] = [];
  for (const ea of a.environments) {
    const eb = byName.get(ea.name);
    if (eb && sameEnvironment(ea, eb)) pairs.push([ea, eb]);
  }
  return pairs;
}

/** B beats A on no shared environment and A beats B on at least one. */
export function dominates(a: EvaluationResult, b: EvaluationResult, opts: CompareOptions = {}): boolean {
  const min = opts.minEpisodes ?? DEFAULT_MIN_EPISODES;
  const better =
    opts.epsilon === undefined
      ? (x: EnvironmentResult, y: EnvironmentResult) => beats(x, y, min)
      : (x: EnvironmentResult, y: EnvironmentResult) => beatsBeyond(x, y, opts.epsilon as 'se' | number, min);
  let won = false;
  for (const [ea, eb] of sharedEnvironments(a, b)) {
    if (better(eb, ea)) return false;
    if (better(ea, eb)) won = true;
  }
  return won;
}

/** The results no other result dominates, in input order. */
export function paretoFrontier(rs: EvaluationResult[], opts: CompareOptions = {}): EvaluationResult[] {
  return rs.filter((r) => !rs.some((other) => other !== r && dominates(other, r, opts)));
}
