import { describe, expect, it } from 'vitest';
import { Rng, type RngState } from '../src/rng';

const draw = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.nextU32());

function meanVar(xs: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  const mean = s / xs.length;
  let v = 0;
  for (let i = 0; i < xs.length; i++) v += (xs[i] - mean) ** 2;
  return { mean, variance: v / xs.length };
}

describe('Rng', () => {
  it('repeats the same sequence for the same seed', () => {
    expect(draw(new Rng(42), 100)).toEqual(draw(new Rng(42), 100));
    const a = new Rng(7);
    const b = new Rng(7);
    for (let i = 0; i < 50; i++) {
      expect(a.uniform()).toBe(b.uniform());
      expect(a.normal()).toBe(b.normal());
      expect(a.int(13)).toBe(b.int(13));
    }
  });

  it('gives different sequences for different seeds', () => {
    const seqs = [0, 1, 2, -1, 2 ** 32, 2 ** 40 + 3].map((s) => draw(new Rng(s), 8).join(','));
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it('emits unsigned 32-bit words', () => {
    const xs = draw(new Rng(3), 1000);
    expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)).toBe(true);
  });

  it('round-trips state() through JSON and continues identically, including the cached normal', () => {
    const a = new Rng(123);
    for (let i = 0; i < 10; i++) a.nextU32();
    a.normal(); // leaves the spare cached
    const saved: RngState = JSON.parse(JSON.stringify(a.state()));
    expect(saved.spare).toEqual(expect.any(Number));
    const b = Rng.fromState(saved);
    for (let i = 0; i < 100; i++) {
      expect(b.normal()).toBe(a.normal());
      expect(b.uniform()).toBe(a.uniform());
      expect(b.nextU32()).toBe(a.nextU32());
    }
  });

  it('state() is a copy, not a live view', () => {
    const a = new Rng(5);
    const s = a.state();
    a.nextU32();
    expect(a.state().s).not.toEqual(s.s);
    expect(Rng.fromState(s).nextU32()).toBe(new Rng(5).nextU32());
  });

  it('rejects malformed states', () => {
    expect(() => Rng.fromState({ s: [0, 0, 0, 0] })).toThrow(/all zero/);
    expect(() => Rng.fromState({ s: [1, 2, 3] as unknown as RngState['s'] })).toThrow(/four unsigned/);
    expect(() => Rng.fromState({ s: [1, 2, 3, 2 ** 32] })).toThrow(/four unsigned/);
    expect(() => Rng.fromState({ s: [1, 2, 3, 4], spare: Number.NaN })).toThrow(/spare/);
  });

  it('uniform() lies in [0, 1) with mean 1/2 and variance 1/12', () => {
    const rng = new Rng(1);
    const xs = Float64Array.from({ length: 100_000 }, () => rng.uniform());
    expect(xs.reduce((a, b) => Math.min(a, b))).toBeGreaterThanOrEqual(0);
    expect(xs.reduce((a, b) => Math.max(a, b))).toBeLessThan(1);
    const { mean, variance } = meanVar(xs);
    expect(mean).toBeCloseTo(0.5, 2);
    expect(variance).toBeCloseTo(1 / 12, 2);
  });

  it('uniformRange() respects its bounds', () => {
    const rng = new Rng(2);
    const xs = Float64Array.from({ length: 10_000 }, () => rng.uniformRange(-3, 5));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(-3);
    expect(Math.max(...xs)).toBeLessThan(5);
    expect(meanVar(xs).mean).toBeCloseTo(1, 1);
  });

  it('normal() has mean 0 and variance 1 over 100k samples', () => {
    const rng = new Rng(9);
    const xs = Float64Array.from({ length: 100_000 }, () => rng.normal());
    const { mean, variance } = meanVar(xs);
    // Standard errors: 0.0032 for the mean, 0.0045 for the variance.
    expect(Math.abs(mean)).toBeLessThan(0.015);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
    // Tails as a normal has them: P(|z| > 2) = 0.0455.
    const tail = xs.filter((x) => Math.abs(x) > 2).length / xs.length;
    expect(tail).toBeGreaterThan(0.04);
    expect(tail).toBeLessThan(0.051);
  });

  it('int(n) stays in [0, n) and is roughly uniform', () => {
    const rng = new Rng(4);
    const n = 10;
    const counts = new Array(n).fill(0);
    const draws = 100_000;
    let bad = 0;
    for (let i = 0; i < draws; i++) {
      const k = rng.int(n);
      if (!(Number.isInteger(k) && k >= 0 && k < n)) bad++;
      else counts[k]++;
    }
    expect(bad).toBe(0);
    // Chi-square with 9 degrees of freedom; 27.9 is the 0.999 quantile.
    const expected = draws / n;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(27.9);
    expect(rng.int(1)).toBe(0);
  });

  it('int() handles n beyond 2^32 and rejects bad n', () => {
    const rng = new Rng(8);
    const big = 2 ** 40 + 7;
    const ks = Array.from({ length: 1000 }, () => rng.int(big));
    expect(ks.every((k) => Number.isInteger(k) && k >= 0 && k < big)).toBe(true);
    expect(Math.max(...ks)).toBeGreaterThan(2 ** 32);
    expect(() => rng.int(0)).toThrow(/Rng.int/);
    expect(() => rng.int(2.5)).toThrow(/Rng.int/);
  });

  it('categorical() frequencies match unnormalised probabilities and skip zero weights', () => {
    const rng = new Rng(6);
    const weights = [1, 0, 2, 5, 2];
    const total = 10;
    const counts = new Array(weights.length).fill(0);
    const draws = 100_000;
    for (let i = 0; i < draws; i++) counts[rng.categorical(weights)]++;
    expect(counts[1]).toBe(0);
    weights.forEach((w, i) => {
      expect(counts[i] / draws).toBeCloseTo(w / total, 2);
    });
    expect(rng.categorical(Float32Array.of(0, 0, 3))).toBe(2);
    expect(() => rng.categorical([0, 0])).toThrow(/positive sum/);
    expect(() => rng.categorical([1, -1])).toThrow(/probs\[1\]/);
  });

  it('shuffle() permutes in place and is reproducible', () => {
    const a = Array.from({ length: 50 }, (_, i) => i);
    const out = new Rng(11).shuffle(a);
    expect(out).toBe(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(new Rng(11).shuffle(Array.from({ length: 50 }, (_, i) => i))).toEqual(a);
  });

  it('shuffle() puts each element in each position about equally often', () => {
    const rng = new Rng(12);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 40_000; i++) counts[rng.shuffle([0, 1, 2, 3]).indexOf(0)]++;
    for (const c of counts) expect(c / 40_000).toBeCloseTo(0.25, 1);
  });

  it('fork() is deterministic, advances the parent and yields a distinct stream', () => {
    const p1 = new Rng(21);
    const p2 = new Rng(21);
    const c1 = p1.fork();
    const c2 = p2.fork();
    expect(draw(c1, 20)).toEqual(draw(c2, 20));
    expect(draw(p1, 20)).toEqual(draw(p2, 20));
    const parent = new Rng(21);
    const child = parent.fork();
    const sibling = parent.fork();
    const seqs = [draw(parent, 8), draw(child, 8), draw(sibling, 8), draw(new Rng(21), 8)].map((s) => s.join(','));
    expect(new Set(seqs).size).toBe(4);
  });
});
