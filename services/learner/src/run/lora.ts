/**
 * LoRA in fine-tuning runs (a sequence run's or `rlmesh sft`'s `lora` section, r > 0): the policy is
 * init_from's weights, frozen, plus adapters on the named projections (packages/graph lora.ts); the
 * gradient program and AdamW carry only the adapters (and a value head, which has no base to
 * adapt). A checkpoint holds
 *
 *   config.json, the weights, tokenizer   the merged model (W + alpha/r B A), so the evaluator, SFT's
 *                                         evaluation and `transformers` read it as a plain model
 *   adapter/                              the adapters in PEFT's layout (base_model_name_or_path: init_from)
 *   lora_state.safetensors                the trained flat vector and its AdamW moments (resume)
 *
 * and a resumed run re-reads the base from init_from.
 */
import { join } from 'node:path';
import { ConfigError } from '@rlmesh/core';
import { applyLora, isLoraParam, type LoraConfig, loadSafetensors, Rng, savePeftAdapter, saveSafetensors } from '@rlmesh/graph';
import type { Tokenizer } from '@rlmesh/text';
import { saveTokenizer } from '@rlmesh/text';
import type { CausalLm } from '../models/causal-lm';
import type { GradientTrainerState } from '../models/gpt2-step';
import { saveCausalLmDirectory, withConfig } from '../models/hf-causal-lm';

export const LORA_STATE_FILE = 'lora_state.safetensors';
export const ADAPTER_DIR = 'adapter';

export const LORA_SCHEMA = {
  kind: 'section',
  fields: {
    r: { kind: 'int', default: 0, min: 0, max: 4096, doc: '0: train every weight; otherwise the LoRA rank (the base stays frozen)' },
    alpha: { kind: 'number', default: 16, min: 0, exclusiveMin: true, doc: 'the update is scaled by alpha / r' },
    dropout: { kind: 'number', default: 0, min: 0, max: 0.99, doc: "on the adapters' input" },
    target_modules: {
      kind: 'string',
      default: 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj',
      doc: "comma-separated Linear names (PEFT's list form; GPT-2's projections are Conv1D, not adaptable)",
    },
  },
} as const;

/** The LoRA settings of a run, or null when it trains every weight. */
export function loraOf(section: { r: number; alpha: number; dropout: number; target_modules: string }): LoraConfig | null {
  if (section.r === 0) return null;
  const targetModules = section.target_modules
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (targetModules.length === 0) throw new ConfigError('lora.target_modules', 'must name at least one module when lora.r > 0');
  return { r: section.r, alpha: section.alpha, dropout: section.dropout, targetModules };
}

/** The parameters a LoRA run trains: the adapters and a value head. */
export const loraTrained = (name: string): boolean => /\.lora_[AB]\.weight$/.test(name) || name.startsWith('v_head.');

export async function saveLoraState(dir: string, s: GradientTrainerState): Promise<void> {
  const vec = (data: Float32Array) => ({ dtype: 'F32' as const, shape: [data.length], data });
  await saveSafetensors(
    join(dir, LORA_STATE_FILE),
    { params: vec(s.params), exp_avg: vec(s.expAvg), exp_avg_sq: vec(s.expAvgSq) },
    {
      format: 'pt',
      step: String(s.step),
    },
  );
}

/** The trained vector and AdamW state a LoRA checkpoint holds; errors name the file and what is wrong. */
export async function loadLoraState(dir: string, total: number): Promise<GradientTrainerState> {
  const path = join(dir, LORA_STATE_FILE);
  let file: Awaited<ReturnType<typeof loadSafetensors>>;
  try {
    file = await loadSafetensors(path);
  } catch (e) {
    throw new ConfigError('resume', `${path}: ${(e as Error).message} (a LoRA run resumes only from a LoRA run's checkpoint)`);
  }
  const flat = (name: string) => {
    const t = file.tensors[name];
    if (t?.dtype !== 'F32' || t.data.length !== total)
      throw new ConfigError(
        'resume',
        `${path}: ${name} must be F32 with ${total} values (this run's adapters); the checkpoint's lora settings differ`,
      );
    return t.data as Float32Array;
  };
  const step = Number(file.metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new ConfigError('resume', `${path}: metadata step must be an integer >= 0`);
  return { params: flat('params'), expAvg: flat('exp_avg'), expAvgSq: flat('exp_avg_sq'), step };
}

/**
 * A dropout-free copy of `saved` with LoRA adapters on the target projections, and `params` plus
 * the adapters' initial values (A as nn.Linear, B zero; drawn from `seed`).
 */
export function withLora(saved: CausalLm, lora: LoraConfig, params: ReadonlyMap<string, Float32Array>, seed: number) {
  const model = withConfig(saved, { dropout: 0 });
  let names: string[];
  try {
    names = applyLora(model, lora);
  } catch (e) {
    throw new ConfigError('lora.target_modules', (e as Error).message.replace(/^lora\.target_modules: /, ''));
  }
  const out = new Map(params);
  const rng = new Rng(seed);
  for (const p of model.namedParameters()) if (isLoraParam(p.name)) out.set(p.name, p.init(rng));
  return { model, names, params: out };
}

/**
 * A LoRA run's checkpoint (see the file comment): the merged model `merged` as `saved`'s directory
 * with the tokenizer, the adapters among `trained` in PEFT's layout, and the trainer state.
 */
export async function saveLoraCheckpoint(
  dir: string,
  o: {
    saved: CausalLm;
    merged: ReadonlyMap<string, Float32Array>;
    tokenizer: Tokenizer;
    lora: LoraConfig;
    baseModel: string;
    trained: ReadonlyMap<string, Float32Array>;
    state: GradientTrainerState;
  },
): Promise<void> {
  await saveCausalLmDirectory(dir, o.saved, o.merged);
  saveTokenizer(o.tokenizer, dir, { modelMaxLength: o.saved.dims.context });
  await savePeftAdapter(join(dir, ADAPTER_DIR), o.lora, o.baseModel, o.trained);
  await saveLoraState(dir, o.state);
}
