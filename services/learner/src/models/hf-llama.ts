/**
 * Llama, Qwen2 and Qwen3 checkpoints as Hugging Face directories: `config.json` (LlamaConfig's,
 * Qwen2Config's or Qwen3Config's keys, sorted, as to_json_string writes them), `generation_config.json`, and the
 * weights as `LlamaForCausalLM.save_pretrained` writes them (hf-weights.ts: one model.safetensors or
 * shards with model.safetensors.index.json): every parameter under its state_dict name, without
 * `lm_head.weight` when the head is tied. `from_pretrained` reads the directory as it reads its own.
 *
 * Reading also takes hub checkpoints: F16/BF16 weights (as float32), `rotary_emb.inv_freq` buffers
 * (ignored: recomputed from rope_theta), `lm_head.weight` beside a tied head (checked to equal the
 * embedding), an eos/bos list (its first id). A value head goes beside the model in
 * `value_head.safetensors` (TRL's names), as for GPT-2.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, validate } from '@rlmesh/core';
import { loadSafetensors, type SafeTensor, saveSafetensors } from '@rlmesh/graph';
import { HF_CONFIG, HF_TOKENIZER_FILES, VALUE_HEAD_WEIGHTS } from './hf-gpt2';
import {
  asFloat32,
  DEFAULT_MAX_SHARD_BYTES,
  HF_WEIGHTS,
  HF_WEIGHTS_INDEX,
  readHfConfig,
  readHfWeights,
  writeHfWeights,
} from './hf-weights';
import { checkLlamaConfig, LLAMA_OPTIONS, type LlamaConfig, LlamaForCausalLM, llamaHeads } from './llama';

export const HF_GENERATION_CONFIG = 'generation_config.json';

/** The transformers release whose config keys this file follows (written as transformers_version). */
const TRANSFORMERS_VERSION = '4.46.0';

const none = (id: number) => (id < 0 ? null : id);

/** config.json for `c`: LlamaConfig.to_dict()'s keys (Qwen2Config's or Qwen3Config's for those model types), sorted. */
export function llamaConfigJson(c: LlamaConfig): Record<string, unknown> {
  const { kvHeads, headDim } = llamaHeads(c);
  const common: Record<string, unknown> = {
    attention_dropout: c.attention_dropout,
    bos_token_id: none(c.bos_token_id),
    eos_token_id: none(c.eos_token_id),
    hidden_act: 'silu',
    hidden_size: c.hidden_size,
    initializer_range: c.initializer_range,
    intermediate_size: c.intermediate_size,
    max_position_embeddings: c.max_position_embeddings,
    model_type: c.model_type,
    num_attention_heads: c.num_attention_heads,
    num_hidden_layers: c.num_hidden_layers,
    num_key_value_heads: kvHeads,
    rms_norm_eps: c.rms_norm_eps,
    rope_scaling: null,
    rope_theta: c.rope_theta,
    tie_word_embeddings: c.tie_word_embeddings,
    torch_dtype: 'float32',
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: c.vocab_size,
  };
  const qwen = { max_window_layers: c.num_hidden_layers, sliding_window: null, use_sliding_window: false };
  const own: Record<string, unknown> =
    c.model_type === 'qwen2'
      ? { architectures: ['Qwen2ForCausalLM'], ...qwen }
      : c.model_type === 'qwen3'
        ? { architectures: ['Qwen3ForCausalLM'], attention_bias: c.attention_bias, head_dim: headDim, ...qwen }
        : {
            architectures: ['LlamaForCausalLM'],
            attention_bias: c.attention_bias,
            head_dim: headDim,
            mlp_bias: c.mlp_bias,
            pretraining_tp: 1,
          };
  if (c.pad_token_id >= 0) own.pad_token_id = c.pad_token_id;
  const json = { ...common, ...own };
  return Object.fromEntries(
    Object.keys(json)
      .sort()
      .map((k) => [k, json[k]]),
  );
}

// Config values this model does not implement: a checkpoint that sets them computes something else.
const MUST_BE: Record<string, unknown> = { hidden_act: 'silu', rope_scaling: null, pretraining_tp: 1, use_sliding_window: false };

/** A token id, or the first of a list (Llama 3 lists several EOS ids; the first is the one written). */
function tokenId(v: unknown, key: string, source: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const id = Array.isArray(v) ? v[0] : v;
  if (!Number.isInteger(id)) throw new ConfigError(`${source}: ${key}`, `must be a token id or a list of them, got ${JSON.stringify(v)}`);
  return id as number;
}

/** A LlamaConfig or Qwen2Config dict (config.json) as a model config; errors name `<source>: <key>`. */
export function llamaConfigFromJson(json: unknown, source = HF_CONFIG, valueHead = false): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(source, 'must be a JSON object');
  const j = json as Record<string, unknown>;
  if (j.model_type !== 'llama' && j.model_type !== 'qwen2' && j.model_type !== 'qwen3')
    throw new ConfigError(`${source}: model_type`, `must be "llama", "qwen2" or "qwen3", got ${JSON.stringify(j.model_type)}`);
  for (const [k, want] of Object.entries(MUST_BE)) {
    if (j[k] !== undefined && j[k] !== want)
      throw new ConfigError(`${source}: ${k}`, `only ${JSON.stringify(want)} is supported, got ${JSON.stringify(j[k])}`);
  }
  const take: Record<string, unknown> = {};
  for (const k of Object.keys(LLAMA_OPTIONS)) if (k !== 'value_head' && j[k] !== undefined && j[k] !== null) take[k] = j[k];
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id']) {
    const id = tokenId(j[k], k, source);
    if (id === undefined) delete take[k];
    else take[k] = id;
  }
  // Qwen2 has no attention_bias key (its q/k/v biases are part of the architecture) and no head_dim.
  if (j.model_type === 'qwen2') delete take.attention_bias;
  if (take.head_dim === undefined && Number.isInteger(j.hidden_size) && Number.isInteger(j.num_attention_heads))
    take.head_dim = Math.floor((j.hidden_size as number) / (j.num_attention_heads as number));
  for (const k of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size']) {
    if (take[k] === undefined) throw new ConfigError(`${source}: ${k}`, 'is required');
  }
  const c = validate(LLAMA_OPTIONS, { ...take, value_head: valueHead }, source);
  checkLlamaConfig(c, source);
  return c;
}

export interface SaveLlamaOptions {
  /** More files for the directory by name (the tokenizer's), written as given. */
  files?: Record<string, string | Uint8Array>;
  /** Shard the weights past this many bytes (save_pretrained's max_shard_size); default 5 GB. */
  maxShardBytes?: number;
}

const OWN_FILES = [HF_CONFIG, HF_GENERATION_CONFIG, HF_WEIGHTS, HF_WEIGHTS_INDEX, VALUE_HEAD_WEIGHTS];

/** Writes config.json, generation_config.json and the weights (sharded past opts.maxShardBytes), plus opts.files. */
export async function saveLlamaDirectory(
  dir: string,
  config: LlamaConfig,
  params: ReadonlyMap<string, Float32Array>,
  opts: SaveLlamaOptions = {},
): Promise<void> {
  for (const name of Object.keys(opts.files ?? {})) {
    if (!/^[\w.-]+$/.test(name) || name.startsWith('.') || OWN_FILES.includes(name) || /^model-\d/.test(name))
      throw new Error(`saveLlamaDirectory: file name ${JSON.stringify(name)} must be a plain name other than the model's own files`);
  }
  const lm: Array<[string, SafeTensor]> = [];
  const head: Record<string, SafeTensor> = {};
  for (const p of new LlamaForCausalLM(config).namedParameters()) {
    const data = params.get(p.name);
    if (!data) throw new Error(`saveLlamaDirectory: no value for parameter ${p.name}`);
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`saveLlamaDirectory: ${p.name} has ${data.length} values, its shape [${p.shape}] holds ${n}`);
    const t: SafeTensor = { dtype: 'F32', shape: p.shape, data };
    if (p.name.startsWith('v_head.')) head[p.name] = t;
    else lm.push([p.name, t]);
  }
  await mkdir(dir, { recursive: true });
  await writeHfWeights(dir, lm, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  if (config.value_head) await saveSafetensors(join(dir, VALUE_HEAD_WEIGHTS), head, { format: 'pt' });
  else await rm(join(dir, VALUE_HEAD_WEIGHTS), { force: true });
  for (const [name, body] of Object.entries(opts.files ?? {})) await writeFile(join(dir, name), body);
  const generation = {
    _from_model_config: true,
    bos_token_id: none(config.bos_token_id),
    eos_token_id: none(config.eos_token_id),
    transformers_version: TRANSFORMERS_VERSION,
  };
  await writeFile(join(dir, HF_GENERATION_CONFIG), `${JSON.stringify(generation, null, 2)}\n`);
  const tmp = join(dir, `${HF_CONFIG}.tmp`);
  await writeFile(tmp, `${JSON.stringify(llamaConfigJson(config), null, 2)}\n`);
  await rename(tmp, join(dir, HF_CONFIG));
}

const IGNORED = /^model\.(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$/;

/** Reads a Llama / Qwen2 directory (single or sharded weights) into a config and parameters under HF's names. */
export async function loadLlamaDirectory(
  dir: string,
): Promise<{ config: LlamaConfig; params: Map<string, Float32Array>; tokenizerFiles: string[] }> {
  const headPath = join(dir, VALUE_HEAD_WEIGHTS);
  const config = llamaConfigFromJson(await readHfConfig(dir), join(dir, HF_CONFIG), existsSync(headPath));
  const { tensors, fileOf } = await readHfWeights(dir);
  if (config.value_head) Object.assign(tensors, (await loadSafetensors(headPath)).tensors);
  const params = new Map<string, Float32Array>();
  for (const p of new LlamaForCausalLM(config).namedParameters()) {
    const t = tensors[p.name];
    if (!t) throw new Error(`${dir}: tensor ${p.name} is missing`);
    if (t.shape.join(',') !== p.shape.join(','))
      throw new Error(`${fileOf(p.name)}: tensor ${p.name} has shape [${t.shape.join(',')}], config.json implies [${p.shape.join(',')}]`);
    params.set(p.name, Float32Array.from(asFloat32(t, `${fileOf(p.name)}: ${p.name}`)));
  }
  const embed = params.get('model.embed_tokens.weight') as Float32Array;
  for (const [name, t] of Object.entries(tensors)) {
    if (params.has(name) || IGNORED.test(name)) continue;
    if (name === 'lm_head.weight' && config.tie_word_embeddings) {
      const w = asFloat32(t, `${fileOf(name)}: ${name}`);
      if (w.length !== embed.length || w.some((v, i) => v !== embed[i]))
        throw new Error(
          `${fileOf(name)}: lm_head.weight differs from model.embed_tokens.weight, but config.json ties them (tie_word_embeddings)`,
        );
      continue;
    }
    throw new Error(`${fileOf(name)}: unexpected tensor ${name} (not part of ${llamaConfigJson(config).architectures})`);
  }
  return { config, params, tokenizerFiles: HF_TOKENIZER_FILES.filter((f) => existsSync(join(dir, f))) };
}
