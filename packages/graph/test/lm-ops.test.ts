/**
 * The ops causal language models add (GELU tanh form, Conv1D-layout affine, CumSum, scaled
 * dot-product attention with causal and padding masks, also after cached keys) against float64
 * central differences, and their forward values against plain-JS formulas.
 */
import { describe, expect, it } from 'vitest';
import type { Graph, Value } from '../src';
import * as G from '../src';
import { type FdInput, finiteDifference } from './fd';

const TOL = 1e-6;

async function check(build: (g: Graph, xs: Value[]) => Value, inputs: FdInput[]) {
  const r = await finiteDifference(build, inputs);
  expect(r.maxError, JSON.stringify(r.worst)).toBeLessThan(TOL);
}

/** Runs a float64 graph of one output on `feeds` and returns its values. */
async function evaluate(g: Graph, out: Value, feeds: Record<string, { data: Float64Array | BigInt64Array; shape: number[] }>) {
  g.output('y', out);
  const s = await G.Session.create(g.toOnnx(), { intraOpThreads: 1 });
  try {
    return (await s.run(feeds)).y.data as Float64Array;
  } finally {
    await s.release();
  }
}

const padMask = (g: Graph, rows: number[][]) =>
  g.constant({ dtype: 'bool', shape: [rows.length, rows[0].length], data: Uint8Array.from(rows.flat()) });

describe('language-model ops: gradient rules (float64 central differences)', () => {
  it('GeluTanh', async () => check((_g, [x]) => G.geluTanh(G.mul(x, 3)), [{ shape: [3, 5] }]));
  it('affine (Conv1D layout), 2-D', async () =>
    check((_g, [x, w, b]) => G.affine(x, w, b), [{ shape: [3, 4] }, { shape: [4, 5] }, { shape: [5] }]));
  it('affine, rank 3, no bias', async () => check((_g, [x, w]) => G.affine(x, w, null), [{ shape: [2, 3, 4] }, { shape: [4, 2] }]));
  it('CumSum forward and reverse', async () =>
    check((_g, [x]) => G.add(G.cumsum(x, 1), G.mul(G.cumsum(x, 0, true), 0.5)), [{ shape: [3, 4] }]));
  it('attention, causal', async () =>
    check(
      (_g, [q, k, v]) => G.scaledDotProductAttention(q, k, v, { causal: true }),
      [{ shape: [2, 2, 3, 4] }, { shape: [2, 2, 3, 4] }, { shape: [2, 2, 3, 4] }],
    ));
  it('attention, causal after cached keys (2 queries, 5 keys)', async () =>
    check(
      (_g, [q, k, v]) => G.scaledDotProductAttention(q, k, v, { causal: true }),
      [{ shape: [1, 2, 2, 3] }, { shape: [1, 2, 5, 3] }, { shape: [1, 2, 5, 3] }],
    ));
  it('attention, causal with key padding', async () =>
    check(
      (g, [q, k, v]) =>
        G.scaledDotProductAttention(q, k, v, {
          causal: true,
          keyPaddingMask: padMask(g, [
            [1, 0, 0, 0],
            [0, 0, 0, 1],
          ]),
        }),
      [{ shape: [2, 1, 4, 3] }, { shape: [2, 1, 4, 3] }, { shape: [2, 1, 4, 3] }],
    ));
  it('Conv1D layer, inputs and parameters', async () => {
    const m = new G.Conv1D(4, 3, 0.5);
    const params = m.namedParameters();
    const rng = new G.Rng(3);
    const inputs: FdInput[] = [
      { shape: [2, 4] },
      ...params.map((p) => ({ shape: p.shape, data: Array.from(p.init(rng), (v) => v + 0.1) })),
    ];
    await check((_g, [x, w, b]) => {
      const byName = new Map([
        ['weight', w],
        ['bias', b],
      ]);
      m.bind({ dtype: 'float64', get: (n) => byName.get(n) as Value });
      return m.forward(x);
    }, inputs);
    expect(params.map((p) => [p.name, p.shape])).toEqual([
      ['weight', [4, 3]],
      ['bias', [3]],
    ]);
  });
});

describe('language-model ops: forward values', () => {
  it('GeluTanh is 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))', async () => {
    const g = new G.Graph('gelu');
    const x = g.input('x', 'float64', [7]);
    const xs = Float64Array.of(-4, -1.5, -0.3, 0, 0.2, 1, 3.7);
    const y = await evaluate(g, G.geluTanh(x), { x: { data: xs, shape: [7] } });
    xs.forEach((v, i) => {
      const want = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
      expect(y[i]).toBeCloseTo(want, 14);
    });
  });

  it('causal attention with symbolic lengths equals the static mask, also after cached keys', async () => {
    const [B, H, Tq, Tk, D] = [2, 2, 3, 5, 4];
    const rand = (n: number, s: number) => Float64Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + s));
    const q = rand(B * H * Tq * D, 1);
    const k = rand(B * H * Tk * D, 2);
    const v = rand(B * H * Tk * D, 3);
    const run = async (symbolic: boolean) => {
      const g = new G.Graph('sdpa');
      const qs = g.input('q', 'float64', symbolic ? ['b', H, 'tq', D] : [B, H, Tq, D]);
      const ks = g.input('k', 'float64', symbolic ? ['b', H, 'tk', D] : [B, H, Tk, D]);
      const vs = g.input('v', 'float64', symbolic ? ['b', H, 'tk', D] : [B, H, Tk, D]);
      return evaluate(g, G.scaledDotProductAttention(qs, ks, vs, { causal: true }), {
        q: { data: q, shape: [B, H, Tq, D] },
        k: { data: k, shape: [B, H, Tk, D] },
        v: { data: v, shape: [B, H, Tk, D] },
      });
    };
    const [fixed, dynamic] = [await run(false), await run(true)];
    expect(Array.from(dynamic)).toEqual(Array.from(fixed));
    // By hand: query 0 of batch 0, head 0 sees keys 0..2 (it is position 2 of 5).
    const scores = [0, 1, 2].map((j) => {
      let s = 0;
      for (let d = 0; d < D; d++) s += q[d] * k[j * D + d];
      return s / Math.sqrt(D);
    });
    const m = Math.max(...scores);
    const w = scores.map((s) => Math.exp(s - m));
    const z = w.reduce((a, b) => a + b, 0);
    for (let d = 0; d < D; d++) {
      const want = w.reduce((acc, wj, j) => acc + (wj / z) * v[j * D + d], 0);
      expect(fixed[d]).toBeCloseTo(want, 12);
    }
  });

  it('linear and affine over two symbolic leading axes: values and gradients equal the static graph', async () => {
    const [B, T, I, O] = [2, 3, 4, 5];
    const fill = (n: number, s: number) => Float64Array.from({ length: n }, (_, i) => Math.cos(i * 0.9 + s));
    const data = { x: fill(B * T * I, 1), w: fill(I * O, 2), b: fill(O, 3), wl: fill(O * I, 4) };
    const run = async (symbolic: boolean) => {
      const g = new G.Graph('rows');
      const x = g.input('x', 'float64', symbolic ? ['b', 't', I] : [B, T, I]);
      const w = g.input('w', 'float64', [I, O]);
      const b = g.input('bias', 'float64', [O]);
      const wl = g.input('wl', 'float64', [O, I]);
      const y = G.add(G.affine(x, w, b), G.linear(x, wl, b));
      const loss = G.reduceSum(G.mul(y, y));
      const grads = G.gradients(loss, [x, w, b, wl]);
      g.output('y', y);
      for (const [i, d] of grads.entries()) g.output(`d${i}`, d);
      const s = await G.Session.create(g.toOnnx(), { intraOpThreads: 1 });
      const out = await s.run({
        x: { data: data.x, shape: [B, T, I] },
        w: { data: data.w, shape: [I, O] },
        bias: { data: data.b, shape: [O] },
        wl: { data: data.wl, shape: [O, I] },
      });
      await s.release();
      expect(out.y.shape).toEqual([B, T, O]);
      return ['y', 'd0', 'd1', 'd2', 'd3'].map((k) => Array.from(out[k].data as Float64Array));
    };
    expect(await run(true)).toEqual(await run(false));
  });

  it('CumSum runs on int64 (positions from a mask) without a gradient rule', async () => {
    const g = new G.Graph('cumsum');
    const m = g.input('m', 'int64', [2, 4]);
    const out = G.cast(G.cumsum(m, 1), 'float64');
    const y = await evaluate(g, out, { m: { data: BigInt64Array.of(0n, 1n, 1n, 1n, 1n, 1n, 0n, 0n), shape: [2, 4] } });
    expect(Array.from(y)).toEqual([0, 1, 2, 3, 1, 2, 2, 2]);
  });
});
