/**
 * GPT-2 directories in Hugging Face's layout. The expected tensor names, shapes and config keys are
 * written here from transformers' src/transformers/models/gpt2/modeling_gpt2.py (GPT2Model: wte,
 * wpe, h.<i> of GPT2Block {ln_1, attn {c_attn, c_proj: Conv1D, weight [nx, nf]}, ln_2, mlp {c_fc,
 * c_proj}}, ln_f; GPT2LMHeadModel: `transformer` + lm_head tied to wte and listed in
 * _tied_weights_keys, so save_pretrained leaves it out; GPT2Attention's `bias` and `masked_bias`
 * buffers are registered persistent=False, so they are not saved) and configuration_gpt2.py
 * (GPT2Config's arguments, plus PretrainedConfig's architectures / model_type / torch_dtype /
 * transformers_version), not from rlmesh's model code.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { loadSafetensors, type SafeTensor, serializeSafetensors } from '@rlmesh/graph';
import { afterAll, describe, expect, it } from 'vitest';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { gpt2ConfigJson, loadGpt2Directory, saveGpt2Directory } from '../src/models/hf-gpt2';

const TINY: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: 13,
  n_positions: 10,
  n_embd: 8,
  n_layer: 2,
  n_head: 2,
  bos_token_id: 12,
  eos_token_id: 12,
};

/** GPT2LMHeadModel.save_pretrained's tensors for V vocab, P positions, E width, L layers, I MLP width. */
function huggingFaceTensors(V: number, P: number, E: number, L: number, I: number): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [
    ['transformer.wte.weight', [V, E]],
    ['transformer.wpe.weight', [P, E]],
  ];
  for (let i = 0; i < L; i++) {
    const h = `transformer.h.${i}`;
    out.push(
      [`${h}.ln_1.weight`, [E]],
      [`${h}.ln_1.bias`, [E]],
      [`${h}.attn.c_attn.weight`, [E, 3 * E]],
      [`${h}.attn.c_attn.bias`, [3 * E]],
      [`${h}.attn.c_proj.weight`, [E, E]],
      [`${h}.attn.c_proj.bias`, [E]],
      [`${h}.ln_2.weight`, [E]],
      [`${h}.ln_2.bias`, [E]],
      [`${h}.mlp.c_fc.weight`, [E, I]],
      [`${h}.mlp.c_fc.bias`, [I]],
      [`${h}.mlp.c_proj.weight`, [I, E]],
      [`${h}.mlp.c_proj.bias`, [E]],
    );
  }
  out.push(['transformer.ln_f.weight', [E]], ['transformer.ln_f.bias', [E]]);
  return out;
}

// GPT2Config.to_dict() of a GPT2LMHeadModel saved in float32 (pad_token_id appears only when set).
const CONFIG_KEYS = [
  'activation_function',
  'architectures',
  'attn_pdrop',
  'bos_token_id',
  'embd_pdrop',
  'eos_token_id',
  'initializer_range',
  'layer_norm_epsilon',
  'model_type',
  'n_ctx',
  'n_embd',
  'n_head',
  'n_inner',
  'n_layer',
  'n_positions',
  'reorder_and_upcast_attn',
  'resid_pdrop',
  'scale_attn_by_inverse_layer_idx',
  'scale_attn_weights',
  'summary_activation',
  'summary_first_dropout',
  'summary_proj_to_labels',
  'summary_type',
  'summary_use_proj',
  'torch_dtype',
  'transformers_version',
  'use_cache',
  'vocab_size',
];

function randomParams(model: Gpt2LMHeadModel, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(
    model.namedParameters().map((p) => [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => rng.normal())]),
  );
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('gpt2: Hugging Face directories', () => {
  const root = mkdtempSync(join(tmpdir(), 'rlmesh-gpt2-hf-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("writes exactly GPT2LMHeadModel's tensor names, shapes and config keys", async () => {
    const model = new Gpt2LMHeadModel(TINY);
    const dir = join(root, 'tiny');
    await saveGpt2Directory(dir, TINY, randomParams(model, 1));
    const { tensors, metadata } = await loadSafetensors(join(dir, 'model.safetensors'));
    const want = huggingFaceTensors(13, 10, 8, 2, 32);
    expect(Object.keys(tensors).sort()).toEqual(want.map(([n]) => n).sort());
    for (const [name, shape] of want) {
      expect(tensors[name].shape, name).toEqual(shape);
      expect(tensors[name].dtype, name).toBe('F32');
    }
    expect(metadata).toEqual({ format: 'pt' });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(Object.keys(config)).toEqual(CONFIG_KEYS);
    expect(config).toMatchObject({
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      activation_function: 'gelu_new',
      n_embd: 8,
      n_layer: 2,
      n_head: 2,
      n_positions: 10,
      n_ctx: 10,
      n_inner: null,
      vocab_size: 13,
      bos_token_id: 12,
      eos_token_id: 12,
      layer_norm_epsilon: 1e-5,
    });
    // The 124M configuration writes the hub's gpt2 config values for the same keys.
    expect(gpt2ConfigJson(GPT2_124M)).toMatchObject({
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
      n_positions: 1024,
      vocab_size: 50257,
      bos_token_id: 50256,
    });
  });

  it('read(write(m)) is bit-exact, and writing what was read gives the same bytes', async () => {
    const cfg = { ...TINY, n_inner: 20, pad_token_id: 3, value_head: true };
    const model = new Gpt2LMHeadModel(cfg);
    const params = randomParams(model, 2);
    const a = join(root, 'a');
    const b = join(root, 'b');
    const tokenizer = '{"version":"1.0","model":{"type":"BPE"}}';
    await saveGpt2Directory(a, cfg, params, { files: { 'tokenizer.json': tokenizer } });
    const back = await loadGpt2Directory(a);
    expect(back.tokenizerFiles).toEqual(['tokenizer.json']);
    expect(readFileSync(join(a, 'tokenizer.json'), 'utf8')).toBe(tokenizer);
    await expect(saveGpt2Directory(join(root, 'c'), cfg, params, { files: { '../x': '' } })).rejects.toThrow(/plain name/);
    expect(back.config).toEqual(cfg);
    expect([...back.params.keys()]).toEqual([...params.keys()]);
    for (const [name, v] of params) expect(bits(back.params.get(name) as Float32Array), name).toEqual(bits(v));
    expect(back.params.has('v_head.summary.weight')).toBe(true);
    await saveGpt2Directory(b, back.config, back.params);
    for (const f of ['config.json', 'model.safetensors', 'value_head.safetensors']) {
      expect(Buffer.compare(readFileSync(join(a, f)), readFileSync(join(b, f))), f).toBe(0);
    }
    // The value head stays out of model.safetensors, which holds GPT2LMHeadModel's tensors only.
    const { tensors } = await loadSafetensors(join(a, 'model.safetensors'));
    expect(Object.keys(tensors).some((n) => n.startsWith('v_head'))).toBe(false);
  });

  it('reads hub-style checkpoints: no transformer. prefix, mask buffers, a tied lm_head.weight, F16 tensors', async () => {
    const model = new Gpt2LMHeadModel(TINY);
    const params = randomParams(model, 3);
    const tensors: Record<string, SafeTensor> = {};
    for (const [name, v] of params) tensors[name.replace(/^transformer\./, '')] = { dtype: 'F32', shape: shapeOf(model, name), data: v };
    for (let i = 0; i < 2; i++) {
      tensors[`h.${i}.attn.bias`] = { dtype: 'BOOL', shape: [1, 1, 10, 10], data: new Uint8Array(100).fill(1) };
      tensors[`h.${i}.attn.masked_bias`] = { dtype: 'F32', shape: [], data: Float32Array.of(-1e4) };
    }
    tensors['lm_head.weight'] = { dtype: 'F32', shape: [13, 8], data: params.get('transformer.wte.weight') as Float32Array };
    // Half precision: 0.5 and 0.25 are exact in F16, so the read values are known.
    tensors['ln_f.bias'] = { dtype: 'F16', shape: [8], data: Uint16Array.from({ length: 8 }, (_, i) => (i % 2 ? 0x3800 : 0x3400)) };
    const dir = join(root, 'hub');
    writeDir(dir, gpt2ConfigJson(TINY), tensors);
    const back = await loadGpt2Directory(dir);
    expect(back.config).toEqual(TINY);
    expect(bits(back.params.get('transformer.h.1.mlp.c_fc.weight') as Float32Array)).toEqual(
      bits(params.get('transformer.h.1.mlp.c_fc.weight') as Float32Array),
    );
    expect(Array.from(back.params.get('transformer.ln_f.bias') as Float32Array)).toEqual([0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]);
  });

  it('refuses what it cannot read, naming the file and the key or tensor', async () => {
    const model = new Gpt2LMHeadModel(TINY);
    const params = randomParams(model, 4);
    const good: Record<string, SafeTensor> = Object.fromEntries(
      [...params].map(([n, v]) => [n, { dtype: 'F32', shape: shapeOf(model, n), data: v }]),
    );
    const cases: Array<[string, Record<string, unknown>, Record<string, SafeTensor>, RegExp]> = [
      ['model type', { ...gpt2ConfigJson(TINY), model_type: 'llama' }, good, /model_type: must be "gpt2"/],
      [
        'layer scaling',
        { ...gpt2ConfigJson(TINY), scale_attn_by_inverse_layer_idx: true },
        good,
        /scale_attn_by_inverse_layer_idx: only false/,
      ],
      ['activation', { ...gpt2ConfigJson(TINY), activation_function: 'relu' }, good, /activation_function: must be one of/],
      ['heads', { ...gpt2ConfigJson(TINY), n_head: 3 }, good, /n_head: must divide n_embd/],
      [
        'missing key',
        Object.fromEntries(Object.entries(gpt2ConfigJson(TINY)).filter(([k]) => k !== 'n_embd')),
        good,
        /n_embd: is required/,
      ],
      [
        'missing tensor',
        gpt2ConfigJson(TINY),
        without(good, 'transformer.h.1.ln_2.bias'),
        /tensor transformer\.h\.1\.ln_2\.bias is missing/,
      ],
      [
        'wrong shape',
        gpt2ConfigJson({ ...TINY, n_positions: 12 }),
        good,
        /transformer\.wpe\.weight has shape \[10,8\], config\.json implies \[12,8\]/,
      ],
      [
        'untied head',
        gpt2ConfigJson(TINY),
        { ...good, 'lm_head.weight': { dtype: 'F32', shape: [13, 8], data: new Float32Array(104) } },
        /lm_head\.weight differs from transformer\.wte\.weight/,
      ],
      [
        'stray tensor',
        gpt2ConfigJson(TINY),
        { ...good, 'score.weight': { dtype: 'F32', shape: [2, 8], data: new Float32Array(16) } },
        /unexpected tensor score\.weight/,
      ],
    ];
    for (const [what, config, tensors, error] of cases) {
      const dir = join(root, `bad-${what.replace(/ /g, '-')}`);
      writeDir(dir, config, tensors);
      await expect(loadGpt2Directory(dir), what).rejects.toThrow(error);
    }
    await expect(loadGpt2Directory(join(root, 'nowhere'))).rejects.toThrow(/no config\.json/);
  });
});

function shapeOf(model: Gpt2LMHeadModel, name: string): number[] {
  return (model.namedParameters().find((p) => p.name === name) as { shape: number[] }).shape;
}

function without(t: Record<string, SafeTensor>, name: string): Record<string, SafeTensor> {
  const { [name]: _, ...rest } = t;
  return rest;
}

function writeDir(dir: string, config: Record<string, unknown>, tensors: Record<string, SafeTensor>): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors, { format: 'pt' }));
}
