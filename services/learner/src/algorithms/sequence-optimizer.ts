/**
 * The config keys and their meaning that every sequence algorithm shares, in TRL's names: how the
 * actor samples completions, and the AdamW update with its learning-rate schedule. GRPO and ppo_seq
 * spread these into their own schemas; what differs between them (learning-rate default, batch
 * shape, loss) stays in their files.
 */
import type { Infer, Schema } from '@rlmesh/core';
import { scheduledLr } from '@rlmesh/graph';
import type { AdamWConfig } from '../models/gpt2-step';

export const SAMPLING_OPTIONS = {
  temperature: { kind: 'number', default: 1, min: 0, exclusiveMin: true },
  top_k: { kind: 'int', default: 0, min: 0, doc: '0: every token' },
  top_p: { kind: 'number', default: 1, min: 0, max: 1, exclusiveMin: true },
} as const satisfies Schema;

export const OPTIMIZER_OPTIONS = {
  lr_scheduler_type: { kind: 'string', default: 'constant', oneOf: ['constant', 'cosine'], doc: 'after the warm-up' },
  warmup_steps: { kind: 'int', default: 0, min: 0, doc: 'optimizer steps of linear warm-up' },
  max_grad_norm: { kind: 'number', default: 1, min: 0, doc: 'global L2 clip; 0: none' },
  adam_beta1: { kind: 'number', default: 0.9, min: 0, max: 1 },
  adam_beta2: { kind: 'number', default: 0.999, min: 0, max: 1 },
  adam_epsilon: { kind: 'number', default: 1e-8, min: 0, exclusiveMin: true },
  weight_decay: { kind: 'number', default: 0, min: 0, doc: 'AdamW decoupled decay on weight matrices only' },
} as const satisfies Schema;

type OptimizerConfig = Infer<typeof OPTIMIZER_OPTIONS> & { learning_rate: number };

export function adamwOf(cfg: OptimizerConfig): AdamWConfig {
  return {
    beta1: cfg.adam_beta1,
    beta2: cfg.adam_beta2,
    eps: cfg.adam_epsilon,
    weightDecay: cfg.weight_decay,
    maxGradNorm: cfg.max_grad_norm,
  };
}

/** The learning rate of optimizer step `step` of `totalSteps`: linear warm-up, then constant or cosine. */
export function sequenceLr(cfg: OptimizerConfig, step: number, totalSteps: number): number {
  return scheduledLr(
    cfg.lr_scheduler_type === 'cosine'
      ? { kind: 'cosine', lr: cfg.learning_rate, totalSteps, warmupSteps: cfg.warmup_steps }
      : { kind: 'linear_warmup', lr: cfg.learning_rate, warmupSteps: cfg.warmup_steps },
    step,
  );
}
