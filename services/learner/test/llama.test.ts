/**
 * Llama's ONNX forward against a float64 reference written here in plain loops (no graph, no ONNX):
 * RMSNorm, rotary embeddings in HF's rotate_half convention, grouped-query attention, SwiGLU; with
 * padding on either side, for Llama (untied head, attention_bias) and Qwen2 (q/k/v biases, tied
 * head). Wrong variants of the reference (another RoPE pairing, another kv-head grouping) must miss
 * the 1e-4 tolerance, so the test can tell. Then greedy decoding with the KV cache against full
 * recomputation, and the registered `llama` policy.
 */
import { Discrete, Rng, TokenSequence } from '@rlmesh/core';
import { add, crossEntropy, Graph, gradients, maskedMean, mul, neg, ParamLayout, reduceSum, Session, type Value } from '@rlmesh/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildActProgram } from '../src/algorithms/policy-terms';
import { buildLogitsProgram } from '../src/models/causal-lm';
import { isCausalLmPolicy } from '../src/models/gpt2';
import { causalLmFromModelConfig, causalLmModelConfig, Gpt2Generator } from '../src/models/gpt2-generate';
import { buildGradientProgram, GradientTrainer, tokenLogProbs } from '../src/models/gpt2-step';
import { type LlamaConfig, LlamaForCausalLM } from '../src/models/llama';
import { type ModelContext, modelSpec } from '../src/registry';
import '../src/models';
import { randomLlamaParams, TINY_LLAMA } from './tiny-llama';

const QWEN2: LlamaConfig = { ...TINY_LLAMA, model_type: 'qwen2', attention_bias: false, tie_word_embeddings: true };
// Qwen3 with a head size that is not hidden / heads (as Qwen3-4B's 128 with hidden 2560 and 32 heads).
const QWEN3: LlamaConfig = { ...TINY_LLAMA, model_type: 'qwen3', attention_bias: false, head_dim: 6, tie_word_embeddings: true };

// ---- the float64 reference -------------------------------------------------------------------

interface Variant {
  /** Pairs dimension i with i + D/2 (HF) or with its neighbour 2i, 2i+1 (the GPT-J / Meta layout). */
  rope: 'half' | 'interleaved';
  /** Query head h reads kv head floor(h / rep) (repeat_kv) or h mod kvHeads. */
  groups: 'blocks' | 'modulo';
}
const HF: Variant = { rope: 'half', groups: 'blocks' };

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * w[i]);
}

/** y = W x + b with W [out, in] row-major (nn.Linear). */
function lin(x: Float64Array, w: Float32Array, b: Float32Array | undefined, out: number): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < x.length; i++) s += w[o * x.length + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rope(v: Float64Array, pos: number, D: number, theta: number, kind: Variant['rope']): Float64Array {
  const out = new Float64Array(D);
  for (let i = 0; i < D / 2; i++) {
    const angle = pos * theta ** ((-2 * i) / D);
    const [c, s] = [Math.cos(angle), Math.sin(angle)];
    const [a, b] = kind === 'half' ? [i, i + D / 2] : [2 * i, 2 * i + 1];
    out[a] = v[a] * c - v[b] * s;
    out[b] = v[b] * c + v[a] * s;
  }
  return out;
}

/** LlamaForCausalLM's logits [T][V] for one unpadded sequence, positions 0..T-1. */
function referenceLlamaLogits(c: LlamaConfig, P: Map<string, Float32Array>, ids: number[], v: Variant = HF): Float64Array[] {
  const w = (n: string) => P.get(n) as Float32Array;
  const b = (n: string) => P.get(n);
  const [E, H, V] = [c.hidden_size, c.num_attention_heads, c.vocab_size];
  const Hkv = c.num_key_value_heads || H;
  const D = c.head_dim || E / H;
  const rep = H / Hkv;
  const emb = w('model.embed_tokens.weight');
  let x = ids.map((id) => Float64Array.from({ length: E }, (_, e) => emb[id * E + e]));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const pre = `model.layers.${l}.`;
    const a = `${pre}self_attn.`;
    const hs = x.map((xt) => rmsNorm(xt, w(`${pre}input_layernorm.weight`), c.rms_norm_eps));
    // Qwen3 normalises each head of q and k (q_norm, k_norm) before the rotation.
    const headNorm = (x: Float64Array, n: string) => (c.model_type === 'qwen3' ? rmsNorm(x, w(`${a}${n}.weight`), c.rms_norm_eps) : x);
    const q = hs.map((h, t) => {
      const y = lin(h, w(`${a}q_proj.weight`), b(`${a}q_proj.bias`), H * D);
      const out = new Float64Array(H * D);
      for (let hh = 0; hh < H; hh++) out.set(rope(headNorm(y.slice(hh * D, (hh + 1) * D), 'q_norm'), t, D, c.rope_theta, v.rope), hh * D);
      return out;
    });
    const k = hs.map((h, t) => {
      const y = lin(h, w(`${a}k_proj.weight`), b(`${a}k_proj.bias`), Hkv * D);
      const out = new Float64Array(Hkv * D);
      for (let hh = 0; hh < Hkv; hh++) out.set(rope(headNorm(y.slice(hh * D, (hh + 1) * D), 'k_norm'), t, D, c.rope_theta, v.rope), hh * D);
      return out;
    });
    const val = hs.map((h) => lin(h, w(`${a}v_proj.weight`), b(`${a}v_proj.bias`), Hkv * D));
    x = x.map((xt, t) => {
      const o = new Float64Array(H * D);
      for (let hh = 0; hh < H; hh++) {
        const g = v.groups === 'blocks' ? Math.floor(hh / rep) : hh % Hkv;
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[t][hh * D + d] * k[s][g * D + d];
          scores.push(dot / Math.sqrt(D));
        }
        const m = Math.max(...scores);
        const e = scores.map((z) => Math.exp(z - m));
        const sum = e.reduce((p, z) => p + z, 0);
        for (let s = 0; s <= t; s++) for (let d = 0; d < D; d++) o[hh * D + d] += (e[s] / sum) * val[s][g * D + d];
      }
      const h1 = xt.map((z, i) => z + lin(o, w(`${a}o_proj.weight`), b(`${a}o_proj.bias`), E)[i]);
      const n2 = rmsNorm(h1, w(`${pre}post_attention_layernorm.weight`), c.rms_norm_eps);
      const gate = lin(n2, w(`${pre}mlp.gate_proj.weight`), b(`${pre}mlp.gate_proj.bias`), c.intermediate_size);
      const up = lin(n2, w(`${pre}mlp.up_proj.weight`), b(`${pre}mlp.up_proj.bias`), c.intermediate_size);
      const act = gate.map((z, i) => (z / (1 + Math.exp(-z))) * up[i]);
      const m = lin(act, w(`${pre}mlp.down_proj.weight`), b(`${pre}mlp.down_proj.bias`), E);
      return h1.map((z, i) => z + m[i]);
    });
  }
  const head = c.tie_word_embeddings ? emb : w('lm_head.weight');
  return x.map((xt) => lin(rmsNorm(xt, w('model.norm.weight'), c.rms_norm_eps), head, undefined, V));
}

// ---- helpers ------------------------------------------------------------------------------

interface Row {
  ids: number[];
  left: number;
  right: number;
}

async function onnxLogits(model: LlamaForCausalLM, params: Map<string, Float32Array>, rows: Row[]) {
  const T = rows[0].left + rows[0].ids.length + rows[0].right;
  const ids = new BigInt64Array(rows.length * T).fill(7n);
  const mask = new BigInt64Array(rows.length * T);
  rows.forEach((r, b) => {
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
  return { logits: out.logits.data as Float32Array, T };
}

function maxDiff(c: LlamaConfig, params: Map<string, Float32Array>, rows: Row[], got: { logits: Float32Array; T: number }, v = HF) {
  let worst = 0;
  rows.forEach((r, b) => {
    referenceLlamaLogits(c, params, r.ids, v).forEach((lt, i) => {
      const base = (b * got.T + r.left + i) * c.vocab_size;
      for (let k = 0; k < c.vocab_size; k++) worst = Math.max(worst, Math.abs(got.logits[base + k] - lt[k]));
    });
  });
  return worst;
}

// ---- tests --------------------------------------------------------------------------------

describe('llama: the ONNX forward equals an independent float64 reference', () => {
  for (const [name, cfg] of [
    ['llama (GQA 4/2, attention_bias, untied head)', TINY_LLAMA],
    ['qwen2 (q/k/v biases, tied head)', QWEN2],
    ['qwen3 (q_norm / k_norm, head_dim 6 with hidden 32 and 4 heads)', QWEN3],
  ] as const) {
    it(`${name}: unpadded, left- and right-padded rows, to 1e-4; wrong RoPE or grouping misses`, async () => {
      const model = new LlamaForCausalLM(cfg);
      const params = randomLlamaParams(model, 3);
      const rows: Row[] = [
        { ids: [1, 5, 9, 2, 12, 0, 27, 4], left: 0, right: 0 },
        { ids: [3, 10, 4], left: 5, right: 0 },
        { ids: [6, 6, 20, 11], left: 0, right: 4 },
      ];
      const got = await onnxLogits(model, params, rows);
      expect(maxDiff(cfg, params, rows, got)).toBeLessThan(1e-4);
      const spread = Math.max(...got.logits) - Math.min(...got.logits);
      expect(spread).toBeGreaterThan(1);
      expect(maxDiff(cfg, params, rows, got, { rope: 'interleaved', groups: 'blocks' })).toBeGreaterThan(1e-3);
      expect(maxDiff(cfg, params, rows, got, { rope: 'half', groups: 'modulo' })).toBeGreaterThan(1e-3);
    });
  }

  it('has exactly the parameters of HF LlamaForCausalLM / Qwen2ForCausalLM', () => {
    const names = (c: LlamaConfig) =>
      new LlamaForCausalLM({ ...c, num_hidden_layers: 1 }).namedParameters().map((p) => `${p.name}:${p.shape}`);
    expect(names(TINY_LLAMA)).toEqual([
      'model.embed_tokens.weight:29,32',
      ...['q_proj:32,32', 'k_proj:16,32', 'v_proj:16,32', 'o_proj:32,32'].flatMap((s) => {
        const [n, shape] = s.split(':');
        return [`model.layers.0.self_attn.${n}.weight:${shape}`, `model.layers.0.self_attn.${n}.bias:${shape.split(',')[0]}`];
      }),
      'model.layers.0.mlp.gate_proj.weight:48,32',
      'model.layers.0.mlp.up_proj.weight:48,32',
      'model.layers.0.mlp.down_proj.weight:32,48',
      'model.layers.0.input_layernorm.weight:32',
      'model.layers.0.post_attention_layernorm.weight:32',
      'model.norm.weight:32',
      'lm_head.weight:29,32',
    ]);
    const qwen = names(QWEN2);
    expect(qwen.filter((n) => n.includes('.bias'))).toEqual([
      'model.layers.0.self_attn.q_proj.bias:32',
      'model.layers.0.self_attn.k_proj.bias:16',
      'model.layers.0.self_attn.v_proj.bias:16',
    ]);
    expect(qwen.some((n) => n.startsWith('lm_head'))).toBe(false);
    // Qwen3Attention registers q_proj, k_proj, v_proj, o_proj, q_norm, k_norm.
    expect(names(QWEN3).filter((n) => n.includes('self_attn'))).toEqual([
      'model.layers.0.self_attn.q_proj.weight:24,32',
      'model.layers.0.self_attn.k_proj.weight:12,32',
      'model.layers.0.self_attn.v_proj.weight:12,32',
      'model.layers.0.self_attn.o_proj.weight:32,24',
      'model.layers.0.self_attn.q_norm.weight:6',
      'model.layers.0.self_attn.k_norm.weight:6',
    ]);
  });
});

/** Greedy decoding by recomputing the whole unpadded sequence at every step. */
async function recompute(session: Session, prompt: number[], steps: number, V: number): Promise<number[]> {
  const seq = [...prompt];
  for (let s = 0; s < steps; s++) {
    const T = seq.length;
    const out = await session.run({
      input_ids: { data: BigInt64Array.from(seq, BigInt), shape: [1, T] },
      attention_mask: { data: new BigInt64Array(T).fill(1n), shape: [1, T] },
    });
    const row = (out.logits.data as Float32Array).subarray((T - 1) * V, T * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
    seq.push(best);
  }
  return seq.slice(prompt.length);
}

describe('llama: greedy decoding with the KV cache (the generator GPT-2 uses)', () => {
  const model = new LlamaForCausalLM(TINY_LLAMA);
  const params = randomLlamaParams(model, 21, 0.5);
  let generator: Gpt2Generator;
  let full: Session;
  beforeAll(async () => {
    generator = await Gpt2Generator.create(model, params);
    full = await Session.create(buildLogitsProgram(model, params), { intraOpThreads: 1 });
  });
  afterAll(async () => {
    await generator.release();
    await full.release();
  });

  it('equals full recomputation token for token, for left-padded prompts of different lengths, and the run without a cache', async () => {
    const prompts = [[3, 1, 4, 1, 5, 9, 2, 6], [5], [8, 9, 7, 9], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4]];
    const steps = 10;
    const cached = await generator.greedy(prompts, { maxNewTokens: steps });
    const uncached = await generator.generate(
      prompts.map((prompt) => ({ prompt, maxNewTokens: steps, temperature: 0 })),
      { cache: false },
    );
    for (const [b, p] of prompts.entries()) {
      const want = await recompute(full, p, steps, TINY_LLAMA.vocab_size);
      expect(cached.tokens[b], `prompt ${b}`).toEqual(want);
      expect(uncached[b].tokens, `prompt ${b} without a cache`).toEqual(want);
    }
    // Not a constant continuation: the check compares something.
    expect(new Set(cached.tokens.flat()).size).toBeGreaterThan(3);
  });
});

describe('llama: gradients of the whole model', () => {
  it('match float64 central differences for every parameter tensor (GQA, RoPE, biases, value head, padding on both sides)', async () => {
    const cfg: LlamaConfig = { ...TINY_LLAMA, vocab_size: 13, hidden_size: 16, intermediate_size: 12, head_dim: 4, value_head: true };
    const model = new LlamaForCausalLM(cfg);
    const specs = model.namedParameters();
    const g = new Graph('llama_fd');
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
      const gain = /norm\.weight$/.test(p.name) ? 1 : 0;
      return Float64Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.4 * rng.normal());
    });
    const feeds = () => Object.fromEntries(data.map((d, i) => [`p${i}`, { data: d, shape: specs[i].shape }]));
    const analytic = await session.run(feeds());
    const lossAt = async () => (await session.run(feeds(), ['loss'])).loss.data[0] as number;
    let worst = { name: '', error: 0 };
    for (const [i, d] of data.entries()) {
      const grad = analytic[`d${i}`].data as Float64Array;
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
    // Every tensor was checked: the embedding; per layer 4 attention projections, their 4 biases, 3 MLP
    // projections and 2 norms; the final norm, lm_head and the value head's 2.
    expect(specs.length).toBe(1 + 2 * (4 + 4 + 3 + 2) + 1 + 1 + 2);
  });
});

describe('llama: gradient checkpointing', () => {
  it('recomputing every decoder layer gives the same loss and gradients as keeping the activations', async () => {
    const grads = async (checkpointed: boolean) => {
      const model = new LlamaForCausalLM(TINY_LLAMA);
      model.gradientCheckpointing = checkpointed;
      const program = buildGradientProgram(model, 'g', [], (b) => ({ loss: neg(reduceSum(tokenLogProbs(model, b).logProbs)) }));
      const trainer = await GradientTrainer.create(program, randomLlamaParams(model, 2), {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: 0,
        maxGradNorm: 0,
      });
      const i64 = (xs: number[]) => ({ data: BigInt64Array.from(xs, BigInt), shape: [2, 4] });
      const out = await trainer.gradient([
        { input_ids: i64([3, 9, 4, 1, 7, 7, 2, 5]), attention_mask: i64([0, 1, 1, 1, 1, 1, 1, 1]), labels: i64([9, 4, 1, 6, 7, 2, 5, 8]) },
      ]);
      await trainer.release();
      return { out, nodes: program.onnx.length };
    };
    const [plain, ckpt] = [await grads(false), await grads(true)];
    expect(ckpt.nodes).toBeGreaterThan(plain.nodes);
    expect(Math.abs(ckpt.out.sums.loss - plain.out.sums.loss)).toBeLessThan(1e-5);
    let worst = 0;
    for (let i = 0; i < plain.out.grad.length; i++) worst = Math.max(worst, Math.abs(ckpt.out.grad[i] - plain.out.grad[i]));
    expect(worst).toBeLessThan(1e-5);
    expect(Math.max(...plain.out.grad.map(Math.abs))).toBeGreaterThan(0.1);
  });
});

describe('llama: a published version (model_config)', () => {
  it('rebuilds the same architecture from its model_config and flat parameters', () => {
    const model = new LlamaForCausalLM({ ...TINY_LLAMA, model_type: 'qwen2', attention_bias: false, value_head: true });
    const params = randomLlamaParams(model, 1);
    const flat = new ParamLayout(model).pack(params);
    const json = causalLmModelConfig(model);
    expect(JSON.parse(json)).toMatchObject({ model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], rlmesh_value_head: true });
    const back = causalLmFromModelConfig(json, flat);
    expect(back.model).toBeInstanceOf(LlamaForCausalLM);
    expect((back.model as LlamaForCausalLM).config).toEqual(model.config);
    expect([...back.params.keys()]).toEqual([...params.keys()]);
    expect(() => causalLmFromModelConfig(json, flat.subarray(1))).toThrow(/params: holds/);
  });
});

describe('llama: the registered policy', () => {
  const ctx = (vocab: number, maxLength: number): ModelContext =>
    ({
      observationSpace: new TokenSequence(vocab, maxLength, 0),
      actionSpace: new Discrete(vocab),
      distribution: { kind: 'categorical', n: vocab },
    }) as unknown as ModelContext;

  it("its act program gives the reference's next-token log-probs after each row's last token", async () => {
    const policy = modelSpec('llama').build({ ...TINY_LLAMA, vocab_size: 0 }, ctx(29, 7));
    if (!isCausalLmPolicy(policy) || !(policy.module instanceof LlamaForCausalLM)) throw new Error('llama must build a Llama policy');
    const params = randomLlamaParams(policy.module, 4);
    const act = buildActProgram(policy);
    const session = await Session.create(act.onnx, { intraOpThreads: 1 });
    // Right-padded with pad id 0; the second row has a 0 inside it, which stays a token.
    const rows = [
      [5, 9, 2],
      [4, 0, 11, 3, 1, 7, 20],
    ];
    const obs = Float32Array.from(rows.flatMap((r) => [...r, ...Array(7 - r.length).fill(0)]));
    const out = await session.run({
      params: { data: new ParamLayout(policy.module).pack(params), shape: [act.layout.total] },
      obs: { data: obs, shape: [2, 7] },
    });
    await session.release();
    const logProbs = out.log_probs.data as Float32Array;
    rows.forEach((ids, b) => {
      const want = referenceLlamaLogits(TINY_LLAMA, params, ids).at(-1) as Float64Array;
      const lse = Math.log(want.reduce((a, v) => a + Math.exp(v), 0));
      for (let v = 0; v < 29; v++) expect(Math.abs(logProbs[b * 29 + v] - (want[v] - lse))).toBeLessThan(1e-4);
    });
  });

  it('builds a CausalLmPolicy from model.id llama, and refuses bad configs naming the key', () => {
    const o = (x: Partial<LlamaConfig>) => ({ ...TINY_LLAMA, vocab_size: 0, ...x });
    const policy = modelSpec('llama').build(o({}), ctx(29, 12));
    expect(isCausalLmPolicy(policy)).toBe(true);
    expect(policy.name).toBe('LlamaForCausalLM');
    expect(() => modelSpec('llama').build(o({ num_key_value_heads: 3 }), ctx(29, 12))).toThrow(/model\.num_key_value_heads: must divide/);
    expect(() => modelSpec('llama').build(o({ max_position_embeddings: 8 }), ctx(29, 12))).toThrow(/model\.max_position_embeddings/);
    expect(() => modelSpec('llama').build(o({ model_type: 'qwen2', attention_bias: true }), ctx(29, 12))).toThrow(/model\.attention_bias/);
  });
});
