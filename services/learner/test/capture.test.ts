import { createHash } from 'node:crypto';
import { Box, Discrete, Rng, TokenSequence } from '@rlmesh/core';
import { initParameters, ParamLayout, Session } from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';
import { buildActProgram } from '../src/algorithms/policy-terms';
import { buildCaptureProgram, modelHooks } from '../src/capture';
import { GPT2_OPTIONS } from '../src/models/gpt2';
import { type ModelContext, modelSpec, type PolicyModel } from '../src/registry';
import '../src/models';

const categorical = (observationSpace: unknown, n: number) =>
  ({ observationSpace, actionSpace: new Discrete(n), distribution: { kind: 'categorical', n } }) as unknown as ModelContext;
const baby = () =>
  modelSpec('baby').build({ hidden_dim: 16, num_layers: 2, num_heads: 4, ff_dim: 32, dropout: 0 }, categorical(new Box(-5, 5, [6]), 5));
const gpt2Defaults = Object.fromEntries(Object.entries(GPT2_OPTIONS).map(([k, f]) => [k, f.default]));
const gpt2 = () =>
  modelSpec('gpt2').build(
    { ...gpt2Defaults, n_layer: 2, n_head: 2, n_embd: 8, n_positions: 10 },
    categorical(new TokenSequence(13, 6, 0), 13),
  );

/** Random weights, LayerNorm gains near 1 so the stream is not squashed. */
function weights(model: PolicyModel, seed: number): Float32Array {
  const params = initParameters(model.module, new Rng(seed));
  for (const [name, v] of params)
    if (/(norm\d?|ln_\d|ln_f)\.(weight|bias)$/.test(name)) for (let i = 0; i < v.length; i++) v[i] += (i % 3) * 0.1;
  return new ParamLayout(model.module).pack(params);
}

async function run(onnx: Uint8Array, flat: Float32Array, obs: Float32Array, obsDim: number) {
  const session = await Session.create(onnx, { intraOpThreads: 1 });
  try {
    const out = await session.run({
      params: { data: flat, shape: [flat.length] },
      obs: { data: obs, shape: [obs.length / obsDim, obsDim] },
    });
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { data: t.data as Float32Array, shape: t.shape }]));
  } finally {
    await session.release();
  }
}

const param = (model: PolicyModel, flat: Float32Array, name: string) =>
  new ParamLayout(model.module).unpack(flat).get(name) as Float32Array;

/** Host reference: log_softmax(x W^T + b) for rows of x. */
function headLogProbs(x: Float32Array, rows: number, W: Float32Array, b: Float32Array | null, out: number): Float64Array {
  const d = x.length / rows;
  const res = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    const z = Array.from({ length: out }, (_, o) => {
      let s = b ? b[o] : 0;
      for (let j = 0; j < d; j++) s += x[r * d + j] * W[o * d + j];
      return s;
    });
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    for (let o = 0; o < out; o++) res[r * out + o] = z[o] - lse;
  }
  return res;
}

function layerNorm(x: Float32Array, d: number, gain: Float32Array, bias: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    const row = x.subarray(r * d, (r + 1) * d);
    const mean = row.reduce((a, v) => a + v, 0) / d;
    const varc = row.reduce((a, v) => a + (v - mean) ** 2, 0) / d;
    for (let j = 0; j < d; j++) out[r * d + j] = ((row[j] - mean) / Math.sqrt(varc + 1e-5)) * gain[j] + bias[j];
  }
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

describe('capture programs', () => {
  it("name BabyModel's hook points after TransformerLens, with the shapes they are read in", () => {
    const hooks = modelHooks(baby());
    const names = hooks.map((h) => h.name);
    expect(names).toEqual([
      'hook_embed',
      ...[0, 1].flatMap((l) => [
        `blocks.${l}.hook_resid_pre`,
        `blocks.${l}.attn.hook_z`,
        `blocks.${l}.hook_resid_mid`,
        `blocks.${l}.mlp.hook_post`,
        `blocks.${l}.hook_resid_post`,
      ]),
      'action_head.hook_logits',
      'value_head.hook_value',
    ]);
    const shape = Object.fromEntries(hooks.map((h) => [h.name, h.shape]));
    expect(shape['blocks.0.attn.hook_z']).toEqual(['batch', 4, 4]);
    expect(shape['blocks.1.mlp.hook_post']).toEqual(['batch', 32]);
    expect(shape['blocks.1.hook_resid_post']).toEqual(['batch', 16]);
  });

  it("BabyModel: the last block's resid_post through the action head gives the act program's log-probs", async () => {
    const model = baby();
    const flat = weights(model, 3);
    const obs = Float32Array.from({ length: 4 * 6 }, (_, i) => Math.sin(i * 1.7) * 2);
    const names = ['hook_embed', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_pre', 'blocks.1.hook_resid_post', 'blocks.1.attn.hook_z'];
    const capture = buildCaptureProgram(model, names);
    expect(capture.outputs).toEqual(['log_probs', 'value', ...names]);
    const got = await run(capture.onnx, flat, obs, 6);
    const act = await run(buildActProgram(model).onnx, flat, obs, 6);
    expect(got.log_probs.data).toEqual(act.log_probs.data);
    expect(got.value.data).toEqual(act.value.data);
    expect(got['blocks.1.hook_resid_pre'].data).toEqual(got['blocks.0.hook_resid_post'].data);
    expect(got['blocks.1.attn.hook_z'].shape).toEqual([4, 4, 4]);
    const resid = got['blocks.1.hook_resid_post'];
    expect(resid.shape).toEqual([4, 16]);
    const ref = headLogProbs(resid.data, 4, param(model, flat, 'action_head.fc.weight'), param(model, flat, 'action_head.fc.bias'), 5);
    expect(maxDiff(ref, act.log_probs.data)).toBeLessThan(1e-4);
    // A hook upstream of the head is not already the answer: the embedding alone gives other log-probs.
    const fromEmbed = headLogProbs(
      got.hook_embed.data,
      4,
      param(model, flat, 'action_head.fc.weight'),
      param(model, flat, 'action_head.fc.bias'),
      5,
    );
    expect(maxDiff(fromEmbed, act.log_probs.data)).toBeGreaterThan(1e-2);
  });

  it("GPT-2: the last block's resid_post through ln_f and the tied head gives the next-token log-probs; patterns are causal", async () => {
    const model = gpt2();
    const flat = weights(model, 5);
    // Right-padded with pad id 0: rows end at positions 2 and 5.
    const obs = Float32Array.of(5, 9, 2, 0, 0, 0, 4, 0, 11, 3, 1, 7);
    const capture = buildCaptureProgram(model, ['blocks.1.hook_resid_post', 'blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_z']);
    expect(capture.shapes['blocks.1.hook_resid_post']).toEqual(['batch', 6, 8]);
    const got = await run(capture.onnx, flat, obs, 6);
    const resid = got['blocks.1.hook_resid_post'].data;
    const last = [2, 5];
    const rows = new Float32Array(2 * 8);
    for (const [b, t] of last.entries()) rows.set(resid.subarray((b * 6 + t) * 8, (b * 6 + t + 1) * 8), b * 8);
    const normed = layerNorm(rows, 8, param(model, flat, 'transformer.ln_f.weight'), param(model, flat, 'transformer.ln_f.bias'));
    const ref = headLogProbs(normed, 2, param(model, flat, 'transformer.wte.weight'), null, 13);
    expect(maxDiff(ref, got.log_probs.data)).toBeLessThan(1e-4);
    const pattern = got['blocks.0.attn.hook_pattern'];
    expect(pattern.shape).toEqual([2, 2, 6, 6]);
    for (let q = 0; q < 6; q++) {
      const row = pattern.data.subarray(q * 6, q * 6 + 6);
      expect(row.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
      for (let k = q + 1; k < 6; k++) expect(row[k]).toBe(0);
    }
    expect(got['blocks.1.attn.hook_z'].shape).toEqual([2, 6, 2, 4]);
  });

  it('leave the served act program byte for byte as it was before hook points existed', () => {
    // Pinned from the act programs built before the models marked hook points: marking must add no
    // node. A deliberate change to a model's graph updates these.
    const babyAct = buildActProgram(
      modelSpec('baby').build(
        { hidden_dim: 64, num_layers: 2, num_heads: 4, ff_dim: 256, dropout: 0 },
        categorical(new Box(-10, 10, [8]), 8),
      ),
    );
    const gptAct = buildActProgram(gpt2());
    expect([sha(babyAct.onnx), sha(gptAct.onnx)]).toEqual(['4db835d72cf6a3a6', '6aefce5a590315a8']);
    const model = baby();
    const before = buildActProgram(model).onnx;
    buildCaptureProgram(model, ['blocks.0.hook_resid_post']);
    expect(sha(buildActProgram(model).onnx)).toBe(sha(before));
  });

  it('refuse an unknown hook with the list of known ones', () => {
    expect(() => buildCaptureProgram(baby(), ['blocks.7.hook_resid_post'])).toThrow(
      /unknown hook "blocks\.7\.hook_resid_post".*blocks\.1\.hook_resid_post/,
    );
    expect(() => buildCaptureProgram(baby(), [])).toThrow(/at least one hook/);
  });
});
