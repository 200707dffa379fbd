import { describe, expect, it } from 'vitest';
import { aggregates, jeffreysInterval, summarize } from '../src/stats';
import { envResult } from './helpers';

/**
 * Reference bounds computed independently with SciPy 1.17.1 (the pip wheel, Python 3.11), whose
 * beta.ppf inverts the regularised incomplete beta with Boost's ibeta_inv:
 *   lo = 0 if s == 0 else beta.ppf((1 - level) / 2, s + 0.5, n - s + 0.5)
 *   hi = 1 if s == n else beta.ppf((1 + level) / 2, s + 0.5, n - s + 0.5)
 * The boundary rule (lo = 0 at s = 0, hi = 1 at s = n) is Brown, Cai & DasGupta (2001), Statistical
 * Science 16(2), section 4.1.2.
 */
const REFERENCE: [s: number, n: number, level: number, low: number, high: number][] = [
  [0, 10, 0.8, 0, 0.12357420632868017],
  [10, 10, 0.8, 0.8764257936713198, 1],
  [3, 10, 0.8, 0.1505912258762015, 0.5017811181000884],
  [7, 20, 0.8, 0.22767407074661503, 0.49283956504119864],
  [2.5, 10, 0.8, 0.115825278029763, 0.449603888673586],
  [50, 100, 0.95, 0.4031739508964181, 0.596826049103582],
  [1, 1, 0.8, 0.35135719802562754, 1],
  [0, 1, 0.8, 0, 0.6486428019743724],
  [17, 40, 0.9, 0.30318990087592457, 0.5545788114016429],
  [99.5, 100, 0.8, 0.9772372209558107, 0.9989469496904544],
];

/**
 * Published figures: R's binom package, `binom.confint(x, n, conf.level = 0.95, tol = 1e-8)`,
 * method "bayes" (Beta(1/2, 1/2) prior, central interval), as recorded with their R session in
 * statsmodels' test results (statsmodels/stats/tests/results/results_proportion.py, res_binom,
 * column "bayes").
 */
const R_BINOM_BAYES: [s: number, n: number, low: number, high: number][] = [
  [18, 20, 0.716146742695748, 0.97862751197755],
  [4, 20, 0.07152005247873425, 0.4082257625169254],
  [4, 200, 0.00678759879519299, 0.0468465669668423],
];

describe('jeffreysInterval against R binom (published)', () => {
  it.each(R_BINOM_BAYES)('%s of %s at 95%% equals binom.confint to 1e-6', (s, n, low, high) => {
    const iv = jeffreysInterval(s, n, 0.95);
    expect(Math.abs(iv.low - low)).toBeLessThan(1e-6);
    expect(Math.abs(iv.high - high)).toBeLessThan(1e-6);
  });

  it('at s = 0 and s = n: the bound at the edge is exactly 0 or 1, as in R; the other keeps its equal tail', () => {
    // R's published 0 of 30: ci_low 0, ci_upp 0.06151672; 30 of 30: ci_low 0.9384833, ci_upp 1. R puts
    // the whole alpha in the one open tail there (qbeta(0.95, ...)); Brown, Cai and DasGupta keep
    // alpha / 2, so our 95% bound equals R's figure at 90%.
    expect(jeffreysInterval(0, 30, 0.95).low).toBe(0);
    expect(jeffreysInterval(30, 30, 0.95).high).toBe(1);
    expect(Math.abs(jeffreysInterval(0, 30, 0.9).high - 0.06151672)).toBeLessThan(1e-6);
    expect(Math.abs(jeffreysInterval(30, 30, 0.9).low - 0.9384833)).toBeLessThan(1e-6);
    expect(jeffreysInterval(0, 30, 0.95).high).toBeGreaterThan(0.06151672);
  });
});

describe('jeffreysInterval', () => {
  it.each(REFERENCE)('s=%s n=%s level=%s matches the SciPy reference to 1e-6', (s, n, level, low, high) => {
    const iv = jeffreysInterval(s, n, level);
    expect(Math.abs(iv.low - low)).toBeLessThan(1e-6);
    expect(Math.abs(iv.high - high)).toBeLessThan(1e-6);
    expect(iv.level).toBe(level);
    expect(iv.method).toBe('jeffreys');
  });

  it('defaults to 80% and takes exactly 0 and 1 at the boundaries', () => {
    expect(jeffreysInterval(3, 10)).toEqual(jeffreysInterval(3, 10, 0.8));
    expect(jeffreysInterval(0, 25).low).toBe(0);
    expect(jeffreysInterval(25, 25).high).toBe(1);
    // Away from the boundary the bounds are strictly inside (0, 1).
    const iv = jeffreysInterval(0.5, 25);
    expect(iv.low).toBeGreaterThan(0);
    expect(iv.high).toBeLessThan(1);
  });

  it('narrows as n grows and widens with the level', () => {
    const w = (s: number, n: number, l = 0.8) => {
      const iv = jeffreysInterval(s, n, l);
      return iv.high - iv.low;
    };
    expect(w(50, 100)).toBeLessThan(w(5, 10));
    expect(w(5, 10, 0.95)).toBeGreaterThan(w(5, 10, 0.8));
  });

  it('rejects counts and levels outside their ranges, naming them', () => {
    expect(() => jeffreysInterval(1, 0)).toThrow(/n must be an integer >= 1/);
    expect(() => jeffreysInterval(1, 2.5)).toThrow(/n must be an integer/);
    expect(() => jeffreysInterval(11, 10)).toThrow(/successes must be a number in \[0, 10\]/);
    expect(() => jeffreysInterval(-0.1, 10)).toThrow(/successes/);
    expect(() => jeffreysInterval(1, 10, 1)).toThrow(/level must be in \(0, 1\)/);
  });
});

describe('summarize', () => {
  it('gives mean, median, population std and range', () => {
    expect(summarize([2, 4, 4, 4, 5, 5, 7, 9])).toEqual({ mean: 5, median: 4.5, std: 2, min: 2, max: 9 });
    expect(summarize([3, 1, 2])).toEqual({ mean: 2, median: 2, std: Math.sqrt(2 / 3), min: 1, max: 3 });
  });
  it('rejects an empty sample', () => {
    expect(() => summarize([])).toThrow(/empty/);
  });
});

describe('aggregates', () => {
  it('weights environments by their normalised weights, per split and overall', () => {
    const id = envResult('a', 8, 10, { weight: 3, returns: summarize([4]) });
    const ood = envResult('b', 2, 10, { weight: 1, split: 'OOD', returns: summarize([0]) });
    const agg = aggregates([id, ood]);
    expect(agg.all.success_rate).toBeCloseTo(0.75 * 0.8 + 0.25 * 0.2, 12);
    expect(agg.all.return_mean).toBeCloseTo(3, 12);
    expect(agg.all.weight).toBe(4);
    expect(agg.by_split.ID).toEqual({ success_rate: 0.8, return_mean: 4, weight: 3 });
    expect(agg.by_split.OOD).toEqual({ success_rate: 0.2, return_mean: 0, weight: 1 });
  });
  it('a group whose weights are all zero is averaged equally', () => {
    const agg = aggregates([envResult('a', 10, 10, { weight: 0 }), envResult('b', 0, 10, { weight: 0 })]);
    expect(agg.all.success_rate).toBe(0.5);
  });
});
