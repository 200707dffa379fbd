/**
 * The linear probes on planted features: a label that is a linear function (or the sign of one) of
 * the rows is recovered almost perfectly on held-out groups while the constant baseline is not; the
 * ridge solve agrees with its normal equations in both the primal and the dual form; Jaccard on known sets.
 */
import { Rng } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import {
  importantComponents,
  jaccard,
  logisticProbe,
  type ProbeRows,
  ridgeProbe,
  ridgeWeights,
  rSquared,
  solveSpd,
  valGroups,
} from '../src/circuits';

function planted(n: number, d: number, seed: number): { rows: ProbeRows; w: number[]; y: number[] } {
  const rng = new Rng(seed);
  const x = Float32Array.from({ length: n * d }, () => rng.normal() * 3 + 1);
  const w = Array.from({ length: d }, () => rng.normal());
  const y = Array.from({ length: n }, (_, i) => w.reduce((s, wf, f) => s + wf * x[i * d + f], 0));
  return { rows: { x, d, group: [...Array(n).keys()] }, w, y };
}

describe('linear probes', () => {
  it('recover a planted linear feature on held-out rows; the baseline does not', () => {
    const { rows, y } = planted(200, 16, 1);
    const isVal = valGroups(200, 0.25, 0);
    expect(isVal.filter(Boolean)).toHaveLength(50);
    const noisy = y.map((v, i) => v + 0.01 * Math.sin(i));
    const reg = ridgeProbe(rows, noisy, isVal);
    expect(reg.r2).toBeGreaterThan(0.99);
    expect(reg.baseline_r2).toBeLessThan(0.05);
    const labels = y.map((v) => (v > 0 ? 'BIG' : 'SMALL'));
    const cls = logisticProbe(rows, labels, isVal);
    expect(cls.accuracy).toBeGreaterThan(0.95);
    expect(cls.baseline_accuracy).toBeLessThan(0.7);
    // A label unrelated to the rows stays at chance.
    const noise = new Rng(9);
    const random = y.map(() => (noise.uniform() < 0.5 ? 'A' : 'B'));
    expect(logisticProbe(rows, random, isVal).accuracy).toBeLessThan(0.75);
    expect(
      ridgeProbe(
        rows,
        y.map(() => noise.normal()),
        isVal,
      ).r2,
    ).toBeLessThan(0.2);
  });

  it('solves ridge in the primal and the dual alike, and Cholesky solves what it is given', () => {
    const rng = new Rng(3);
    const [n, d, lambda] = [6, 9, 0.5];
    const x = Float64Array.from({ length: n * d }, () => rng.normal());
    const y = Float64Array.from({ length: n }, () => rng.normal());
    const dual = ridgeWeights(x, y, n, d, lambda);
    // Primal normal equations (XᵀX + λI) w = Xᵀy, checked by substitution.
    for (let f = 0; f < d; f++) {
      let lhs = lambda * dual[f];
      let rhs = 0;
      for (let i = 0; i < n; i++) {
        let xw = 0;
        for (let g = 0; g < d; g++) xw += x[i * d + g] * dual[g];
        lhs += x[i * d + f] * xw;
        rhs += x[i * d + f] * y[i];
      }
      expect(lhs).toBeCloseTo(rhs, 9);
    }
    const a = Float64Array.from([4, 2, 2, 3]);
    expect(Array.from(solveSpd(a, Float64Array.from([2, 1]), 2))).toEqual([0.5, 0]);
    expect(() => solveSpd(Float64Array.from([1, 2, 2, 1]), Float64Array.from([1, 1]), 2)).toThrow(/not positive definite/);
    expect(rSquared([1, 2, 3], [1, 2, 3])).toBe(1);
    expect(rSquared([2, 2, 2], [1, 2, 3])).toBe(0);
  });

  it('calls a component important past the threshold and two examples', () => {
    const score = (name: string, drop: number) => ({ name, exact_match: 0, answer_logprob: 0, drop_exact_match: drop, drop_logprob: 0 });
    const xs = [score('a', 0.1), score('b', 0.04), score('c', 0.01), score('d', -0.2)];
    // 5% of 0.8 is 0.04 (b is not past it); with 100 examples one example is 0.01 (c is not enough).
    expect(importantComponents(xs, 0.8, 0.05, 100)).toEqual(['a']);
    expect(importantComponents(xs, 0.8, 0.01, 100)).toEqual(['a', 'b']);
    // With 20 examples one flip is 0.05 and never counts, two (a's 0.1) do.
    expect(importantComponents([...xs, score('e', 0.05)], 0.8, 0.01, 20)).toEqual(['a']);
  });

  it('measures overlap by Jaccard', () => {
    expect(jaccard(['L0H1', 'L1H0', 'L2H3'], ['L1H0', 'L2H3', 'L3H3'])).toBe(0.5);
    expect(jaccard(['a'], ['a'])).toBe(1);
    expect(jaccard(['a'], ['b'])).toBe(0);
    expect(jaccard([], ['b'])).toBe(0);
    expect(jaccard([], [])).toBeNull();
  });
});
