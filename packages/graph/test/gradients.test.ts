/** Every gradient rule, and whole layers, against central differences in float64. */
import { describe, expect, it } from 'vitest';
import type { Graph, Module, Value } from '../src';
import * as G from '../src';
import { type FdInput, finiteDifference } from './fd';

const TOL = 1e-6;
const away = (n: number, seed = 1) =>
  Array.from({ length: n }, (_, i) => (i % 2 ? 1 : -1) * (0.2 + ((i * 7919 + seed * 104729) % 97) / 97));
const positive = (n: number) => Array.from({ length: n }, (_, i) => 0.5 + ((i * 37) % 23) / 10);
const distinct = (n: number) => Array.from({ length: n }, (_, i) => ((i * 37) % n) / n - 0.5 + i * 1e-3);

async function check(build: (g: Graph, xs: Value[]) => Value, inputs: FdInput[], tol = TOL) {
  const r = await finiteDifference(build, inputs);
  expect(r.maxError, JSON.stringify(r.worst)).toBeLessThan(tol);
  return r;
}

const ops: Array<[string, (g: Graph, x: Value[]) => Value, FdInput[]]> = [
  ['MatMul 2-D', (_g, [a, b]) => G.matmul(a, b), [{ shape: [3, 4] }, { shape: [4, 5] }]],
  ['MatMul batched', (_g, [a, b]) => G.matmul(a, b), [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }]],
  ['MatMul shared weight', (_g, [a, b]) => G.matmul(a, b), [{ shape: [2, 3, 4] }, { shape: [4, 5] }]],
  ['MatMul broadcast batch', (_g, [a, b]) => G.matmul(a, b), [{ shape: [2, 1, 3, 4] }, { shape: [5, 4, 2] }]],
  ['Linear (Gemm)', (_g, [x, w, b]) => G.linear(x, w, b), [{ shape: [3, 4] }, { shape: [5, 4] }, { shape: [5] }]],
  ['Linear rank 3', (_g, [x, w, b]) => G.linear(x, w, b), [{ shape: [2, 3, 4] }, { shape: [5, 4] }, { shape: [5] }]],
  ['Add broadcast', (_g, [a, b]) => G.add(a, b), [{ shape: [3, 4] }, { shape: [4] }]],
  ['Sub broadcast', (_g, [a, b]) => G.sub(a, b), [{ shape: [3, 1] }, { shape: [1, 4] }]],
  ['Mul broadcast', (_g, [a, b]) => G.mul(a, b), [{ shape: [2, 3, 4] }, { shape: [3, 1] }]],
  ['Div broadcast', (_g, [a, b]) => G.div(a, b), [{ shape: [3, 4] }, { shape: [4], data: positive(4) }]],
  ['scalar operand', (_g, [a]) => G.div(G.sub(3, G.mul(a, 2)), 1.5), [{ shape: [3, 4] }]],
  ['Neg', (_g, [a]) => G.neg(a), [{ shape: [5] }]],
  ['Exp', (_g, [a]) => G.exp(a), [{ shape: [3, 4] }]],
  ['Log', (_g, [a]) => G.log(a), [{ shape: [6], data: positive(6) }]],
  ['Sqrt', (_g, [a]) => G.sqrt(a), [{ shape: [6], data: positive(6) }]],
  ['Pow constant exponent', (_g, [a]) => G.pow(a, 2.5), [{ shape: [6], data: positive(6) }]],
  ['Pow tensor exponent', (_g, [a, b]) => G.pow(a, b), [{ shape: [6], data: positive(6) }, { shape: [6] }]],
  ['Abs', (_g, [a]) => G.abs(a), [{ shape: [8], data: away(8) }]],
  ['Relu', (_g, [a]) => G.relu(a), [{ shape: [8], data: away(8) }]],
  ['Tanh', (_g, [a]) => G.tanh(a), [{ shape: [3, 4] }]],
  ['Sigmoid', (_g, [a]) => G.sigmoid(a), [{ shape: [3, 4] }]],
  ['Gelu', (_g, [a]) => G.gelu(G.mul(a, 2)), [{ shape: [3, 4] }]],
  ['Erf', (_g, [a]) => G.erf(G.mul(a, 2)), [{ shape: [3, 4] }]],
  ['Softmax axis -1', (_g, [a]) => G.softmax(a, -1), [{ shape: [3, 4] }]],
  ['Softmax axis 0', (_g, [a]) => G.softmax(a, 0), [{ shape: [3, 4] }]],
  ['LogSoftmax axis -1', (_g, [a]) => G.logSoftmax(a, -1), [{ shape: [3, 4] }]],
  ['LogSoftmax axis 0', (_g, [a]) => G.logSoftmax(a, 0), [{ shape: [3, 4] }]],
  ['ReduceSum keepdims', (_g, [a]) => G.reduceSum(a, [1], true), [{ shape: [2, 3, 4] }]],
  ['ReduceSum two axes', (_g, [a]) => G.reduceSum(a, [0, 2], false), [{ shape: [2, 3, 4] }]],
  ['ReduceMean', (_g, [a]) => G.reduceMean(a, [-1], false), [{ shape: [2, 3, 4] }]],
  ['ReduceMean keepdims', (_g, [a]) => G.reduceMean(a, [0, 1], true), [{ shape: [2, 3, 4] }]],
  ['ReduceMax', (_g, [a]) => G.reduceMax(a, [1], false), [{ shape: [2, 5], data: distinct(10) }]],
  ['ReduceMax keepdims', (_g, [a]) => G.reduceMax(a, [0], true), [{ shape: [3, 4], data: distinct(12) }]],
  ['Reshape', (_g, [a]) => G.reshape(a, [4, 6]), [{ shape: [2, 3, 4] }]],
  ['Transpose', (_g, [a]) => G.transpose(a, [2, 0, 1]), [{ shape: [2, 3, 4] }]],
  ['Concat', (_g, [a, b]) => G.concat([a, b, a], 1), [{ shape: [2, 3] }, { shape: [2, 2] }]],
  ['Slice', (_g, [a]) => G.slice(a, [1, 0], [3, 2], [1, 0]), [{ shape: [3, 4] }]],
  ['Squeeze / Unsqueeze', (_g, [a]) => G.mul(G.squeeze(G.unsqueeze(a, [0, 2]), [0]), 1.5), [{ shape: [3, 4] }]],
  ['Expand', (_g, [a, b]) => G.expandTo(a, b), [{ shape: [1, 4] }, { shape: [3, 4] }]],
  [
    'Where',
    (g, [a, b]) =>
      G.where(g.constant({ dtype: 'bool', shape: [3, 4], data: Uint8Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 1 : 0)) }), a, b),
    [{ shape: [3, 4] }, { shape: [4] }],
  ],
  ['Clip', (_g, [a]) => G.clip(a, -0.5, 0.5), [{ shape: [8], data: away(8).map((x) => x * 0.6) }]],
  [
    'Min',
    (_g, [a, b]) => G.minimum(a, b),
    [
      { shape: [6], data: distinct(6) },
      { shape: [6], data: distinct(6).map((x, i) => x + (i % 2 ? 0.3 : -0.3)) },
    ],
  ],
  [
    'Max',
    (_g, [a, b]) => G.maximum(a, b),
    [
      { shape: [6], data: distinct(6) },
      { shape: [6], data: distinct(6).map((x, i) => x + (i % 2 ? 0.3 : -0.3)) },
    ],
  ],
  ['LayerNormalization', (_g, [x, gamma, beta]) => G.layerNorm(x, gamma, beta), [{ shape: [3, 5] }, { shape: [5] }, { shape: [5] }]],
  ['TopK', (_g, [a]) => G.topk(a, 2, -1).values, [{ shape: [3, 5], data: distinct(15) }]],
  [
    'Gather (embedding)',
    (_g, [w, idx]) => G.gather(w, idx),
    [{ shape: [5, 3] }, { shape: [2, 3], dtype: 'int64', data: [1, 4, 1, 0, 1, 4] }],
  ],
  ['Cast float64 -> float64', (_g, [a]) => G.cast(a, 'float64'), [{ shape: [4] }]],
];

describe('gradient rules (float64 central differences)', () => {
  for (const [name, build, inputs] of ops) {
    it(name, async () => {
      await check(build, inputs);
    });
  }

  it('the check catches a wrong rule', async () => {
    const wrongTanh = (g: Graph, [x]: Value[]) => {
      const [y] = g.node('Tanh', [x], {}, [x]);
      g.record('Tanh', [x], [y], ([d]) => [d ? G.mul(d, G.sub(1, y)) : null]);
      return y;
    };
    const r = await finiteDifference(wrongTanh, [{ shape: [6] }]);
    expect(r.maxError).toBeGreaterThan(0.05);
  });
});

/** A float64 scope whose parameters are graph inputs, so the check covers their gradients too. */
async function checkLayer(module: Module, data: FdInput[], forward: (xs: Value[]) => Value) {
  const params = module.namedParameters();
  const rng = new G.Rng(5);
  const paramInputs: FdInput[] = params.map((p) => ({ shape: p.shape, data: Array.from(p.init(rng)).map((v) => (v === 0 ? 0.1 : v)) }));
  return check(
    (_g, xs) => {
      const byName = new Map(params.map((p, i) => [p.name, xs[data.length + i]]));
      module.bind({ dtype: 'float64', get: (n) => byName.get(n)! });
      return forward(xs.slice(0, data.length));
    },
    [...data, ...paramInputs],
  );
}

describe('whole layers (float64 central differences, inputs and parameters)', () => {
  it('Linear', async () => {
    const m = new G.Linear(4, 3);
    await checkLayer(m, [{ shape: [2, 4] }], ([x]) => m.forward(x));
  });
  it('MLP with tanh', async () => {
    const m = new G.MLP([3, 5, 2], 'tanh');
    await checkLayer(m, [{ shape: [4, 3] }], ([x]) => m.forward(x));
  });
  it('Embedding', async () => {
    const m = new G.Embedding(6, 3);
    await checkLayer(m, [{ shape: [2, 2], dtype: 'int64', data: [5, 1, 1, 0] }], ([i]) => m.forward(i));
  });
  it('LayerNorm', async () => {
    const m = new G.LayerNorm(5);
    await checkLayer(m, [{ shape: [2, 3, 5] }], ([x]) => m.forward(x));
  });
  it('MultiheadAttention, causal', async () => {
    const m = new G.MultiheadAttention(8, 2);
    await checkLayer(m, [{ shape: [2, 3, 8] }], ([x]) => m.forward(x, { causal: true }));
  });
  it('MultiheadAttention, key padding mask', async () => {
    const m = new G.MultiheadAttention(4, 2);
    await checkLayer(m, [{ shape: [2, 3, 4] }], ([x]) => {
      const mask = x.graph.constant({ dtype: 'bool', shape: [2, 3], data: Uint8Array.of(0, 0, 1, 0, 1, 1) });
      return m.forward(x, { keyPaddingMask: mask });
    });
  });
  it('MultiheadAttention, single position fast path', async () => {
    const m = new G.MultiheadAttention(4, 2);
    await checkLayer(m, [{ shape: [3, 4] }], ([x]) => m.forward(x));
  });
  for (const normFirst of [false, true]) {
    it(`TransformerEncoderLayer (${normFirst ? 'pre' : 'post'}-norm, gelu)`, async () => {
      const m = new G.TransformerEncoderLayer(4, 2, { dimFeedforward: 6, dropout: 0, normFirst, activation: 'gelu' }).eval();
      await checkLayer(m, [{ shape: [2, 3, 4] }], ([x]) => m.forward(x, { causal: true }));
    });
  }
  it('losses: cross-entropy with mask, Huber, KL, entropy', async () => {
    await check(
      (g, [logits, other, pred, target]) => {
        const labels = g.constant({ dtype: 'int64', shape: [4], data: BigInt64Array.of(0n, 2n, 1n, 2n) });
        const mask = g.constant({ dtype: 'float64', shape: [4], data: Float64Array.of(1, 0, 1, 1) });
        const terms = [
          G.crossEntropy(logits, labels, mask),
          G.huberLoss(pred, target, 0.5),
          G.reduceMean(G.categoricalKl(logits, other)),
          G.reduceMean(G.categoricalEntropy(logits)),
          G.mseLoss(pred, target),
        ];
        return G.concat(
          terms.map((t) => G.unsqueeze(t, [0])),
          0,
        );
      },
      [{ shape: [4, 3] }, { shape: [4, 3] }, { shape: [6] }, { shape: [6], data: away(6, 3).map((x) => x * 1.5) }],
    );
  });
});
