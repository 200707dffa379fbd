/**
 * GPT-2 checkpoints as Hugging Face directories: `config.json` (GPT2Config's keys) and
 * `model.safetensors` holding what `GPT2LMHeadModel.save_pretrained` writes: every parameter under
 * its state_dict name, without the tied `lm_head.weight` (it is `transformer.wte.weight`) and
 * without the attention mask buffers (`attn.bias`, `attn.masked_bias`, non-persistent in current
 * transformers). `from_pretrained` reads that directory as it reads its own.
 *
 * Reading also takes what older or hub checkpoints hold: names without the `transformer.` prefix
 * (OpenAI's converted `gpt2`), the mask buffers (ignored), `lm_head.weight` (checked to be the
 * embedding), F16/BF16/F64 tensors (converted to float32). A value head, which GPT2LMHeadModel does
 * not have, goes beside the model in `value_head.safetensors` (TRL's names, `v_head.summary.*`).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, validate } from '@rlmesh/core';
import { loadSafetensors, type SafeTensor, saveSafetensors } from '@rlmesh/graph';
import { checkGpt2Config, GPT2_OPTIONS, type Gpt2Config, Gpt2LMHeadModel } from './gpt2';
import { asFloat32, HF_WEIGHTS, readHfWeights } from './hf-weights';

export { HF_WEIGHTS } from './hf-weights';

export const HF_CONFIG = 'config.json';
export const VALUE_HEAD_WEIGHTS = 'value_head.safetensors';

/** The transformers release whose GPT2Config this file's keys follow (written as transformers_version). */
const TRANSFORMERS_VERSION = '4.46.0';

const none = (id: number) => (id < 0 ? null : id);

/** config.json for `c`: GPT2Config.to_dict()'s keys, in its sorted order. */
export function gpt2ConfigJson(c: Gpt2Config): Record<string, unknown> {
  const json: Record<string, unknown> = {
    activation_function: c.activation_function,
    architectures: ['GPT2LMHeadModel'],
    attn_pdrop: c.attn_pdrop,
    bos_token_id: none(c.bos_token_id),
    embd_pdrop: c.embd_pdrop,
    eos_token_id: none(c.eos_token_id),
    initializer_range: c.initializer_range,
    layer_norm_epsilon: c.layer_norm_epsilon,
    model_type: 'gpt2',
    n_ctx: c.n_positions,
    n_embd: c.n_embd,
    n_head: c.n_head,
    n_inner: c.n_inner === 0 ? null : c.n_inner,
    n_layer: c.n_layer,
    n_positions: c.n_positions,
    reorder_and_upcast_attn: false,
    resid_pdrop: c.resid_pdrop,
    scale_attn_by_inverse_layer_idx: false,
    scale_attn_weights: true,
    summary_activation: null,
    summary_first_dropout: 0.1,
    summary_proj_to_labels: true,
    summary_type: 'cls_index',
    summary_use_proj: true,
    torch_dtype: 'float32',
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    vocab_size: c.vocab_size,
  };
  if (c.pad_token_id >= 0) json.pad_token_id = c.pad_token_id;
  return json;
}

// GPT2Config switches this model does not implement: a checkpoint that sets them computes something else.
const MUST_BE: Record<string, unknown> = {
  scale_attn_weights: true,
  scale_attn_by_inverse_layer_idx: false,
  add_cross_attention: false,
};

/** A GPT2Config dict (config.json) as a model config; errors name `<source>: <key>`. */
export function gpt2ConfigFromJson(json: unknown, source = HF_CONFIG, valueHead = false): Gpt2Config {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(source, 'must be a JSON object');
  const j = json as Record<string, unknown>;
  if (j.model_type !== 'gpt2') throw new ConfigError(`${source}: model_type`, `must be "gpt2", got ${JSON.stringify(j.model_type)}`);
  for (const [k, want] of Object.entries(MUST_BE)) {
    if (j[k] !== undefined && j[k] !== want)
      throw new ConfigError(`${source}: ${k}`, `only ${want} is supported, got ${JSON.stringify(j[k])}`);
  }
  const take: Record<string, unknown> = {};
  for (const k of Object.keys(GPT2_OPTIONS)) if (k !== 'value_head' && j[k] !== undefined && j[k] !== null) take[k] = j[k];
  for (const k of ['n_positions', 'n_embd', 'n_layer', 'n_head', 'vocab_size']) {
    if (take[k] === undefined) throw new ConfigError(`${source}: ${k}`, 'is required');
  }
  // Older configs carry n_ctx beside n_positions; both name the context length.
  if (j.n_ctx !== undefined && j.n_ctx !== null && j.n_ctx !== j.n_positions)
    throw new ConfigError(`${source}: n_ctx`, `must equal n_positions (${j.n_positions}), got ${JSON.stringify(j.n_ctx)}`);
  const c = validate(GPT2_OPTIONS, { ...take, value_head: valueHead }, source);
  checkGpt2Config(c, source);
  return c;
}

/** State_dict names and shapes of GPT2LMHeadModel's model.safetensors for `c`, in state_dict order. */
export function gpt2TensorShapes(c: Gpt2Config): Array<[string, number[]]> {
  return new Gpt2LMHeadModel({ ...c, value_head: false }).namedParameters().map((p) => [p.name, p.shape]);
}

/** The tokenizer files a Hugging Face GPT-2 directory may hold beside the model (written by the tokenizer's own code). */
export const HF_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'];

export interface SaveOptions {
  /** More files for the directory by name (the tokenizer's), written as given. */
  files?: Record<string, string | Uint8Array>;
}

/**
 * Writes `dir`/config.json and model.safetensors (and value_head.safetensors with a value head), plus
 * `opts.files` (tokenizer files), so that `from_pretrained(dir)` loads model and tokenizer.
 */
export async function saveGpt2Directory(
  dir: string,
  config: Gpt2Config,
  params: ReadonlyMap<string, Float32Array>,
  opts: SaveOptions = {},
): Promise<void> {
  for (const name of Object.keys(opts.files ?? {})) {
    if (!/^[\w.-]+$/.test(name) || name.startsWith('.') || [HF_CONFIG, HF_WEIGHTS, VALUE_HEAD_WEIGHTS].includes(name))
      throw new Error(`saveGpt2Directory: file name ${JSON.stringify(name)} must be a plain name other than the model's own files`);
  }
  const model = new Gpt2LMHeadModel(config);
  const lm: Record<string, SafeTensor> = {};
  const head: Record<string, SafeTensor> = {};
  for (const p of model.namedParameters()) {
    const data = params.get(p.name);
    if (!data) throw new Error(`saveGpt2Directory: no value for parameter ${p.name}`);
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`saveGpt2Directory: ${p.name} has ${data.length} values, its shape [${p.shape}] holds ${n}`);
    (p.name.startsWith('v_head.') ? head : lm)[p.name] = { dtype: 'F32', shape: p.shape, data };
  }
  await mkdir(dir, { recursive: true });
  await saveSafetensors(join(dir, HF_WEIGHTS), lm, { format: 'pt' });
  if (config.value_head) await saveSafetensors(join(dir, VALUE_HEAD_WEIGHTS), head, { format: 'pt' });
  else await rm(join(dir, VALUE_HEAD_WEIGHTS), { force: true });
  for (const [name, body] of Object.entries(opts.files ?? {})) await writeFile(join(dir, name), body);
  const tmp = join(dir, `${HF_CONFIG}.tmp`);
  await writeFile(tmp, `${JSON.stringify(gpt2ConfigJson(config), null, 2)}\n`);
  await rename(tmp, join(dir, HF_CONFIG));
}

const IGNORED = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;

/** Reads a GPT-2 directory into a config and parameters under rlmesh's (= GPT2LMHeadModel's) names. */
export async function loadGpt2Directory(
  dir: string,
): Promise<{ config: Gpt2Config; params: Map<string, Float32Array>; tokenizerFiles: string[] }> {
  const configPath = join(dir, HF_CONFIG);
  if (!existsSync(configPath)) throw new Error(`${dir}: no ${HF_CONFIG} (not a Hugging Face model directory)`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new Error(`${configPath}: not valid JSON (${(e as Error).message})`);
  }
  const headPath = join(dir, VALUE_HEAD_WEIGHTS);
  const config = gpt2ConfigFromJson(json, configPath, existsSync(headPath));
  const weightsPath = join(dir, HF_WEIGHTS);
  const { tensors } = await readHfWeights(dir);
  if (config.value_head) Object.assign(tensors, (await loadSafetensors(headPath)).tensors);

  const expected = new Gpt2LMHeadModel(config).namedParameters();
  const params = new Map<string, Float32Array>();
  const used = new Set<string>();
  for (const p of expected) {
    const alias = p.name.replace(/^transformer\./, '');
    const name = p.name in tensors ? p.name : alias in tensors ? alias : null;
    if (!name) throw new Error(`${weightsPath}: tensor ${p.name} is missing`);
    const t = tensors[name];
    if (t.shape.join(',') !== p.shape.join(','))
      throw new Error(`${weightsPath}: tensor ${name} has shape [${t.shape.join(',')}], config.json implies [${p.shape.join(',')}]`);
    params.set(p.name, Float32Array.from(asFloat32(t, `${weightsPath}: ${name}`)));
    used.add(name);
  }
  const wte = params.get('transformer.wte.weight') as Float32Array;
  for (const [name, t] of Object.entries(tensors)) {
    if (used.has(name) || IGNORED.test(name)) continue;
    if (name === 'lm_head.weight') {
      const head = asFloat32(t, `${weightsPath}: ${name}`);
      if (head.length !== wte.length || head.some((v, i) => v !== wte[i]))
        throw new Error(
          `${weightsPath}: lm_head.weight differs from transformer.wte.weight; GPT-2's head is tied, an untied one is not supported`,
        );
      continue;
    }
    throw new Error(`${weightsPath}: unexpected tensor ${name} (not part of GPT2LMHeadModel)`);
  }
  return { config, params, tokenizerFiles: HF_TOKENIZER_FILES.filter((f) => existsSync(join(dir, f))) };
}
