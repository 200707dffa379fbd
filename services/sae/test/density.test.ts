import { describe, expect, it } from 'vitest';
import { densityHistogram } from '../src';

describe('densityHistogram', () => {
  it('puts each latent in the half-decade bin of its log10 firing frequency, dead ones apart', () => {
    // Over 1000 rows: never; 1 row (log10 -3) and 3 rows (-2.52) in [-3, -2.5); 10 rows (-2) in
    // [-2, -1.5); 500 rows (-0.30) and every row (0, the top edge, kept in the top bin) in [-0.5, 0).
    const bins = densityHistogram([0, 1, 3, 10, 500, 1000], 1000);
    expect(bins).toHaveLength(11);
    expect(bins[0]).toEqual({ lo: Number.NEGATIVE_INFINITY, hi: -5, count: 1 });
    const counts = Object.fromEntries(bins.slice(1).map((b) => [b.lo, b.count]));
    expect(counts).toEqual({ '-5': 0, '-4.5': 0, '-4': 0, '-3.5': 0, '-3': 2, '-2.5': 0, '-2': 1, '-1.5': 0, '-1': 0, '-0.5': 2 });
    // Rarer than 1e-5 still counts as firing: the lowest finite bin.
    expect(densityHistogram([1], 1e9)[1]).toEqual({ lo: -5, hi: -4.5, count: 1 });
  });
});
