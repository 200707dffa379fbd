import { describe, expect, it } from 'vitest';
import * as init from '../src/init';
import { Rng } from '../src/rng';

function stats(xs: Float32Array) {
  let s = 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const x of xs) {
    s += x;
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  const mean = s / xs.length;
  let v = 0;
  for (const x of xs) v += (x - mean) ** 2;
  return { mean, std: Math.sqrt(v / xs.length), lo, hi };
}

/** Checks xs against U(-b, b): inside the bounds, reaching near them, with std b/sqrt(3). */
function expectUniform(xs: Float32Array, bound: number) {
  const { mean, std, lo, hi } = stats(xs);
  expect(lo).toBeGreaterThanOrEqual(-bound);
  expect(hi).toBeLessThanOrEqual(bound);
  expect(lo).toBeLessThan(-0.98 * bound);
  expect(hi).toBeGreaterThan(0.98 * bound);
  expect(Math.abs(mean)).toBeLessThan(0.02 * bound);
  expect(std / (bound / Math.sqrt(3))).toBeCloseTo(1, 1);
}

/** Max |(M M^T)_ij - I_ij| over an r x c row-major matrix (rows orthonormal when this is ~0). */
function rowOrthoError(m: Float32Array, r: number, c: number, gain = 1) {
  let err = 0;
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let d = 0;
      for (let k = 0; k < c; k++) d += m[i * c + k] * m[j * c + k];
      err = Math.max(err, Math.abs(d / (gain * gain) - (i === j ? 1 : 0)));
    }
  }
  return err;
}

function transpose(m: Float32Array, r: number, c: number) {
  const t = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = m[i * c + j];
  return t;
}

describe('fanInOut', () => {
  it('follows torch _calculate_fan_in_and_fan_out', () => {
    expect(init.fanInOut([3, 5])).toEqual({ fanIn: 5, fanOut: 3 });
    // Conv2d weight [out, in, kh, kw]: the receptive field multiplies both.
    expect(init.fanInOut([16, 8, 3, 3])).toEqual({ fanIn: 72, fanOut: 144 });
    expect(init.fanInOut([4, 2, 5])).toEqual({ fanIn: 10, fanOut: 20 });
    expect(() => init.fanInOut([7])).toThrow(/rank >= 2/);
    expect(() => init.fanInOut([])).toThrow(/rank >= 2/);
    expect(() => init.fanInOut([2, -1])).toThrow(/non-negative/);
  });
});

describe('deterministic fills', () => {
  it('zeros, ones and constant have the product of the shape as length', () => {
    expect(init.zeros([2, 3])).toEqual(new Float32Array(6));
    expect(init.ones([4])).toEqual(new Float32Array(4).fill(1));
    expect(init.constant([2, 2], 0.5)).toEqual(new Float32Array(4).fill(0.5));
    expect(init.zeros([])).toHaveLength(1);
    expect(init.ones([3, 0])).toHaveLength(0);
  });
});

describe('random initialisers', () => {
  it('uniform and normal match their parameters', () => {
    const rng = new Rng(1);
    const u = init.uniform([200, 500], -2, 3, rng);
    const su = stats(u);
    expect(su.lo).toBeGreaterThanOrEqual(-2);
    expect(su.hi).toBeLessThanOrEqual(3);
    expect(su.mean).toBeCloseTo(0.5, 1);
    expect(su.std).toBeCloseTo(5 / Math.sqrt(12), 1);
    const n = stats(init.normal([100_000], 1.5, 0.25, rng));
    expect(n.mean).toBeCloseTo(1.5, 2);
    expect(n.std).toBeCloseTo(0.25, 2);
  });

  it('is reproducible from the seed', () => {
    expect(init.kaimingUniform([8, 8], new Rng(3))).toEqual(init.kaimingUniform([8, 8], new Rng(3)));
    expect(init.kaimingUniform([8, 8], new Rng(3))).not.toEqual(init.kaimingUniform([8, 8], new Rng(4)));
  });

  it('kaimingUniform uses bound = gain * sqrt(3 / fan)', () => {
    const rng = new Rng(2);
    // Default: leaky_relu with a = 0, i.e. gain sqrt(2), fan_in.
    expectUniform(init.kaimingUniform([400, 250], rng), Math.sqrt(2) * Math.sqrt(3 / 250));
    expectUniform(init.kaimingUniform([400, 250], rng, { mode: 'fan_out' }), Math.sqrt(2) * Math.sqrt(3 / 400));
    expectUniform(init.kaimingUniform([400, 250], rng, { nonlinearity: 'linear' }), Math.sqrt(3 / 250));
    expectUniform(init.kaimingUniform([400, 250], rng, { nonlinearity: 'tanh' }), (5 / 3) * Math.sqrt(3 / 250));
    expectUniform(init.kaimingUniform([400, 250], rng, { nonlinearity: 'relu' }), Math.sqrt(6 / 250));
    expectUniform(init.kaimingUniform([400, 250], rng, { a: 0.2 }), Math.sqrt(2 / 1.04) * Math.sqrt(3 / 250));
    expectUniform(init.kaimingUniform([64, 16, 3, 3], rng), Math.sqrt(2) * Math.sqrt(3 / 144));
    expect(init.kaimingUniform([0, 5], rng)).toHaveLength(0);
  });

  it('xavierUniform uses bound = gain * sqrt(6 / (fan_in + fan_out))', () => {
    const rng = new Rng(5);
    expectUniform(init.xavierUniform([300, 200], rng), Math.sqrt(6 / 500));
    expectUniform(init.xavierUniform([300, 200], rng, 2), 2 * Math.sqrt(6 / 500));
  });

  it('linearWeight and linearBias are U(-1/sqrt(in), 1/sqrt(in)) as nn.Linear', () => {
    const rng = new Rng(7);
    const w = init.linearWeight(512, 100, rng);
    expect(w).toHaveLength(51_200);
    expectUniform(w, 1 / 10);
    const b = init.linearBias(20_000, 100, rng);
    expect(b).toHaveLength(20_000);
    expectUniform(b, 1 / 10);
    expect(init.linearBias(3, 0, rng)).toEqual(new Float32Array(3));
  });

  it('embeddingWeight is N(0, 1) as nn.Embedding', () => {
    const e = init.embeddingWeight(1000, 100, new Rng(8));
    expect(e).toHaveLength(100_000);
    const s = stats(e);
    expect(Math.abs(s.mean)).toBeLessThan(0.015);
    expect(s.std).toBeCloseTo(1, 2);
  });
});

describe('orthogonal', () => {
  it('gives orthonormal columns for a tall matrix', () => {
    const q = init.orthogonal([40, 12], new Rng(9));
    expect(rowOrthoError(transpose(q, 40, 12), 12, 40)).toBeLessThan(1e-5);
  });

  it('gives orthonormal rows for a wide matrix', () => {
    const q = init.orthogonal([12, 40], new Rng(10));
    expect(rowOrthoError(q, 12, 40)).toBeLessThan(1e-5);
  });

  it('gives an orthogonal square matrix, scaled by gain', () => {
    const q = init.orthogonal([16, 16], new Rng(11), 2);
    expect(rowOrthoError(q, 16, 16, 2)).toBeLessThan(1e-5);
    expect(rowOrthoError(transpose(q, 16, 16), 16, 16, 2)).toBeLessThan(1e-5);
  });

  it('flattens trailing dims as torch does', () => {
    const q = init.orthogonal([6, 2, 3, 2], new Rng(12));
    expect(q).toHaveLength(72);
    expect(rowOrthoError(q, 6, 12)).toBeLessThan(1e-5);
  });

  it('is Haar-distributed: entries have mean 0 and variance 1/n, with no sign bias on the diagonal', () => {
    // Without PyTorch's sign correction, Householder QR makes Q's diagonal systematically negative.
    const rng = new Rng(13);
    const n = 8;
    let diag = 0;
    const entries: number[] = [];
    for (let t = 0; t < 2000; t++) {
      const q = init.orthogonal([n, n], rng);
      for (let i = 0; i < n; i++) diag += q[i * n + i];
      entries.push(...q);
    }
    expect(Math.abs(diag / (2000 * n))).toBeLessThan(0.02);
    const s = stats(Float32Array.from(entries));
    expect(Math.abs(s.mean)).toBeLessThan(0.01);
    expect(s.std ** 2).toBeCloseTo(1 / n, 2);
  });

  it('rejects rank < 2', () => {
    expect(() => init.orthogonal([5], new Rng(1))).toThrow(/rank >= 2/);
  });
});
