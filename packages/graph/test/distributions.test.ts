/** Diagonal Gaussian and multi-categorical distributions: closed forms, gradients, and a fit by maximum likelihood. */
import { describe, expect, it } from 'vitest';
import type { Graph, HostTensor, Value } from '../src';
import * as G from '../src';
import { type FdInput, finiteDifference } from './fd';

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

// B = 4 rows, D = 3 dims; logStd spans shrinking and widening, actions sit on both sides of the mean.
const B = 4;
const D = 3;
const MEAN = [0.3, -1.2, 2.0, 0.0, 0.5, -0.7, -2.1, 1.1, 0.4, 1.5, -0.3, 0.9];
const LOG_STD = [-0.5, 0.2, 1.1];
const ACTIONS = [0.1, -0.4, 3.5, -1.3, 0.6, -0.2, -1.8, 2.9, 0.0, 1.45, -2.2, 4.0];

// Two components with 3 and 2 choices: logits [B, 5], actions [B, 2].
const NVEC = [3, 2];
const LOGITS = [0.2, -1.0, 0.7, 1.3, -0.4, -0.5, 2.0, 0.1, 0.0, 0.0, 1.1, 1.1, -2.0, -0.6, 0.9, 3.0, -1.0, 0.5, 0.2, 0.25];
const MD_ACTIONS = [2, 0, 1, 1, 0, 1, 2, 0];

function gaussianLogProbRef(mean: number[], logStd: number[], actions: number[], rows: number, dims: number): number[] {
  return Array.from({ length: rows }, (_, b) => {
    let s = 0;
    for (let d = 0; d < dims; d++) {
      const sigma = Math.exp(logStd[d]);
      const diff = actions[b * dims + d] - mean[b * dims + d];
      s += -(diff * diff) / (2 * sigma * sigma) - logStd[d] - HALF_LOG_2PI;
    }
    return s;
  });
}

const gaussianEntropyRef = (logStd: number[]) => logStd.reduce((s, l) => s + 0.5 + HALF_LOG_2PI + l, 0);

function logSoftmaxRef(xs: number[]): number[] {
  const m = Math.max(...xs);
  const lse = m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
  return xs.map((x) => x - lse);
}

/** Per-row log-probabilities and entropies of each component, from the row's logit segments. */
function multiCategoricalRef(logits: number[], actions: number[], nvec: number[], rows: number) {
  const width = nvec.reduce((a, b) => a + b, 0);
  const logProb: number[] = [];
  const entropy: number[] = [];
  for (let b = 0; b < rows; b++) {
    let lp = 0;
    let h = 0;
    let start = 0;
    nvec.forEach((n, k) => {
      const logp = logSoftmaxRef(logits.slice(b * width + start, b * width + start + n));
      lp += logp[actions[b * nvec.length + k]];
      h -= logp.reduce((s, l) => s + Math.exp(l) * l, 0);
      start += n;
    });
    logProb.push(lp);
    entropy.push(h);
  }
  return { logProb, entropy };
}

/** Builds a float32 program from `build`, runs it once, and returns each output as numbers. */
async function runFloat32(
  inputs: Record<string, { dtype: 'float32' | 'int64'; shape: number[]; data: number[] }>,
  build: (xs: Record<string, Value>, g: Graph) => Record<string, Value>,
): Promise<Record<string, { shape: readonly number[]; data: number[] }>> {
  const g = new G.Graph('dist');
  const xs = Object.fromEntries(Object.entries(inputs).map(([name, i]) => [name, g.input(name, i.dtype, i.shape)]));
  for (const [name, v] of Object.entries(build(xs, g))) g.output(name, v);
  const session = await G.Session.create(g.toOnnx());
  const feeds: Record<string, HostTensor> = Object.fromEntries(
    Object.entries(inputs).map(([name, i]) => [
      name,
      { data: i.dtype === 'int64' ? BigInt64Array.from(i.data.map(BigInt)) : Float32Array.from(i.data), shape: i.shape },
    ]),
  );
  const out = await session.run(feeds);
  await session.release();
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { shape: t.shape, data: Array.from(t.data as Float32Array) }]));
}

function expectClose(actual: number[], expected: number[], tol = 1e-5) {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    expect(Math.abs(a - expected[i]), `entry ${i}: ${a} vs ${expected[i]}`).toBeLessThan(tol * Math.max(1, Math.abs(expected[i])));
  });
}

describe('diagonal Gaussian, float32 against float64 closed forms', () => {
  it('log-prob with a state-independent logStd [D], [1, D], and a per-row logStd [B, D]', async () => {
    const perRowLogStd = Array.from({ length: B * D }, (_, i) => LOG_STD[i % D] + 0.1 * Math.floor(i / D) - 0.15);
    const r = await runFloat32(
      {
        mean: { dtype: 'float32', shape: [B, D], data: MEAN },
        logStd: { dtype: 'float32', shape: [D], data: LOG_STD },
        logStdRow: { dtype: 'float32', shape: [1, D], data: LOG_STD },
        logStdBatch: { dtype: 'float32', shape: [B, D], data: perRowLogStd },
        actions: { dtype: 'float32', shape: [B, D], data: ACTIONS },
      },
      (x) => ({
        vec: G.gaussianLogProb(x.mean, x.logStd, x.actions),
        row: G.gaussianLogProb(x.mean, x.logStdRow, x.actions),
        batch: G.gaussianLogProb(x.mean, x.logStdBatch, x.actions),
      }),
    );
    const expected = gaussianLogProbRef(MEAN, LOG_STD, ACTIONS, B, D);
    for (const k of ['vec', 'row']) {
      expect(r[k].shape).toEqual([B]);
      expectClose(r[k].data, expected);
    }
    const perRow = Array.from(
      { length: B },
      (_, b) =>
        gaussianLogProbRef(MEAN.slice(b * D, b * D + D), perRowLogStd.slice(b * D, b * D + D), ACTIONS.slice(b * D, b * D + D), 1, D)[0],
    );
    expect(r.batch.shape).toEqual([B]);
    expectClose(r.batch.data, perRow);
  });

  it('entropy: [B] per row with batchLike, the scalar mean without', async () => {
    const perRowLogStd = Array.from({ length: B * D }, (_, i) => LOG_STD[i % D] + 0.2 * Math.floor(i / D));
    const r = await runFloat32(
      {
        mean: { dtype: 'float32', shape: [B, D], data: MEAN },
        logStd: { dtype: 'float32', shape: [D], data: LOG_STD },
        logStdRow: { dtype: 'float32', shape: [1, D], data: LOG_STD },
        logStdBatch: { dtype: 'float32', shape: [B, D], data: perRowLogStd },
      },
      (x) => ({
        perRow: G.gaussianEntropy(x.logStd, x.mean),
        perRowFromRow: G.gaussianEntropy(x.logStdRow, x.mean),
        scalar: G.gaussianEntropy(x.logStd),
        scalarFromRow: G.gaussianEntropy(x.logStdRow),
        batchRows: G.gaussianEntropy(x.logStdBatch, x.mean),
        batchMean: G.gaussianEntropy(x.logStdBatch),
      }),
    );
    const h = gaussianEntropyRef(LOG_STD);
    for (const k of ['perRow', 'perRowFromRow']) {
      expect(r[k].shape).toEqual([B]);
      expectClose(r[k].data, new Array(B).fill(h));
    }
    for (const k of ['scalar', 'scalarFromRow']) {
      expect(r[k].shape).toEqual([]);
      expectClose(r[k].data, [h]);
    }
    const rows = Array.from({ length: B }, (_, b) => gaussianEntropyRef(perRowLogStd.slice(b * D, b * D + D)));
    expectClose(r.batchRows.data, rows);
    expect(r.batchMean.shape).toEqual([]);
    expectClose(r.batchMean.data, [rows.reduce((a, b) => a + b, 0) / B]);
  });
});

describe('multi-categorical, float32 against float64 closed forms', () => {
  it('log-prob and entropy are the sums over the nvec segments', async () => {
    const r = await runFloat32(
      {
        logits: { dtype: 'float32', shape: [B, 5], data: LOGITS },
        actions: { dtype: 'int64', shape: [B, 2], data: MD_ACTIONS },
      },
      (x) => ({
        logProb: G.multiCategoricalLogProb(x.logits, x.actions, NVEC),
        entropy: G.multiCategoricalEntropy(x.logits, NVEC),
      }),
    );
    const ref = multiCategoricalRef(LOGITS, MD_ACTIONS, NVEC, B);
    expect(r.logProb.shape).toEqual([B]);
    expect(r.entropy.shape).toEqual([B]);
    expectClose(r.logProb.data, ref.logProb);
    expectClose(r.entropy.data, ref.entropy);
  });

  it('with one component it is the plain categorical', async () => {
    const logits = LOGITS.slice(0, 15);
    const actions = [0, 2, 1];
    const r = await runFloat32(
      {
        logits: { dtype: 'float32', shape: [3, 5], data: logits },
        actions: { dtype: 'int64', shape: [3, 1], data: actions },
        flat: { dtype: 'int64', shape: [3], data: actions },
      },
      (x) => ({
        multi: G.multiCategoricalLogProb(x.logits, x.actions, [5]),
        plain: G.categoricalLogProb(x.logits, x.flat),
        multiH: G.multiCategoricalEntropy(x.logits, [5]),
        plainH: G.categoricalEntropy(x.logits),
      }),
    );
    expectClose(r.multi.data, r.plain.data, 1e-7);
    expectClose(r.multiH.data, r.plainH.data, 1e-7);
  });

  it('rejects an nvec that does not match the logits or the actions', () => {
    const g = new G.Graph('bad');
    const logits = g.input('logits', 'float32', ['batch', 5]);
    const actions = g.input('actions', 'int64', ['batch', 3]);
    expect(() => G.multiCategoricalEntropy(logits, [3, 3])).toThrow(/sum\(nvec\) = 6/);
    expect(() => G.multiCategoricalLogProb(logits, actions, NVEC)).toThrow(/2 components/);
  });
});

describe('gradients (float64 central differences)', () => {
  const TOL = 1e-6;
  async function check(build: (g: Graph, xs: Value[]) => Value, inputs: FdInput[]) {
    const r = await finiteDifference(build, inputs);
    expect(r.maxError, JSON.stringify(r.worst)).toBeLessThan(TOL);
  }

  it('gaussianLogProb w.r.t. mean, a [D] logStd and actions', async () => {
    await check(
      (_g, [mean, logStd, actions]) => G.gaussianLogProb(mean, logStd, actions),
      [
        { shape: [B, D], data: MEAN },
        { shape: [D], data: LOG_STD },
        { shape: [B, D], data: ACTIONS },
      ],
    );
  });

  it('gaussianLogProb w.r.t. mean and a per-row [B, D] logStd', async () => {
    await check(
      (_g, [mean, logStd, actions]) => G.gaussianLogProb(mean, logStd, actions),
      [{ shape: [B, D] }, { shape: [B, D] }, { shape: [B, D] }],
    );
  });

  it('gaussianEntropy w.r.t. logStd, per row and as the scalar mean', async () => {
    await check(
      (g, [logStd, logStdBatch]) => {
        const like = g.constant({ dtype: 'float64', shape: [B, D], data: Float64Array.from(MEAN) });
        const terms = [
          G.gaussianEntropy(logStd, like),
          G.gaussianEntropy(logStdBatch, like),
          G.unsqueeze(G.gaussianEntropy(logStdBatch), [0]),
        ];
        return G.concat(terms, 0);
      },
      [{ shape: [1, D], data: LOG_STD }, { shape: [B, D] }],
    );
  });

  it('multiCategoricalLogProb and multiCategoricalEntropy w.r.t. logits', async () => {
    await check(
      (g, [logits]) => {
        const actions = g.constant({ dtype: 'int64', shape: [B, 2], data: BigInt64Array.from(MD_ACTIONS.map(BigInt)) });
        return G.concat([G.multiCategoricalLogProb(logits, actions, NVEC), G.multiCategoricalEntropy(logits, NVEC)], 0);
      },
      [{ shape: [B, 5], data: LOGITS }],
    );
  });
});

/** A state-independent Gaussian: a mean vector and CleanRL's actor_logstd [1, D], both starting at 0. */
class DiagGaussian extends G.Module {
  constructor(readonly dim: number) {
    super();
    this.register('mean', [dim], () => new Float32Array(dim));
    this.register('log_std', [1, dim], () => new Float32Array(dim));
  }
  mean(): Value {
    return this.param('mean');
  }
  logStd(): Value {
    return this.param('log_std');
  }
}

describe('maximum likelihood', () => {
  it('fits mean and std of samples from N([1, -2], [0.5, 2]) to within 5%', async () => {
    const trueMean = [1, -2];
    const trueStd = [0.5, 2];
    const n = 4096;
    const rng = new G.Rng(3);
    const samples = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) for (let d = 0; d < 2; d++) samples[i * 2 + d] = trueMean[d] + trueStd[d] * rng.normal();

    const model = new DiagGaussian(2);
    const program = G.buildTrainProgram({
      module: model,
      batch: [{ name: 'x', dtype: 'float32', shape: ['batch', 2] }],
      optimizer: { kind: 'adam' },
      loss: (b) => {
        // The mean is [D]; broadcast it to the batch so log-prob sees mean [B, D] as a policy head gives.
        const mean = G.expandTo(model.mean(), b.x);
        return {
          loss: G.neg(G.reduceMean(G.gaussianLogProb(mean, model.logStd(), b.x))),
          metrics: { entropy: G.gaussianEntropy(model.logStd()) },
        };
      },
    });
    const trainer = await G.Trainer.fromModule(program, model, 0);
    let metrics: Record<string, number> = {};
    for (let i = 0; i < 600; i++) metrics = await trainer.step({ x: { data: samples, shape: [n, 2] } }, 0.05);
    const params = trainer.parameters();
    await trainer.release();

    const mean = Array.from(params.get('mean')!);
    const std = Array.from(params.get('log_std')!).map(Math.exp);
    for (let d = 0; d < 2; d++) {
      expect(Math.abs(mean[d] - trueMean[d]) / Math.abs(trueMean[d]), `mean[${d}] = ${mean[d]}`).toBeLessThan(0.05);
      expect(Math.abs(std[d] - trueStd[d]) / trueStd[d], `std[${d}] = ${std[d]}`).toBeLessThan(0.05);
    }
    // The optimum is the sample mean and the (biased) sample std, which the fit reaches far closer than 5%.
    for (let d = 0; d < 2; d++) {
      let s = 0;
      let ss = 0;
      for (let i = 0; i < n; i++) s += samples[i * 2 + d];
      const m = s / n;
      for (let i = 0; i < n; i++) ss += (samples[i * 2 + d] - m) ** 2;
      expect(mean[d]).toBeCloseTo(m, 3);
      expect(std[d]).toBeCloseTo(Math.sqrt(ss / n), 3);
    }
    expect(metrics.entropy).toBeCloseTo(gaussianEntropyRef(Array.from(params.get('log_std')!)), 4);
  });
});
