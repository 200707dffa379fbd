/** End-to-end learning: small models trained by the compiled train step reach a stated loss. */
import { describe, expect, it } from 'vitest';
import {
  add,
  buildInferenceProgram,
  buildTrainProgram,
  crossEntropy,
  Embedding,
  initParameters,
  Linear,
  MLP,
  Module,
  mseLoss,
  Rng,
  Session,
  Trainer,
  TransformerEncoderLayer,
  type Value,
} from '../src';

function regressionData(rng: Rng, n: number) {
  const x = new Float32Array(n * 2);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.uniformRange(-2, 2);
    const b = rng.uniformRange(-2, 2);
    x.set([a, b], i * 2);
    y[i] = Math.sin(a) * b + 0.5 * a * a;
  }
  return { x, y };
}

describe('MLP', () => {
  it('learns a nonlinear regression, y = sin(a)*b + a^2/2, to MSE < 0.02', async () => {
    const rng = new Rng(1);
    const mlp = new MLP([2, 64, 64, 1], 'tanh');
    const program = buildTrainProgram({
      module: mlp,
      batch: [
        { name: 'x', dtype: 'float32', shape: ['batch', 2] },
        { name: 'y', dtype: 'float32', shape: ['batch', 1] },
      ],
      optimizer: { kind: 'adam' },
      loss: (b) => ({ loss: mseLoss(mlp.forward(b.x), b.y) }),
    });
    const trainer = await Trainer.fromModule(program, mlp, 1);
    const test = regressionData(new Rng(99), 512);
    const first = await evalMse(mlp, trainer, test);
    for (let i = 0; i < 1500; i++) {
      const { x, y } = regressionData(rng, 64);
      await trainer.step({ x: { data: x, shape: [64, 2] }, y: { data: y, shape: [64, 1] } }, 3e-3);
    }
    const last = await evalMse(mlp, trainer, test);
    expect(first).toBeGreaterThan(0.5);
    expect(last).toBeLessThan(0.02);
  });

  it('learns a two-spirals classifier to >= 97% accuracy', async () => {
    const spiral = (rng: Rng, n: number) => {
      const x = new Float32Array(n * 2);
      const y = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const cls = rng.int(2);
        const t = rng.uniformRange(0.25, 3 * Math.PI);
        const s = cls ? -1 : 1;
        x.set([(s * t * Math.cos(t)) / 6 + rng.normal() * 0.02, (s * t * Math.sin(t)) / 6 + rng.normal() * 0.02], i * 2);
        y[i] = BigInt(cls);
      }
      return { x, y };
    };
    const mlp = new MLP([2, 64, 64, 2], 'relu');
    const program = buildTrainProgram({
      module: mlp,
      batch: [
        { name: 'x', dtype: 'float32', shape: ['batch', 2] },
        { name: 'y', dtype: 'int64', shape: ['batch'] },
      ],
      optimizer: { kind: 'adamw', weightDecay: 1e-4 },
      loss: (b) => ({ loss: crossEntropy(mlp.forward(b.x), b.y) }),
    });
    const trainer = await Trainer.fromModule(program, mlp, 2);
    const rng = new Rng(2);
    for (let i = 0; i < 2000; i++) {
      const { x, y } = spiral(rng, 64);
      await trainer.step({ x: { data: x, shape: [64, 2] }, y: { data: y, shape: [64] } }, 5e-3);
    }
    const test = spiral(new Rng(7), 1000);
    const logits = await infer(mlp, trainer, { x: { data: test.x, shape: [1000, 2] } }, [
      { name: 'x', dtype: 'float32', shape: ['batch', 2] },
    ]);
    let correct = 0;
    for (let i = 0; i < 1000; i++) correct += Number(logits[2 * i + 1] > logits[2 * i]) === Number(test.y[i]) ? 1 : 0;
    expect(correct / 1000).toBeGreaterThanOrEqual(0.97);
  });
});

async function infer(
  module: Module,
  trainer: Trainer,
  feeds: Record<string, { data: Float32Array | BigInt64Array; shape: number[] }>,
  inputs: Parameters<typeof buildInferenceProgram>[0]['inputs'],
) {
  const onnx = buildInferenceProgram({
    module,
    params: trainer.parameters(),
    inputs,
    forward: (i) => ({ out: (module as unknown as { forward(v: Value): Value }).forward(i[inputs[0].name]) }),
  });
  const s = await Session.create(onnx);
  const r = await s.run(feeds);
  return r.out.data as Float32Array;
}

async function evalMse(mlp: MLP, trainer: Trainer, test: { x: Float32Array; y: Float32Array }) {
  const n = test.y.length;
  const pred = await infer(mlp, trainer, { x: { data: test.x, shape: [n, 2] } }, [{ name: 'x', dtype: 'float32', shape: ['batch', 2] }]);
  let s = 0;
  for (let i = 0; i < n; i++) s += (pred[i] - test.y[i]) ** 2;
  return s / n;
}

/** Token + position embeddings, one causal encoder layer, a vocabulary head. */
class TinyCausalLM extends Module {
  readonly tok: Embedding;
  readonly pos: Embedding;
  readonly block: TransformerEncoderLayer;
  readonly head: Linear;
  constructor(
    readonly vocab: number,
    readonly seq: number,
    dim: number,
  ) {
    super();
    this.tok = this.child('tok', new Embedding(vocab, dim));
    this.pos = this.child('pos', new Embedding(seq, dim));
    this.block = this.child('block', new TransformerEncoderLayer(dim, 2, { dimFeedforward: 64, dropout: 0, normFirst: true }));
    this.head = this.child('head', new Linear(dim, vocab));
  }
  forward(tokens: Value): Value {
    const g = tokens.graph;
    const positions = g.constant({
      dtype: 'int64',
      shape: [this.seq],
      data: BigInt64Array.from({ length: this.seq }, (_, i) => BigInt(i)),
    });
    const h = add(this.tok.forward(tokens), this.pos.forward(positions));
    return this.head.forward(this.block.forward(h, { causal: true }));
  }
}

describe('causal transformer', () => {
  it('learns to output the token seen two steps earlier (needs attention) to >= 98% accuracy', async () => {
    const V = 8;
    const T = 8;
    const model = new TinyCausalLM(V, T, 32);
    const batchOf = (rng: Rng, n: number) => {
      const x = new BigInt64Array(n * T);
      const y = new BigInt64Array(n * T);
      const mask = new Float32Array(n * T);
      for (let b = 0; b < n; b++) {
        for (let t = 0; t < T; t++) x[b * T + t] = BigInt(rng.int(V));
        for (let t = 2; t < T; t++) {
          y[b * T + t] = x[b * T + t - 2];
          mask[b * T + t] = 1;
        }
      }
      return { x, y, mask };
    };
    const program = buildTrainProgram({
      module: model,
      batch: [
        { name: 'x', dtype: 'int64', shape: ['batch', T] },
        { name: 'y', dtype: 'int64', shape: ['batch', T] },
        { name: 'mask', dtype: 'float32', shape: ['batch', T] },
      ],
      optimizer: { kind: 'adam', maxGradNorm: 1 },
      loss: (b) => ({ loss: crossEntropy(model.forward(b.x), b.y, b.mask) }),
    });
    const trainer = await Trainer.create(program, initParameters(model, new Rng(3)));
    const rng = new Rng(3);
    let loss = Number.NaN;
    for (let i = 0; i < 600; i++) {
      const { x, y, mask } = batchOf(rng, 64);
      ({ loss } = await trainer.step(
        { x: { data: x, shape: [64, T] }, y: { data: y, shape: [64, T] }, mask: { data: mask, shape: [64, T] } },
        3e-3,
      ));
    }
    expect(loss).toBeLessThan(0.1);
    const test = batchOf(new Rng(11), 256);
    const logits = await infer(model, trainer, { x: { data: test.x, shape: [256, T] } }, [
      { name: 'x', dtype: 'int64', shape: ['batch', T] },
    ]);
    let correct = 0;
    let total = 0;
    for (let i = 0; i < 256 * T; i++) {
      if (!test.mask[i]) continue;
      const row = logits.subarray(i * V, (i + 1) * V);
      const arg = row.indexOf(Math.max(...row));
      correct += BigInt(arg) === test.y[i] ? 1 : 0;
      total++;
    }
    expect(correct / total).toBeGreaterThanOrEqual(0.98);
  });
});
