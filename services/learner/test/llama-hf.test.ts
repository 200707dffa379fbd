/**
 * Llama and Qwen2 directories in Hugging Face's layout, sharded and not. The expected tensor names,
 * shapes and config keys are written here from transformers' models/llama/modeling_llama.py
 * (LlamaModel: embed_tokens, layers.<i> of LlamaDecoderLayer {self_attn {q,k,v,o}_proj: nn.Linear
 * [out, in], bias = attention_bias; mlp {gate,up,down}_proj; input_layernorm,
 * post_attention_layernorm}, norm; LlamaForCausalLM: `model` + lm_head, left out by save_pretrained
 * when tied), models/qwen2 (q/k/v bias=True, o_proj bias=False) and configuration_llama.py /
 * configuration_qwen2.py, and the sharded index from save_pretrained (model-0000i-of-0000n.safetensors,
 * model.safetensors.index.json with metadata.total_size and weight_map), not from rlmesh's code.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32ToBf16, loadSafetensors, serializeSafetensors } from '@rlmesh/graph';
import { afterAll, describe, expect, it } from 'vitest';
import { GPT2_124M, Gpt2LMHeadModel } from '../src/models/gpt2';
import { loadCausalLmDirectory, saveCausalLmDirectory } from '../src/models/hf-causal-lm';
import { llamaConfigJson, loadLlamaDirectory, saveLlamaDirectory } from '../src/models/hf-llama';
import { type LlamaConfig, LlamaForCausalLM } from '../src/models/llama';
import { randomLlamaParams, TINY_LLAMA } from './tiny-llama';

/** LlamaForCausalLM.save_pretrained's tensors. */
function huggingFaceTensors(c: {
  V: number;
  E: number;
  I: number;
  L: number;
  H: number;
  Hkv: number;
  bias: boolean;
  qkvBias: boolean;
  tied: boolean;
}) {
  const D = c.E / c.H;
  const out: Array<[string, number[]]> = [['model.embed_tokens.weight', [c.V, c.E]]];
  for (let i = 0; i < c.L; i++) {
    const p = `model.layers.${i}`;
    for (const [n, o, inF, bias] of [
      ['q_proj', c.H * D, c.E, c.bias || c.qkvBias],
      ['k_proj', c.Hkv * D, c.E, c.bias || c.qkvBias],
      ['v_proj', c.Hkv * D, c.E, c.bias || c.qkvBias],
      ['o_proj', c.E, c.H * D, c.bias],
    ] as const) {
      out.push([`${p}.self_attn.${n}.weight`, [o, inF]]);
      if (bias) out.push([`${p}.self_attn.${n}.bias`, [o]]);
    }
    out.push(
      [`${p}.mlp.gate_proj.weight`, [c.I, c.E]],
      [`${p}.mlp.up_proj.weight`, [c.I, c.E]],
      [`${p}.mlp.down_proj.weight`, [c.E, c.I]],
      [`${p}.input_layernorm.weight`, [c.E]],
      [`${p}.post_attention_layernorm.weight`, [c.E]],
    );
  }
  out.push(['model.norm.weight', [c.E]]);
  if (!c.tied) out.push(['lm_head.weight', [c.V, c.E]]);
  return out;
}

// LlamaConfig.to_dict() (transformers 4.46) of a model saved in float32; pad_token_id only when set.
const LLAMA_KEYS = [
  'architectures',
  'attention_bias',
  'attention_dropout',
  'bos_token_id',
  'eos_token_id',
  'head_dim',
  'hidden_act',
  'hidden_size',
  'initializer_range',
  'intermediate_size',
  'max_position_embeddings',
  'mlp_bias',
  'model_type',
  'num_attention_heads',
  'num_hidden_layers',
  'num_key_value_heads',
  'pretraining_tp',
  'rms_norm_eps',
  'rope_scaling',
  'rope_theta',
  'tie_word_embeddings',
  'torch_dtype',
  'transformers_version',
  'use_cache',
  'vocab_size',
];
// Qwen2Config.to_dict() (transformers 4.46).
const QWEN2_KEYS = [
  'architectures',
  'attention_dropout',
  'bos_token_id',
  'eos_token_id',
  'hidden_act',
  'hidden_size',
  'initializer_range',
  'intermediate_size',
  'max_position_embeddings',
  'max_window_layers',
  'model_type',
  'num_attention_heads',
  'num_hidden_layers',
  'num_key_value_heads',
  'rms_norm_eps',
  'rope_scaling',
  'rope_theta',
  'sliding_window',
  'tie_word_embeddings',
  'torch_dtype',
  'transformers_version',
  'use_cache',
  'use_sliding_window',
  'vocab_size',
];

// Qwen3Config.to_dict() (transformers 4.51).
const QWEN3_KEYS = [...QWEN2_KEYS, 'attention_bias', 'head_dim'].sort();

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const shapeSig = (xs: Array<[string, number[]]>) => xs.map(([n, s]) => `${n}:${s.join(',')}`).sort();

describe('llama: Hugging Face directories', () => {
  const root = mkdtempSync(join(tmpdir(), 'rlmesh-llama-hf-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('a sharded save writes HF names, shapes, shard files and index exactly, and loads back bit for bit', async () => {
    const model = new LlamaForCausalLM(TINY_LLAMA);
    const params = randomLlamaParams(model, 5);
    const dir = join(root, 'sharded');
    // 20 KB shards: the tiny model's 58 KB of weights spread over several files.
    await saveLlamaDirectory(dir, TINY_LLAMA, params, { maxShardBytes: 20_000, files: { 'tokenizer.json': '{}' } });
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const shards = readdirSync(dir)
      .filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))
      .sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards.every((f) => f.endsWith(`-of-${String(shards.length).padStart(5, '0')}.safetensors`))).toBe(true);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    const want = huggingFaceTensors({ V: 29, E: 32, I: 48, L: 2, H: 4, Hkv: 2, bias: true, qkvBias: false, tied: false });
    expect(Object.keys(index.weight_map)).toEqual(want.map(([n]) => n).sort());
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
    const seen: Array<[string, number[]]> = [];
    let bytes = 0;
    for (const f of shards) {
      const file = await loadSafetensors(join(dir, f));
      expect(file.metadata).toEqual({ format: 'pt' });
      for (const [n, t] of Object.entries(file.tensors)) {
        expect(index.weight_map[n]).toBe(f);
        expect(t.dtype).toBe('F32');
        seen.push([n, t.shape]);
        bytes += t.data.byteLength;
      }
    }
    expect(shapeSig(seen)).toEqual(shapeSig(want));
    expect(index.metadata).toEqual({ total_size: bytes });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(Object.keys(config)).toEqual(LLAMA_KEYS);
    expect(config).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      num_key_value_heads: 2,
      head_dim: 8,
      rope_scaling: null,
    });
    expect(JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'))).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });

    const back = await loadLlamaDirectory(dir);
    expect(back.config).toEqual(TINY_LLAMA);
    expect(back.tokenizerFiles).toEqual(['tokenizer.json']);
    for (const [n, v] of params) expect(bits(back.params.get(n) as Float32Array), n).toEqual(bits(v));

    // Saved again unsharded into the same directory: the shards and index go.
    await saveLlamaDirectory(dir, TINY_LLAMA, params);
    expect(
      readdirSync(dir)
        .filter((f) => f.startsWith('model'))
        .sort(),
    ).toEqual(['model.safetensors']);
    const again = await loadCausalLmDirectory(dir);
    expect(again.model).toBeInstanceOf(LlamaForCausalLM);
    expect(bits(again.params.get('lm_head.weight') as Float32Array)).toEqual(bits(params.get('lm_head.weight') as Float32Array));
  });

  it('qwen2 with a tied head: Qwen2Config keys, q/k/v biases, no lm_head in the files', async () => {
    const cfg: LlamaConfig = { ...TINY_LLAMA, model_type: 'qwen2', attention_bias: false, tie_word_embeddings: true };
    const model = new LlamaForCausalLM(cfg);
    const params = randomLlamaParams(model, 6);
    const dir = join(root, 'qwen2');
    await saveCausalLmDirectory(dir, model, params);
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')))).toEqual(QWEN2_KEYS);
    const { tensors } = await loadSafetensors(join(dir, 'model.safetensors'));
    const want = huggingFaceTensors({ V: 29, E: 32, I: 48, L: 2, H: 4, Hkv: 2, bias: false, qkvBias: true, tied: true });
    expect(shapeSig(Object.entries(tensors).map(([n, t]) => [n, t.shape]))).toEqual(shapeSig(want));
    const back = await loadCausalLmDirectory(dir);
    expect((back.model as LlamaForCausalLM).config).toEqual(cfg);
  });

  it('qwen3: Qwen3Config keys with head_dim, q_norm / k_norm tensors, and a bit-exact round trip', async () => {
    const cfg: LlamaConfig = { ...TINY_LLAMA, model_type: 'qwen3', attention_bias: false, head_dim: 6, tie_word_embeddings: true };
    const model = new LlamaForCausalLM(cfg);
    const params = randomLlamaParams(model, 9);
    const dir = join(root, 'qwen3');
    await saveCausalLmDirectory(dir, model, params);
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(Object.keys(json)).toEqual(QWEN3_KEYS);
    expect(json).toMatchObject({ architectures: ['Qwen3ForCausalLM'], head_dim: 6, attention_bias: false });
    const { tensors } = await loadSafetensors(join(dir, 'model.safetensors'));
    expect(tensors['model.layers.1.self_attn.k_norm.weight'].shape).toEqual([6]);
    expect(tensors['model.layers.0.self_attn.q_proj.weight'].shape).toEqual([24, 32]);
    const back = await loadCausalLmDirectory(dir);
    expect((back.model as LlamaForCausalLM).config).toEqual(cfg);
    for (const [n, v] of params) expect(bits(back.params.get(n) as Float32Array), n).toEqual(bits(v));
  });

  it('reads a hub-style checkpoint: BF16 weights, rotary buffers, an EOS list, lm_head beside a tied head', async () => {
    const cfg: LlamaConfig = { ...TINY_LLAMA, tie_word_embeddings: true, attention_bias: false, num_hidden_layers: 1 };
    const model = new LlamaForCausalLM(cfg);
    const params = randomLlamaParams(model, 7);
    const dir = join(root, 'hub');
    mkdirSync(dir);
    const tensors: Record<string, { dtype: 'BF16' | 'F32'; shape: number[]; data: Uint16Array | Float32Array }> = {};
    for (const p of model.namedParameters())
      tensors[p.name] = { dtype: 'BF16', shape: p.shape, data: f32ToBf16(params.get(p.name) as Float32Array) };
    tensors['lm_head.weight'] = tensors['model.embed_tokens.weight'];
    tensors['model.layers.0.self_attn.rotary_emb.inv_freq'] = { dtype: 'F32', shape: [4], data: Float32Array.of(1, 0.1, 0.01, 0.001) };
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...llamaConfigJson(cfg), eos_token_id: [2, 3], num_key_value_heads: 2 }));
    const back = await loadLlamaDirectory(dir);
    expect(back.config.eos_token_id).toBe(2);
    const w = back.params.get('model.norm.weight') as Float32Array;
    const src = params.get('model.norm.weight') as Float32Array;
    for (let i = 0; i < w.length; i++) expect(Math.abs(w[i] - src[i])).toBeLessThan(Math.abs(src[i]) / 128 + 1e-6);
  });

  it('refuses what it cannot load, naming the file and key', async () => {
    const model = new LlamaForCausalLM(TINY_LLAMA);
    const dir = join(root, 'bad');
    await saveLlamaDirectory(dir, TINY_LLAMA, randomLlamaParams(model, 8), { maxShardBytes: 20_000 });
    const configPath = join(dir, 'config.json');
    const good = readFileSync(configPath, 'utf8');
    const withConfig = (patch: Record<string, unknown>) => writeFileSync(configPath, JSON.stringify({ ...JSON.parse(good), ...patch }));
    withConfig({ rope_scaling: { rope_type: 'llama3', factor: 8 } });
    await expect(loadLlamaDirectory(dir)).rejects.toThrow(/config\.json: rope_scaling: only null is supported/);
    withConfig({ hidden_act: 'gelu' });
    await expect(loadLlamaDirectory(dir)).rejects.toThrow(/hidden_act: only "silu"/);
    withConfig({ num_key_value_heads: 3 });
    await expect(loadLlamaDirectory(dir)).rejects.toThrow(/num_key_value_heads: must divide num_attention_heads/);
    withConfig({ model_type: 'mistral' });
    await expect(loadCausalLmDirectory(dir)).rejects.toThrow(/model_type: must be one of gpt2, llama, qwen2, qwen3/);
    writeFileSync(configPath, good);
    const second = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map[
      'model.layers.1.mlp.up_proj.weight'
    ];
    rmSync(join(dir, second));
    await expect(loadLlamaDirectory(dir)).rejects.toThrow(new RegExp(`shard ${second.replace('.', '\\.')} is missing`));
  });

  it('loadCausalLmDirectory tells GPT-2 from Llama by model_type', async () => {
    const dir = join(root, 'gpt2');
    const gpt2 = new Gpt2LMHeadModel({
      ...GPT2_124M,
      vocab_size: 13,
      n_positions: 8,
      n_embd: 8,
      n_layer: 1,
      n_head: 2,
      bos_token_id: -1,
      eos_token_id: -1,
    });
    await saveCausalLmDirectory(
      dir,
      gpt2,
      new Map(gpt2.namedParameters().map((p) => [p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))])),
    );
    expect((await loadCausalLmDirectory(dir)).model).toBeInstanceOf(Gpt2LMHeadModel);
  });
});
