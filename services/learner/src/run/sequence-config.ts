/**
 * The run config of RL on token sequences (`rlmesh train` with a text env): fixed sections (run,
 * env, train) and the algorithm's, validated by its registry entry's schema. The policy is the
 * Hugging Face causal-LM directory (GPT-2, Llama, Qwen2) `init_from` names (an `rlmesh sft`
 * checkpoint, with its tokenizer), which is also the frozen reference of a KL term; with `lora.r` > 0
 * its weights stay frozen and only LoRA adapters train (lora.ts).
 */
import { ConfigError, type Infer, isMultiTurn, isTextEnv, makeTextEnv, type Schema, type SequenceSampling, validate } from '@rlmesh/core';
import '@rlmesh/envs';
import '../algorithms';
import { sequenceAlgorithmSpec } from '../registry';
import { RUN_SCHEMA } from './config';
import { LORA_SCHEMA, loraOf } from './lora';

export const SEQUENCE_RUN_SCHEMA = {
  run: {
    kind: 'section',
    fields: {
      name: { kind: 'string', default: 'run' },
      seed: { kind: 'int', default: 0, min: 0, max: 2 ** 31 - 1, doc: 'the prompts drawn and the sampling of completions' },
      out_dir: { kind: 'string', default: 'runs' },
    },
  },
  env: {
    kind: 'section',
    fields: {
      id: { kind: 'string', default: 'CardRules' },
      options: { kind: 'open', doc: "the text environment's own options, checked by its schema" },
      max_turns: {
        kind: 'int',
        default: 0,
        min: 0,
        max: 65_536,
        doc: "multi-turn envs: policy turns per episode at most (the env's max_episode_steps applies too); 0: the env's limit only",
      },
    },
  },
  init_from: {
    kind: 'string',
    default: '',
    doc: 'a Hugging Face GPT-2, Llama or Qwen2 directory with its tokenizer (rlmesh sft writes them)',
  },
  algo: { kind: 'open', doc: 'name plus the algorithm options' },
  lora: LORA_SCHEMA,
  train: {
    kind: 'section',
    fields: {
      total_updates: { kind: 'int', default: 100, min: 1, doc: 'rollouts, each trained on once (with num_iterations optimizer steps)' },
      checkpoint_every: { kind: 'int', default: 0, min: 0, doc: 'updates between checkpoints; 0 = only at the end' },
      threads: { kind: 'int', default: 2, min: 1, max: 64 },
      success_window: { kind: 'int', default: 10, min: 1, doc: 'updates averaged for the reported success rate' },
      gradient_checkpointing: {
        kind: 'bool',
        default: false,
        doc: "recompute each decoder layer's activations in the backward pass (llama; less memory, about 10% more time)",
      },
    },
  },
  // The same settings as a numeric run's; text actors always generate through the policy service.
  mesh: RUN_SCHEMA.mesh,
} as const satisfies Schema;

type Base = Infer<typeof SEQUENCE_RUN_SCHEMA>;

export interface SequenceRunConfig extends Omit<Base, 'algo'> {
  algo: { name: string } & Record<string, unknown>;
}

/** Whether a raw config trains on a text env, so that `rlmesh train` hands it to the sequence run. */
export function isSequenceRunConfig(raw: unknown): boolean {
  const id = (raw as { env?: { id?: unknown } } | null)?.env?.id;
  return typeof id === 'string' && isTextEnv(id);
}

/**
 * Validates a sequence run config; ConfigError names the first bad key. `env: false` skips the env
 * section's check, for rollouts that come from elsewhere (an archive's windows).
 */
export function parseSequenceRunConfig(raw: unknown, opts: { env?: boolean } = {}): SequenceRunConfig {
  const base = validate(SEQUENCE_RUN_SCHEMA, raw);
  if (opts.env !== false) {
    const env = makeTextEnv(base.env.id, base.env.options);
    if (base.env.max_turns > 0 && !isMultiTurn(env))
      throw new ConfigError('env.max_turns', `is for multi-turn text envs; ${base.env.id} scores one completion per episode`);
  }
  if (base.init_from === '')
    throw new ConfigError('init_from', 'must name a Hugging Face causal-LM directory with its tokenizer (an rlmesh sft checkpoint)');
  const { name = 'grpo', ...rest } = base.algo;
  if (typeof name !== 'string') throw new ConfigError('algo.name', `must be a string, got ${JSON.stringify(name)}`);
  const spec = sequenceAlgorithmSpec(name);
  loraOf(base.lora);
  const algoCfg = validate(spec.config, rest, 'algo');
  spec.check?.(algoCfg);
  if (base.mesh.inference !== 'central')
    throw new ConfigError('mesh.inference', 'must be central for a text env: its actors generate through the policy service');
  if (base.mesh.capture_hooks !== '')
    throw new ConfigError('mesh.capture_hooks', 'is for numeric runs; capture a text policy with rlmesh sae capture --data');
  if (!/^[\w.-]+$/.test(base.run.name))
    throw new ConfigError('run.name', `must be a plain directory name, got ${JSON.stringify(base.run.name)}`);
  return { ...base, algo: { name, ...algoCfg } };
}

/** How a run's actors sample completions: the algorithm's settings, prompts per update and the tokenizer's EOS. */
export function sequenceSampling(cfg: SequenceRunConfig, eosTokenId: number): SequenceSampling & { promptsPerUpdate: number } {
  const { name, ...rest } = cfg.algo;
  return { ...sequenceAlgorithmSpec(name).sampling(rest as never), eosTokenId };
}
