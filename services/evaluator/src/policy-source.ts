/**
 * Where the policy under evaluation comes from. A PolicySource turns observations into actions and
 * says which policy it is; a TextPolicySource turns prompts into completions (text envs); the
 * evaluator needs nothing else. openCheckpoint loads either from disk (a file or a GPT-2 directory);
 * the mesh's published versions are loaded by remote-policy.ts. Both run mesh's ActProgram, the
 * runner local-inference actors use, so a policy acts the same here as in training.
 */
import { statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { PolicyRef } from '@rlmesh/core';
import {
  buildActProgram,
  type CausalLm,
  complete,
  encodePrompt,
  Gpt2Generator,
  type LoadedCausalLmCheckpoint,
  loadCausalLmCheckpoint,
  loadPolicyFile,
} from '@rlmesh/learner';
import { ActProgram } from '@rlmesh/mesh';

type Tokenizer = LoadedCausalLmCheckpoint['tokenizer'];

/** The policy failed to act in an entry's environment (another model, observation width, action space or context). */
export class PolicyFitError extends Error {
  constructor(
    readonly entry: string,
    message: string,
  ) {
    super(message);
    this.name = 'PolicyFitError';
  }
}

export interface PolicySource {
  readonly ref: PolicyRef;
  /** Actions for `rows` observations; greedy = argmax / Gaussian mean; seed makes sampling reproducible. */
  act(obs: Float32Array, rows: number, greedy: boolean, seed: number): Promise<Int32Array | Float32Array>;
  close(): Promise<void>;
}

/** A policy run in this process: an act program and one parameter vector. */
export class ProgramPolicy implements PolicySource {
  constructor(
    readonly ref: PolicyRef,
    private readonly program: ActProgram,
    private readonly params: Float32Array,
  ) {}

  async act(obs: Float32Array, rows: number, greedy: boolean, seed: number): Promise<Int32Array | Float32Array> {
    return (await this.program.act(this.params, obs, rows, { greedy, seed })).actions;
  }

  close(): Promise<void> {
    return this.program.release();
  }
}

/**
 * A training checkpoint (checkpoints/update-N.safetensors, written by any mode) or a run's
 * model.safetensors. Both carry the run config in their metadata and the parameters under the
 * model's own names, so the model is rebuilt from the config (as `rlmesh policy act` and a resumed
 * run do) and the parameters are read by name; optimiser state in a training checkpoint is ignored.
 */
export async function checkpointPolicy(path: string, label?: string): Promise<PolicySource> {
  const { cfg, shape, model, params, metadata } = await loadPolicyFile(path);
  const act = buildActProgram(model);
  const flat = act.layout.pack(params);
  const program = await ActProgram.create(act.onnx, shape.distribution);
  const ref: PolicyRef = { checkpoint: path };
  const updates = metadata.counters ? (JSON.parse(metadata.counters) as { updates?: number }).updates : undefined;
  // Versions count from 1 (the initial parameters), one more per update, as the learner numbers them.
  if (typeof updates === 'number') ref.version = updates + 1;
  ref.label = label ?? (typeof updates === 'number' ? `${cfg.run.name} update ${updates}` : `${cfg.run.name} final`);
  return new ProgramPolicy(ref, program, flat);
}

export interface TextCompletionOptions {
  greedy: boolean;
  /** One per prompt: seeds its sampling (unused when greedy). */
  seeds: readonly number[];
  maxNewTokens: number;
}

/** A completion, or why there is none (bytes that are not text); a verifier scores only text. */
export interface TextCompletion {
  text: string | null;
  error?: string;
}

/** A language model that completes text prompts. */
export interface TextPolicySource {
  readonly kind: 'text';
  readonly ref: PolicyRef;
  /** Context length in tokens. */
  readonly contextLength: number;
  /** Prompt tokens, as the model sees them (to check a prompt fits before running a suite). */
  promptTokens(prompt: string): number;
  /** Completes every prompt (in as few decode loops as it likes); results in the prompts' order. */
  complete(prompts: readonly string[], o: TextCompletionOptions): Promise<TextCompletion[]>;
  close(): Promise<void>;
}

export type AnyPolicySource = PolicySource | TextPolicySource;

export const isTextPolicy = (p: AnyPolicySource): p is TextPolicySource => (p as TextPolicySource).kind === 'text';

/** Sampled completions draw from the model's own distribution: temperature 1, no top-k or top-p cut. */
const SAMPLING_TEMPERATURE = 1;

/** A GPT-2 run in this process: Gpt2Generator (KV cache) with its tokenizer, through learner's `complete`. */
export class GeneratorTextPolicy implements TextPolicySource {
  readonly kind = 'text';
  constructor(
    readonly ref: PolicyRef,
    private readonly gen: Gpt2Generator,
    private readonly tokenizer: Tokenizer,
    private readonly eosId: number | null,
  ) {}

  /** Generation stops at the tokenizer's EOS, else config.json's eos_token_id, else only at the token budget. */
  static async open(
    ref: PolicyRef,
    model: CausalLm,
    params: ReadonlyMap<string, Float32Array>,
    tokenizer: Tokenizer,
  ): Promise<GeneratorTextPolicy> {
    const eosId = tokenizer.eosId ?? model.dims.eosTokenId;
    return new GeneratorTextPolicy(ref, await Gpt2Generator.create(model, params), tokenizer, eosId);
  }

  get contextLength(): number {
    return this.gen.model.dims.context;
  }

  promptTokens(prompt: string): number {
    return encodePrompt(this.tokenizer, prompt).length;
  }

  async complete(prompts: readonly string[], o: TextCompletionOptions): Promise<TextCompletion[]> {
    const rows = prompts.map((p, i) => ({ prompt: encodePrompt(this.tokenizer, p), seed: o.seeds[i] }));
    const out = await complete(this.gen, rows, {
      tokenizer: this.tokenizer,
      eosId: this.eosId,
      maxNewTokens: o.maxNewTokens,
      temperature: o.greedy ? 0 : SAMPLING_TEMPERATURE,
    });
    return out.map((c) => (c.text === null ? { text: null, error: c.error } : { text: c.text }));
  }

  close(): Promise<void> {
    return this.gen.release();
  }
}

/**
 * A Hugging Face GPT-2, Llama or Qwen2 directory (config.json, the weights and the tokenizer's
 * files), as `rlmesh sft` writes under runs/<name>/checkpoints/step_<n>/.
 */
export async function checkpointTextPolicy(dir: string, label?: string): Promise<TextPolicySource> {
  let loaded: LoadedCausalLmCheckpoint;
  try {
    loaded = await loadCausalLmCheckpoint(dir, false);
  } catch (e) {
    // The tokenizer's errors name a key inside its files; say whose files they are.
    if ((e as Error).name === 'TokenizerFormatError') throw new Error(`${dir}: its tokenizer cannot be read: ${(e as Error).message}`);
    throw e;
  }
  const { model, params, tokenizer } = loaded;
  const { vocabSize } = model.dims;
  if (tokenizer.vocabSize > vocabSize)
    throw new Error(
      `${dir}: the tokenizer has ${tokenizer.vocabSize} ids, more than the model's vocab_size ${vocabSize}; they were not made for each other`,
    );
  // runs/<name>/checkpoints/step_<n> reads as "<name> step_<n>"; any other directory by its name.
  const parent = dirname(dir);
  const name = basename(parent) === 'checkpoints' ? `${basename(dirname(parent))} ${basename(dir)}` : basename(dir);
  return GeneratorTextPolicy.open({ checkpoint: dir, label: label ?? name }, model, params, tokenizer);
}

/** A checkpoint by path: a directory is a GPT-2 text policy, a file a training checkpoint or model.safetensors. */
export async function openCheckpoint(path: string, label?: string): Promise<AnyPolicySource> {
  return statSync(path).isDirectory() ? checkpointTextPolicy(path, label) : checkpointPolicy(path, label);
}
