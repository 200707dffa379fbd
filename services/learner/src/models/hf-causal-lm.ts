/**
 * Any causal LM's Hugging Face directory or published config, by its config.json's model_type:
 * `gpt2` (hf-gpt2.ts) or `llama` / `qwen2` (hf-llama.ts). Code that serves or fine-tunes "a causal
 * LM" (PolicyService Generate, the sequence learner, the evaluator) loads, saves and rebuilds models
 * through these, so a new architecture is one more case here.
 */
import { ConfigError } from '@rlmesh/core';
import type { CausalLm } from './causal-lm';
import { type Gpt2Config, Gpt2LMHeadModel } from './gpt2';
import { gpt2ConfigFromJson, gpt2ConfigJson, loadGpt2Directory, type SaveOptions, saveGpt2Directory } from './hf-gpt2';
import { llamaConfigFromJson, llamaConfigJson, loadLlamaDirectory, type SaveLlamaOptions, saveLlamaDirectory } from './hf-llama';
import { readHfConfig } from './hf-weights';
import { type LlamaConfig, LlamaForCausalLM } from './llama';

/** The model_type values a directory may have. */
export const CAUSAL_LM_TYPES = ['gpt2', 'llama', 'qwen2', 'qwen3'] as const;

function modelType(json: unknown, source: string): string {
  const t = (json as { model_type?: unknown } | null)?.model_type;
  if (typeof t !== 'string' || !(CAUSAL_LM_TYPES as readonly string[]).includes(t))
    throw new ConfigError(`${source}: model_type`, `must be one of ${CAUSAL_LM_TYPES.join(', ')}, got ${JSON.stringify(t)}`);
  return t;
}

/** The model a config.json describes (weights not included). */
export function causalLmFromConfigJson(json: unknown, source: string, valueHead = false): CausalLm {
  return modelType(json, source) === 'gpt2'
    ? new Gpt2LMHeadModel(gpt2ConfigFromJson(json, source, valueHead))
    : new LlamaForCausalLM(llamaConfigFromJson(json, source, valueHead));
}

function known(model: CausalLm): Gpt2LMHeadModel | LlamaForCausalLM {
  if (model instanceof Gpt2LMHeadModel || model instanceof LlamaForCausalLM) return model;
  throw new Error(`${model.constructor.name} has no Hugging Face directory format here`);
}

/** The registered model id (models/index.ts) of `model`'s architecture. */
export function causalLmModelId(model: CausalLm): 'gpt2' | 'llama' {
  return known(model) instanceof Gpt2LMHeadModel ? 'gpt2' : 'llama';
}

/** The config.json key of the context length (errors name it). */
export function causalLmContextKey(model: CausalLm): 'n_positions' | 'max_position_embeddings' {
  return known(model) instanceof Gpt2LMHeadModel ? 'n_positions' : 'max_position_embeddings';
}

/** config.json of `model`. */
export function causalLmConfigJson(model: CausalLm): Record<string, unknown> {
  const m = known(model);
  return m instanceof Gpt2LMHeadModel ? gpt2ConfigJson(m.config) : llamaConfigJson(m.config);
}

const ARCHITECTURE_NAMES: Record<string, string> = { gpt2: 'GPT-2', llama: 'Llama', qwen2: 'Qwen2', qwen3: 'Qwen3' };

/** The architecture's name for people (GPT-2, Llama, Qwen2, Qwen3), by its config.json's model_type. */
export function causalLmArchitecture(model: CausalLm): string {
  const t = String(causalLmConfigJson(model).model_type);
  return ARCHITECTURE_NAMES[t] ?? t;
}

/** The same architecture with `change` applied to its config (dropout off, a value head on). */
export function withConfig(model: CausalLm, change: { dropout?: 0; valueHead?: boolean }): CausalLm {
  const m = known(model);
  if (m instanceof Gpt2LMHeadModel) {
    const c: Gpt2Config = { ...m.config };
    if (change.dropout === 0) Object.assign(c, { embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 });
    if (change.valueHead !== undefined) c.value_head = change.valueHead;
    return new Gpt2LMHeadModel(c);
  }
  const c: LlamaConfig = { ...m.config };
  if (change.dropout === 0) c.attention_dropout = 0;
  if (change.valueHead !== undefined) c.value_head = change.valueHead;
  return new LlamaForCausalLM(c);
}

export interface LoadedCausalLm {
  model: CausalLm;
  params: Map<string, Float32Array>;
  /** Tokenizer files present beside the model. */
  tokenizerFiles: string[];
}

/** Reads a GPT-2, Llama or Qwen2 directory (by config.json's model_type). */
export async function loadCausalLmDirectory(dir: string): Promise<LoadedCausalLm> {
  if (modelType(await readHfConfig(dir), `${dir}/config.json`) === 'gpt2') {
    const { config, params, tokenizerFiles } = await loadGpt2Directory(dir);
    return { model: new Gpt2LMHeadModel(config), params, tokenizerFiles };
  }
  const { config, params, tokenizerFiles } = await loadLlamaDirectory(dir);
  return { model: new LlamaForCausalLM(config), params, tokenizerFiles };
}

/** Writes `model` with `params` as its Hugging Face directory. */
export async function saveCausalLmDirectory(
  dir: string,
  model: CausalLm,
  params: ReadonlyMap<string, Float32Array>,
  opts: SaveOptions & SaveLlamaOptions = {},
): Promise<void> {
  const m = known(model);
  if (m instanceof Gpt2LMHeadModel) await saveGpt2Directory(dir, m.config, params, opts);
  else await saveLlamaDirectory(dir, m.config, params, opts);
}
