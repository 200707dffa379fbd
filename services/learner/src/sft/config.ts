/**
 * The SFT run config: what `rlmesh sft <config.yaml>` reads. One schema; the type is derived from it
 * and defaults live only here. The `model` section is GPT-2's own option schema (GPT2Config's keys),
 * so it is also the body of the config.json a checkpoint holds.
 */
import { ConfigError, type Infer, type Schema, validate } from '@rlmesh/core';
import { GPT2_OPTIONS } from '../models/gpt2';
import { LORA_SCHEMA, loraOf } from '../run/lora';

export const SFT_SCHEMA = {
  run: {
    kind: 'section',
    fields: {
      name: { kind: 'string', default: 'sft' },
      seed: { kind: 'int', default: 0, min: 0, max: 2 ** 31 - 1, doc: 'initial weights and the order of the training examples' },
      out_dir: { kind: 'string', default: 'runs', doc: 'the run writes out_dir/name/' },
    },
  },
  data: {
    kind: 'section',
    fields: {
      dir: { kind: 'string', default: '', doc: 'directory the file names below are relative to (rlmesh data cards --out)' },
      train: { kind: 'string', default: 'train.jsonl', doc: 'prompt/completion JSONL trained on' },
      eval: {
        kind: 'string',
        default: 'val.jsonl',
        doc: 'comma-separated JSONL files evaluated (loss and exact match), each logged under its name without .jsonl',
      },
      max_length: { kind: 'int', default: 0, min: 0, doc: 'tokens per example, EOS included; 0 = the model context (n_positions)' },
      overflow: {
        kind: 'string',
        default: 'refuse',
        oneOf: ['refuse', 'truncate'],
        doc: 'an example over max_length: refuse the dataset (the error names file and line), or keep its first max_length tokens',
      },
      max_train_examples: { kind: 'int', default: 0, min: 0, doc: 'use the first N training examples; 0 = all' },
      max_eval_examples: { kind: 'int', default: 500, min: 0, doc: 'use the first N of each eval file; 0 = all' },
    },
  },
  tokenizer: {
    kind: 'section',
    fields: {
      kind: {
        kind: 'string',
        default: 'bpe',
        oneOf: ['bpe', 'gpt2', 'dir'],
        doc: "bpe: train a byte-level BPE on the training prompts and completions; gpt2: GPT-2's own; dir: load path",
      },
      vocab_size: { kind: 'int', default: 512, min: 259, max: 1_000_000, doc: 'bpe: special tokens + 256 bytes + merges' },
      min_frequency: { kind: 'int', default: 2, min: 1, doc: 'bpe: a pair seen fewer times is never merged' },
      path: { kind: 'string', default: '', doc: 'dir: a Hugging Face tokenizer directory' },
    },
  },
  init_from: {
    kind: 'string',
    default: '',
    doc: 'a Hugging Face GPT-2, Llama or Qwen2 directory to fine-tune (its config.json replaces the model section, its tokenizer is used)',
  },
  model: { kind: 'section', fields: GPT2_OPTIONS, doc: "GPT2Config's keys; vocab_size 0 takes the tokenizer's" },
  lora: LORA_SCHEMA,
  train: {
    kind: 'section',
    fields: {
      epochs: { kind: 'int', default: 1, min: 1, max: 100_000, doc: 'passes over the training set' },
      max_steps: { kind: 'int', default: 0, min: 0, doc: 'optimizer updates; when > 0 it replaces epochs (the data repeats as needed)' },
      micro_batch_size: { kind: 'int', default: 16, min: 1, max: 65_536, doc: 'examples per forward/backward pass' },
      grad_accum: { kind: 'int', default: 1, min: 1, max: 4096, doc: 'micro-batches summed into one update' },
      lr: { kind: 'number', default: 1e-3, min: 0 },
      min_lr: { kind: 'number', default: 0, min: 0, doc: 'where the cosine ends' },
      warmup_steps: { kind: 'int', default: 0, min: 0, doc: 'updates of linear warm-up from lr/warmup_steps to lr' },
      weight_decay: { kind: 'number', default: 0.01, min: 0, doc: 'AdamW decoupled decay on weight matrices only (not biases, LayerNorm)' },
      beta1: { kind: 'number', default: 0.9, min: 0, max: 1 },
      beta2: { kind: 'number', default: 0.999, min: 0, max: 1 },
      eps: { kind: 'number', default: 1e-8, min: 0, exclusiveMin: true },
      max_grad_norm: { kind: 'number', default: 1, min: 0, doc: 'global L2 clip of the accumulated gradient; 0 = none' },
      log_every: { kind: 'int', default: 10, min: 1, doc: 'updates per metrics.jsonl train line' },
      eval_every: { kind: 'int', default: 0, min: 0, doc: 'updates between evaluations; 0 = at the end of each epoch (and of the run)' },
      checkpoint_every: { kind: 'int', default: 0, min: 0, doc: 'updates between checkpoints; 0 = only at the end' },
      eval_batch_size: { kind: 'int', default: 64, min: 1, max: 65_536 },
      max_new_tokens: { kind: 'int', default: 8, min: 1, max: 4096, doc: 'greedy decoding budget for exact match' },
      threads: { kind: 'int', default: 2, min: 1, max: 64 },
    },
  },
} as const satisfies Schema;

export type SftConfig = Infer<typeof SFT_SCHEMA>;

/** Validates a parsed YAML/JSON object; ConfigError names the key. */
export function parseSftConfig(raw: unknown): SftConfig {
  const cfg = validate(SFT_SCHEMA, raw);
  if (cfg.data.train === '') throw new ConfigError('data.train', 'must name a JSONL file');
  if (evalFiles(cfg).some((f) => f === '')) throw new ConfigError('data.eval', `has an empty entry: ${JSON.stringify(cfg.data.eval)}`);
  if (cfg.tokenizer.kind === 'dir' && cfg.tokenizer.path === '')
    throw new ConfigError('tokenizer.path', 'is required when tokenizer.kind is dir');
  if (cfg.train.min_lr > cfg.train.lr)
    throw new ConfigError('train.min_lr', `must be <= train.lr (${cfg.train.lr}), got ${cfg.train.min_lr}`);
  if (!/^[\w.-]+$/.test(cfg.run.name))
    throw new ConfigError('run.name', `must be a plain directory name, got ${JSON.stringify(cfg.run.name)}`);
  if (loraOf(cfg.lora) && cfg.init_from === '') throw new ConfigError('lora.r', 'LoRA adapts a trained model: set init_from');
  return cfg;
}

/** The eval files in config order. */
export function evalFiles(cfg: SftConfig): string[] {
  return cfg.data.eval === '' ? [] : cfg.data.eval.split(',').map((s) => s.trim());
}

/** An eval set's name in metrics: the file name without directory and `.jsonl`. */
export function evalName(file: string): string {
  return (file.split('/').pop() ?? file).replace(/\.jsonl$/, '');
}
