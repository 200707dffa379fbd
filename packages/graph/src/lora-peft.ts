/**
 * LoRA adapters in PEFT's directory layout, so `PeftModel.from_pretrained(base, dir)` loads what
 * rlmesh trains and rlmesh loads what PEFT trains:
 *
 *   adapter_config.json        LoraConfig.to_dict() (sorted keys): r, lora_alpha, lora_dropout,
 *                              target_modules, base_model_name_or_path, peft_type LORA, task_type ...
 *   adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in], .lora_B.weight [out, r]
 *
 * Only plain LoRA is read: rsLoRA, DoRA, per-module rank or alpha patterns, trained biases and
 * modules_to_save change what the adapter computes and are refused by name.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkLoraConfig, isLoraParam, type LoraConfig } from './lora';
import { loadSafetensors, type SafeTensor, saveSafetensors } from './safetensors';

export const PEFT_CONFIG = 'adapter_config.json';
export const PEFT_WEIGHTS = 'adapter_model.safetensors';
/** PeftModelForCausalLM wraps the model as base_model (LoraModel), which holds it as `model`. */
const PREFIX = 'base_model.model.';

/** The PEFT release whose LoraConfig keys adapter_config.json follows. */
const PEFT_VERSION = '0.13.2';

export interface PeftAdapter {
  config: LoraConfig;
  /** The base model's name or path, as the adapter names it (PEFT loads the base from there). */
  baseModel: string;
  /** Adapter weights under rlmesh's (the adapted module's) names: `<module>.lora_A.weight`. */
  params: Map<string, Float32Array>;
}

/** adapter_config.json for `c`: PEFT LoraConfig.to_dict()'s keys, sorted as save_pretrained writes them. */
export function peftAdapterConfig(c: LoraConfig, baseModel: string): Record<string, unknown> {
  const json: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: typeof c.targetModules === 'string' ? c.targetModules : [...c.targetModules].sort(),
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
  return json;
}

/** Writes the adapters among `params` (entries that are not adapters are left out) in PEFT's layout. */
export async function savePeftAdapter(
  dir: string,
  c: LoraConfig,
  baseModel: string,
  params: ReadonlyMap<string, Float32Array>,
): Promise<void> {
  const tensors: Record<string, SafeTensor> = {};
  for (const [name, data] of params) {
    if (!isLoraParam(name)) continue;
    const module = name.replace(/\.lora_[AB]\.weight$/, '');
    const n = data.length / c.r;
    if (!Number.isInteger(n)) throw new Error(`savePeftAdapter: ${name} has ${data.length} values, not a multiple of r = ${c.r}`);
    tensors[`${PREFIX}${name}`] = { dtype: 'F32', shape: name.endsWith('lora_A.weight') ? [c.r, n] : [n, c.r], data };
    if (!params.has(`${module}.lora_${name.endsWith('lora_A.weight') ? 'B' : 'A'}.weight`))
      throw new Error(`savePeftAdapter: ${module} has only one of lora_A and lora_B`);
  }
  if (Object.keys(tensors).length === 0) throw new Error('savePeftAdapter: no adapter weights among the parameters');
  await mkdir(dir, { recursive: true });
  await saveSafetensors(join(dir, PEFT_WEIGHTS), tensors, { format: 'pt' });
  const tmp = join(dir, `${PEFT_CONFIG}.tmp`);
  await writeFile(tmp, `${JSON.stringify({ ...peftAdapterConfig(c, baseModel), peft_version: PEFT_VERSION }, null, 2)}\n`);
  await rename(tmp, join(dir, PEFT_CONFIG));
}

// PEFT settings that change what the adapter computes; only these values are read.
const MUST_BE: Record<string, unknown> = { use_rslora: false, use_dora: false, bias: 'none', fan_in_fan_out: false };
const EMPTY = ['rank_pattern', 'alpha_pattern', 'modules_to_save', 'layers_to_transform', 'layer_replication'];

/** Reads a PEFT LoRA directory; errors name the file and key. */
export async function loadPeftAdapter(dir: string): Promise<PeftAdapter> {
  const path = join(dir, PEFT_CONFIG);
  if (!existsSync(path)) throw new Error(`${dir}: no ${PEFT_CONFIG} (not a PEFT adapter directory)`);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (j.peft_type !== 'LORA') throw new Error(`${path}: peft_type: only "LORA" is supported, got ${JSON.stringify(j.peft_type)}`);
  for (const [k, want] of Object.entries(MUST_BE))
    if (j[k] !== undefined && j[k] !== null && j[k] !== want)
      throw new Error(`${path}: ${k}: only ${JSON.stringify(want)} is supported, got ${JSON.stringify(j[k])}`);
  for (const k of EMPTY) {
    const v = j[k];
    const empty =
      v === undefined || v === null || (Array.isArray(v) ? v.length === 0 : typeof v === 'object' && Object.keys(v).length === 0);
    if (!empty) throw new Error(`${path}: ${k}: is not supported (set it to null or empty), got ${JSON.stringify(v)}`);
  }
  const t = j.target_modules;
  if (!(typeof t === 'string' || (Array.isArray(t) && t.every((m) => typeof m === 'string'))))
    throw new Error(`${path}: target_modules: must be a list of module names or a regular expression, got ${JSON.stringify(t)}`);
  const config: LoraConfig = {
    r: j.r as number,
    alpha: j.lora_alpha as number,
    dropout: (j.lora_dropout as number) ?? 0,
    targetModules: t,
  };
  const peftKey = { r: 'r', alpha: 'lora_alpha', dropout: 'lora_dropout', target_modules: 'target_modules' } as const;
  checkLoraConfig(config, (k) => `${path}: ${peftKey[k]}`);
  const weights = join(dir, PEFT_WEIGHTS);
  if (!existsSync(weights)) throw new Error(`${dir}: no ${PEFT_WEIGHTS} (only safetensors adapters are read)`);
  const params = new Map<string, Float32Array>();
  for (const [name, tensor] of Object.entries((await loadSafetensors(weights)).tensors)) {
    if (!name.startsWith(PREFIX) || !isLoraParam(name))
      throw new Error(`${weights}: unexpected tensor ${name} (not a LoRA weight under ${PREFIX})`);
    if (tensor.dtype !== 'F32') throw new Error(`${weights}: ${name} is ${tensor.dtype}; adapters are read as F32`);
    const [rows, cols] = tensor.shape;
    const rankAxis = name.endsWith('lora_A.weight') ? rows : cols;
    if (tensor.shape.length !== 2 || rankAxis !== config.r)
      throw new Error(
        `${weights}: ${name} has shape [${tensor.shape}], r = ${config.r} implies ${name.endsWith('lora_A.weight') ? `[${config.r}, in]` : `[out, ${config.r}]`}`,
      );
    params.set(name.slice(PREFIX.length), tensor.data as Float32Array);
  }
  return { config, baseModel: typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : '', params };
}
