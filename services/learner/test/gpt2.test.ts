/**
 * GPT-2's ONNX forward against a float64 reference written here in plain loops (no graph, no ONNX),
 * with and without padding on either side; the registered `gpt2` policy's act program against the
 * logits program; the 124M configuration's size and train graph.
 */
import { Discrete, Rng, TokenSequence } from '@rlmesh/core';
import { add, buildTrainProgram, crossEntropy, Graph, gradients, maskedMean, mul, ParamLayout, Session, type Value } from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';
import { buildActProgram } from '../src/algorithms/policy-terms';
import {
  buildLogitsProgram,
  GPT2_124M,
  GPT2_OPTIONS,
  type Gpt2Config,
  Gpt2LMHeadModel,
  gpt2Model,
  isCausalLmPolicy,
} from '../src/models/gpt2';
import { type ModelContext, modelIds, modelSpec } from '../src/registry';
import '../src/models';

const TINY: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: 13,
  n_positions: 10,
  n_embd: 8,
  n_layer: 2,
  n_head: 2,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: 12,
  eos_token_id: 12,
};

/** Random weights large enough that every term matters (LayerNorm gains and biases included). */
function randomParams(model: Gpt2LMHeadModel, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const p of model.namedParameters()) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const isGain = /ln_\d\.weight$|ln_f\.weight$/.test(p.name);
    out.set(
      p.name,
      Float32Array.from({ length: n }, () => (isGain ? 1 : 0) + 0.4 * rng.normal()),
    );
  }
  return out;
}

// ---- the float64 reference -------------------------------------------------------------------

type Act = (x: number) => number;
const geluTanh: Act = (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

function layerNorm(x: Float64Array, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let varr = 0;
  for (const v of x) varr += (v - mean) ** 2;
  varr /= x.length;
  const r = 1 / Math.sqrt(varr + eps);
  return x.map((v, i) => (v - mean) * r * w[i] + b[i]);
}

/** y = x W + b with W [in, out] row-major (Conv1D). */
function conv1d(x: Float64Array, w: Float32Array, b: Float32Array): Float64Array {
  const out = b.length;
  const y = Float64Array.from(b);
  for (let i = 0; i < x.length; i++) for (let j = 0; j < out; j++) y[j] += x[i] * w[i * out + j];
  return y;
}

/** GPT2LMHeadModel's logits [T][V] for one unpadded sequence, positions 0..T-1. */
function referenceLogits(c: Gpt2Config, P: Map<string, Float32Array>, ids: number[], act: Act = geluTanh): Float64Array[] {
  const w = (n: string) => P.get(n) as Float32Array;
  const [E, H, V] = [c.n_embd, c.n_head, c.vocab_size];
  const D = E / H;
  const eps = c.layer_norm_epsilon;
  const wte = w('transformer.wte.weight');
  const wpe = w('transformer.wpe.weight');
  let x = ids.map((id, t) => Float64Array.from({ length: E }, (_, e) => wte[id * E + e] + wpe[t * E + e]));
  for (let l = 0; l < c.n_layer; l++) {
    const pre = `transformer.h.${l}.`;
    const qkv = x.map((xt) =>
      conv1d(layerNorm(xt, w(`${pre}ln_1.weight`), w(`${pre}ln_1.bias`), eps), w(`${pre}attn.c_attn.weight`), w(`${pre}attn.c_attn.bias`)),
    );
    const merged = x.map((_, t) => {
      const o = new Float64Array(E);
      for (let h = 0; h < H; h++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qkv[t][h * D + d] * qkv[s][E + h * D + d];
          scores.push(dot / Math.sqrt(D));
        }
        const m = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let d = 0; d < D; d++) o[h * D + d] += (e[s] / z) * qkv[s][2 * E + h * D + d];
      }
      return o;
    });
    x = x.map((xt, t) => {
      const a = conv1d(merged[t], w(`${pre}attn.c_proj.weight`), w(`${pre}attn.c_proj.bias`));
      const h1 = xt.map((v, i) => v + a[i]);
      const f = conv1d(
        layerNorm(h1, w(`${pre}ln_2.weight`), w(`${pre}ln_2.bias`), eps),
        w(`${pre}mlp.c_fc.weight`),
        w(`${pre}mlp.c_fc.bias`),
      ).map(act);
      const m = conv1d(f, w(`${pre}mlp.c_proj.weight`), w(`${pre}mlp.c_proj.bias`));
      return h1.map((v, i) => v + m[i]);
    });
  }
  return x.map((xt) => {
    const h = layerNorm(xt, w('transformer.ln_f.weight'), w('transformer.ln_f.bias'), eps);
    return Float64Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let e = 0; e < E; e++) s += h[e] * wte[v * E + e];
      return s;
    });
  });
}

// ---- helpers ------------------------------------------------------------------------------

interface Row {
  ids: number[];
  /** Pad slots before the tokens (left padding) or after them (right padding). */
  left: number;
  right: number;
}

async function onnxLogits(model: Gpt2LMHeadModel, params: Map<string, Float32Array>, rows: Row[]) {
  const T = rows[0].left + rows[0].ids.length + rows[0].right;
  const ids = new BigInt64Array(rows.length * T);
  const mask = new BigInt64Array(rows.length * T);
  rows.forEach((r, b) => {
    // Pad slots hold a real token id (7), so only the mask can tell them apart.
    for (let t = 0; t < T; t++) ids[b * T + t] = 7n;
    r.ids.forEach((id, i) => {
      ids[b * T + r.left + i] = BigInt(id);
      mask[b * T + r.left + i] = 1n;
    });
  });
  const session = await Session.create(buildLogitsProgram(model, params), { intraOpThreads: 1 });
  const out = await session.run({
    input_ids: { data: ids, shape: [rows.length, T] },
    attention_mask: { data: mask, shape: [rows.length, T] },
  });
  await session.release();
  expect(out.logits.shape).toEqual([rows.length, T, model.config.vocab_size]);
  return { logits: out.logits.data as Float32Array, T };
}

function maxDiff(model: Gpt2Config, params: Map<string, Float32Array>, rows: Row[], got: { logits: Float32Array; T: number }, act?: Act) {
  const V = model.vocab_size;
  let worst = 0;
  rows.forEach((r, b) => {
    const want = referenceLogits(model, params, r.ids, act);
    want.forEach((lt, i) => {
      const base = (b * got.T + r.left + i) * V;
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(got.logits[base + v] - lt[v]));
    });
  });
  return worst;
}

// ---- tests --------------------------------------------------------------------------------

describe('gpt2: the ONNX forward equals an independent float64 reference', () => {
  const model = new Gpt2LMHeadModel(TINY);
  const params = randomParams(model, 11);

  it('a batch without padding, to 1e-4, and the reference is not trivially close', async () => {
    const rows: Row[] = [
      { ids: [1, 5, 9, 2, 12, 0], left: 0, right: 0 },
      { ids: [3, 3, 4, 11, 6, 8], left: 0, right: 0 },
    ];
    const got = await onnxLogits(model, params, rows);
    expect(maxDiff(TINY, params, rows, got)).toBeLessThan(1e-4);
    // The logits vary (a constant model would pass a loose check), and the exact-erf GELU, a
    // different activation by at most ~1e-3, is told apart: the tolerance discriminates.
    const spread = Math.max(...got.logits) - Math.min(...got.logits);
    expect(spread).toBeGreaterThan(2);
    expect(maxDiff(TINY, params, rows, got, (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)))).toBeGreaterThan(1e-4);
  });

  it('right padding: every real position equals the unpadded sequence, to 1e-4', async () => {
    const rows: Row[] = [
      { ids: [1, 5, 9, 2, 12, 0, 4], left: 0, right: 0 },
      { ids: [3, 10, 4], left: 0, right: 4 },
      { ids: [6], left: 0, right: 6 },
    ];
    const got = await onnxLogits(model, params, rows);
    expect(maxDiff(TINY, params, rows, got)).toBeLessThan(1e-4);
  });

  it('left padding (batched prompts): positions count tokens, so logits equal the unpadded ones, to 1e-4', async () => {
    const rows: Row[] = [
      { ids: [2, 8, 8, 1, 12], left: 0, right: 0 },
      { ids: [3, 10], left: 3, right: 0 },
      { ids: [9, 9, 0, 4], left: 1, right: 0 },
    ];
    const got = await onnxLogits(model, params, rows);
    expect(maxDiff(TINY, params, rows, got)).toBeLessThan(1e-4);
  });
});

/** erf to ~1e-7 (Abramowitz-Stegun 7.1.26), enough to tell the two GELUs apart. */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

describe('gpt2: gradients of the whole model', () => {
  it('match float64 central differences for every parameter tensor, with padding on both sides and the value head', async () => {
    const cfg = { ...TINY, value_head: true };
    const model = new Gpt2LMHeadModel(cfg);
    const specs = model.namedParameters();
    const g = new Graph('gpt2_fd');
    const inputs = specs.map((p, i) => g.input(`p${i}`, 'float64', p.shape));
    const byName = new Map(specs.map((p, i) => [p.name, inputs[i]]));
    model.bind({ dtype: 'float64', get: (n) => byName.get(n) as Value });
    const i64 = (xs: number[]) => g.constant({ dtype: 'int64', shape: [2, 5], data: BigInt64Array.from(xs, BigInt) });
    const ids = i64([4, 2, 9, 9, 1, 7, 7, 3, 11, 5]);
    const mask = i64([1, 1, 1, 1, 0, 0, 1, 1, 1, 1]);
    const labels = i64([2, 9, 9, 1, 0, 0, 3, 11, 5, 6]);
    const lossMask = g.constant({ dtype: 'float64', shape: [2, 5], data: Float64Array.of(1, 1, 1, 0, 0, 0, 1, 1, 1, 0) });
    const out = model.forward({ ids, attentionMask: mask });
    const loss = add(crossEntropy(out.logits, labels, lossMask), maskedMean(mul(out.value as Value, out.value as Value), lossMask));
    const grads = gradients(loss, inputs);
    g.output('loss', loss);
    for (const [i, d] of grads.entries()) g.output(`d${i}`, d);
    const session = await Session.create(g.toOnnx(), { intraOpThreads: 1 });
    const rng = new Rng(9);
    const data = specs.map((p) => {
      const gain = /ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0;
      return Float64Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.4 * rng.normal());
    });
    const feeds = () => Object.fromEntries(data.map((d, i) => [`p${i}`, { data: d, shape: specs[i].shape }]));
    const analytic = await session.run(feeds());
    const lossAt = async () => (await session.run(feeds(), ['loss'])).loss.data[0] as number;
    let worst = { name: '', error: 0 };
    for (const [i, d] of data.entries()) {
      const grad = analytic[`d${i}`].data as Float64Array;
      // Three coordinates per tensor: its first, its last and one in between.
      for (const j of new Set([0, d.length - 1, Math.floor(d.length / 2) + 1].filter((j) => j < d.length))) {
        const orig = d[j];
        d[j] = orig + 1e-6;
        const up = await lossAt();
        d[j] = orig - 1e-6;
        const down = await lossAt();
        d[j] = orig;
        const numeric = (up - down) / 2e-6;
        const error = Math.abs(grad[j] - numeric) / (1 + Math.abs(numeric));
        if (error > worst.error) worst = { name: `${specs[i].name}[${j}]`, error };
      }
    }
    await session.release();
    expect(worst.error, worst.name).toBeLessThan(1e-6);
    // Every tensor was checked: 2 embeddings, 12 per block, ln_f's 2 and the value head's 2.
    expect(specs.length).toBe(2 + 12 * 2 + 2 + 2);
  });
});

describe('gpt2: the registered policy', () => {
  const ctx = (vocab: number, maxLength: number, padId = 0): ModelContext =>
    ({
      observationSpace: new TokenSequence(vocab, maxLength, padId),
      actionSpace: new Discrete(vocab),
      distribution: { kind: 'categorical', n: vocab },
    }) as unknown as ModelContext;
  const opts = (o: Partial<Gpt2Config>) =>
    ({ ...Object.fromEntries(Object.entries(GPT2_OPTIONS).map(([k, f]) => [k, f.default])), ...o }) as Gpt2Config;

  it('is registered, and its act program gives the next-token log-probs after the last token', async () => {
    expect(modelIds()).toContain('gpt2');
    const policy = modelSpec('gpt2').build(opts({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 10, value_head: true }), ctx(13, 6, 0));
    if (!isCausalLmPolicy(policy) || !(policy.module instanceof Gpt2LMHeadModel))
      throw new Error('gpt2 must build a CausalLmPolicy of GPT-2');
    const { config } = policy.module;
    expect(config.vocab_size).toBe(13);
    expect(policy.obsDim).toBe(6);
    const params = randomParams(policy.module, 4);
    const act = buildActProgram(policy);
    const session = await Session.create(act.onnx, { intraOpThreads: 1 });
    // Right-padded with pad id 0; the second row has a 0 inside it, which stays a token.
    const obs = Float32Array.of(5, 9, 2, 0, 0, 0, 4, 0, 11, 3, 1, 7);
    const out = await session.run({
      params: { data: new ParamLayout(policy.module).pack(params), shape: [act.layout.total] },
      obs: { data: obs, shape: [2, 6] },
    });
    await session.release();
    const logProbs = out.log_probs.data as Float32Array;
    const rows = [
      [5, 9, 2],
      [4, 0, 11, 3, 1, 7],
    ];
    rows.forEach((ids, b) => {
      const want = referenceLogits(config, params, ids).at(-1) as Float64Array;
      const lse = Math.log(want.reduce((a, v) => a + Math.exp(v), 0));
      for (let v = 0; v < 13; v++) expect(Math.abs(logProbs[b * 13 + v] - (want[v] - lse))).toBeLessThan(1e-4);
    });
    // The value head reads the same last hidden state: a value per row, not a constant.
    const values = out.value.data as Float32Array;
    expect(values.length).toBe(2);
    expect(values[0]).not.toBe(values[1]);
  });

  it('refuses spaces and sizes it cannot serve, naming the key', () => {
    const box = { observationSpace: { kind: 'box', size: 4 }, actionSpace: new Discrete(13), distribution: { kind: 'categorical', n: 13 } };
    expect(() => gpt2Model.build(opts({ n_embd: 8, n_head: 2 }), box as unknown as ModelContext)).toThrow(/model\.id.*token_sequence/);
    expect(() => gpt2Model.build(opts({ n_embd: 8, n_head: 3 }), ctx(13, 6))).toThrow(/model\.n_head: must divide n_embd/);
    expect(() => gpt2Model.build(opts({ n_embd: 8, n_head: 2, n_positions: 4 }), ctx(13, 6))).toThrow(/model\.n_positions/);
    expect(() => gpt2Model.build(opts({ n_embd: 8, n_head: 2, vocab_size: 5 }), ctx(13, 6))).toThrow(/model\.vocab_size/);
  });
});

describe('gpt2: the 124M configuration', () => {
  it("has GPT-2 small's 124,439,808 parameters in 148 tensors and builds its train graph", () => {
    const model = new Gpt2LMHeadModel({ ...GPT2_124M, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 });
    expect(model.parameterCount()).toBe(124_439_808);
    expect(model.namedParameters()).toHaveLength(148);
    const started = Date.now();
    const program = buildTrainProgram({
      module: model,
      batch: [
        { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
        { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'] },
        { name: 'labels', dtype: 'int64', shape: ['batch', 'sequence'] },
      ],
      optimizer: { kind: 'adamw', weightDecay: 0.1, maxGradNorm: 1 },
      loss: (b) => {
        const { logits } = model.forward({ ids: b.input_ids, attentionMask: b.attention_mask });
        return { loss: crossEntropy(logits, b.labels, b.attention_mask) };
      },
    });
    expect(program.layout.total).toBe(124_439_808);
    expect(program.onnx.length).toBeGreaterThan(10_000);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
