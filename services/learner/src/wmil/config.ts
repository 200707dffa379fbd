/** The WMIL run config: YAML sections run / env / model / algo / train, validated with named keys. */
import { ConfigError, type Schema, validate } from '@rlmesh/core';

export const WMIL_SCHEMA: Schema = {
  run: {
    kind: 'section',
    fields: {
      name: { kind: 'string', default: 'wmil' },
      seed: { kind: 'int', default: 0, min: 0 },
      out_dir: { kind: 'string', default: 'runs' },
    },
  },
  env: {
    kind: 'section',
    fields: {
      id: { kind: 'string', default: 'PatternEcho', oneOf: ['PatternEcho', 'SequenceNext', 'Conditional'] },
      num_symbols: { kind: 'int', default: 8, min: 2, max: 1024 },
      num_envs: { kind: 'int', default: 64, min: 1, max: 65536, doc: 'episodes per update' },
      max_episode_steps: { kind: 'int', default: 1, min: 1, max: 1000 },
      start_level: { kind: 'int', default: 0, min: 0 },
      advance_at: { kind: 'number', default: 0.9, min: 0, max: 1, doc: 'curriculum: success over the window that moves to the next level' },
      advance_window: { kind: 'int', default: 10, min: 1 },
    },
  },
  model: {
    kind: 'section',
    fields: {
      hidden_dim: { kind: 'int', default: 64, min: 2 },
      num_layers: { kind: 'int', default: 2, min: 1 },
      num_heads: { kind: 'int', default: 4, min: 1 },
      ff_dim: { kind: 'int', default: 256, min: 1 },
      dropout: { kind: 'number', default: 0, min: 0, max: 0.99 },
    },
  },
  algo: {
    kind: 'section',
    fields: {
      name: { kind: 'string', default: 'reinforce', oneOf: ['reinforce'] },
      lr: { kind: 'number', default: 1e-3, min: 0, exclusiveMin: true },
      baseline: { kind: 'string', default: 'ema', oneOf: ['ema', 'value'] },
      baseline_decay: { kind: 'number', default: 0.99, min: 0, max: 1 },
      entropy_coef: { kind: 'number', default: 0.01, min: 0 },
      world_model_coef: { kind: 'number', default: 1.0, min: 0 },
      value_coef: { kind: 'number', default: 0.5, min: 0 },
      max_grad_norm: { kind: 'number', default: 1.0, min: 0, exclusiveMin: true },
      gamma: { kind: 'number', default: 1.0, min: 0, max: 1 },
      reward_weights: { kind: 'numberRecord', default: { goal: 1.0, pred: 0.0 } },
    },
  },
  train: {
    kind: 'section',
    fields: {
      total_episodes: { kind: 'int', default: 4096, min: 1 },
      checkpoint_every: { kind: 'int', default: 0, min: 0, doc: 'updates between checkpoints; 0 = only at the end' },
      threads: { kind: 'int', default: 2, min: 1, max: 64 },
      success_window: { kind: 'int', default: 10, min: 1, doc: 'batches averaged for the reported success rate' },
    },
  },
  mesh: {
    kind: 'section',
    doc: 'only read when the run is trained by the mesh (rlmesh train --mesh)',
    fields: {
      actors_per_replica: { kind: 'int', default: 1, min: 1, max: 64, doc: 'rollout actors each env replica runs for this run' },
      max_chunks_in_flight: {
        kind: 'int',
        default: 1,
        min: 1,
        max: 1024,
        doc: 'chunks an actor may have published that the learner has not consumed yet (policy lag stays below actors x this)',
      },
      max_policy_lag: { kind: 'int', default: 4, min: 0, doc: 'chunks older than this many versions are dropped, not trained on' },
      off_policy_correction: { kind: 'bool', default: true, doc: 'truncated importance weights for chunks of older versions' },
      publish_every: { kind: 'int', default: 1, min: 1, doc: 'updates between published policy versions' },
    },
  },
};

export interface WmilConfig {
  run: { name: string; seed: number; out_dir: string };
  env: {
    id: 'PatternEcho' | 'SequenceNext' | 'Conditional';
    num_symbols: number;
    num_envs: number;
    max_episode_steps: number;
    start_level: number;
    advance_at: number;
    advance_window: number;
  };
  model: { hidden_dim: number; num_layers: number; num_heads: number; ff_dim: number; dropout: number };
  algo: {
    name: 'reinforce';
    lr: number;
    baseline: 'ema' | 'value';
    baseline_decay: number;
    entropy_coef: number;
    world_model_coef: number;
    value_coef: number;
    max_grad_norm: number;
    gamma: number;
    reward_weights: Record<string, number>;
  };
  train: { total_episodes: number; checkpoint_every: number; threads: number; success_window: number };
  mesh: {
    actors_per_replica: number;
    max_chunks_in_flight: number;
    max_policy_lag: number;
    off_policy_correction: boolean;
    publish_every: number;
  };
}

export function parseWmilConfig(raw: unknown): WmilConfig {
  const c = validate(WMIL_SCHEMA, raw) as unknown as WmilConfig;
  if (c.model.hidden_dim % c.model.num_heads !== 0) {
    throw new ConfigError('model.num_heads', `must divide model.hidden_dim (${c.model.hidden_dim}), got ${c.model.num_heads}`);
  }
  return c;
}
