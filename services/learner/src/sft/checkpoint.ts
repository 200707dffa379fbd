/**
 * SFT checkpoints are Hugging Face causal-LM directories (GPT-2, Llama, Qwen2): config.json, the
 * weights and the tokenizer's files, so `AutoModelForCausalLM.from_pretrained(dir)` and
 * `AutoTokenizer.from_pretrained(dir)` load them as they are. To resume, two more files sit beside them (transformers ignores both):
 *
 *   optimizer.safetensors  AdamW's exp_avg and exp_avg_sq, flat in the parameters' state_dict order
 *   trainer_state.json     the updates taken (which fixes the next micro-batch and the learning rate)
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSafetensors, ParamLayout, saveSafetensors } from '@rlmesh/graph';
import { loadTokenizer, saveTokenizer, type Tokenizer } from '@rlmesh/text';
import type { CausalLm } from '../models/causal-lm';
import { type Gpt2Config, Gpt2LMHeadModel } from '../models/gpt2';
import { loadCausalLmDirectory, saveCausalLmDirectory } from '../models/hf-causal-lm';
import type { SftTrainerState } from './step';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';

export interface SftTrainerStateJson {
  /** Updates taken. */
  step: number;
  /** Updates the run was set to take when this was written. */
  total_steps: number;
  /** The run config's seed (the data order depends on it). */
  seed: number;
}

/** Writes `model`'s Hugging Face directory with the tokenizer, the AdamW state and trainer_state.json. */
export async function saveCausalLmCheckpoint(
  dir: string,
  model: CausalLm,
  tokenizer: Tokenizer,
  state: SftTrainerState,
  info: Omit<SftTrainerStateJson, 'step'>,
): Promise<void> {
  const layout = new ParamLayout(model);
  await saveCausalLmDirectory(dir, model, layout.unpack(state.params));
  saveTokenizer(tokenizer, dir, { modelMaxLength: model.dims.context });
  await saveSafetensors(
    join(dir, OPTIMIZER_FILE),
    {
      exp_avg: { dtype: 'F32', shape: [state.expAvg.length], data: state.expAvg },
      exp_avg_sq: { dtype: 'F32', shape: [state.expAvgSq.length], data: state.expAvgSq },
    },
    { format: 'pt' },
  );
  const json: SftTrainerStateJson = { step: state.step, ...info };
  await writeFile(join(dir, TRAINER_STATE_FILE), `${JSON.stringify(json, null, 2)}\n`);
}

export async function saveSftCheckpoint(
  dir: string,
  config: Gpt2Config,
  tokenizer: Tokenizer,
  state: SftTrainerState,
  info: Omit<SftTrainerStateJson, 'step'>,
): Promise<void> {
  await saveCausalLmCheckpoint(dir, new Gpt2LMHeadModel(config), tokenizer, state, info);
}

export interface LoadedCausalLmCheckpoint {
  /** The directory's model (its config as saved, dropout included). */
  model: CausalLm;
  params: Map<string, Float32Array>;
  tokenizer: Tokenizer;
  /** Present when the directory was written by an SFT run (optimizer.safetensors and trainer_state.json). */
  trainer?: { state: SftTrainerState; info: SftTrainerStateJson };
}

export interface LoadedSftCheckpoint extends Omit<LoadedCausalLmCheckpoint, 'model'> {
  config: Gpt2Config;
}

/** Reads any GPT-2, Llama or Qwen2 directory with a tokenizer; the optimizer state too when `resumable` (then it must be there). */
export async function loadCausalLmCheckpoint(dir: string, resumable: boolean): Promise<LoadedCausalLmCheckpoint> {
  const { model, params, tokenizerFiles } = await loadCausalLmDirectory(dir);
  if (tokenizerFiles.length === 0) throw new Error(`${dir}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)`);
  const tokenizer = loadTokenizer(dir);
  if (!resumable) return { model, params, tokenizer };
  for (const f of [OPTIMIZER_FILE, TRAINER_STATE_FILE])
    if (!existsSync(join(dir, f))) throw new Error(`${dir}: no ${f}; only a checkpoint written by an SFT run can be resumed`);
  const info = JSON.parse(await readFile(join(dir, TRAINER_STATE_FILE), 'utf8')) as SftTrainerStateJson;
  if (!Number.isInteger(info.step) || info.step < 0) throw new Error(`${join(dir, TRAINER_STATE_FILE)}: step must be an integer >= 0`);
  const { tensors } = await loadSafetensors(join(dir, OPTIMIZER_FILE));
  const layout = new ParamLayout(model);
  const flat = (name: string) => {
    const t = tensors[name];
    if (t?.dtype !== 'F32' || t.data.length !== layout.total)
      throw new Error(`${join(dir, OPTIMIZER_FILE)}: ${name} must be F32 with ${layout.total} values`);
    return t.data as Float32Array;
  };
  return {
    model,
    params,
    tokenizer,
    trainer: { state: { params: layout.pack(params), expAvg: flat('exp_avg'), expAvgSq: flat('exp_avg_sq'), step: info.step }, info },
  };
}

/** loadCausalLmCheckpoint for callers that take GPT-2 only (SFT's model section, GPT-2 capture). */
export async function loadSftCheckpoint(dir: string, resumable: boolean): Promise<LoadedSftCheckpoint> {
  const { model, ...rest } = await loadCausalLmCheckpoint(dir, resumable);
  if (!(model instanceof Gpt2LMHeadModel))
    throw new Error(`${dir}: a GPT-2 directory is needed here; its config.json describes ${model.constructor.name}`);
  return { ...rest, config: model.config };
}
