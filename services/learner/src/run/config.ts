/**
 * The run config: fixed sections (run, env, curriculum, train, mesh) and three composed ones, each
 * validated by its registry entry's schema: `env.options` by the environment, `model` by the model
 * (`model.id`), `algo` by the algorithm (`algo.name`). Types come from the schemas; defaults live
 * only in them.
 */
import { ConfigError, envOptions, envSpec, type Infer, type Schema, validate } from '@rlmesh/core';
import '@rlmesh/envs';
import '../algorithms';
import '../models';
import { algorithmSpec, modelSpec } from '../registry';

export const RUN_SCHEMA = {
  run: {
    kind: 'section',
    fields: {
      name: { kind: 'string', default: 'run' },
      seed: { kind: 'int', default: 0, min: 0, max: 2 ** 31 - 1 },
      out_dir: { kind: 'string', default: 'runs' },
    },
  },
  env: {
    kind: 'section',
    fields: {
      id: { kind: 'string', default: 'CartPole-v1' },
      num_envs: { kind: 'int', default: 4, min: 1, max: 65536, doc: 'environments each actor steps together' },
      num_steps: { kind: 'int', default: 128, min: 1, max: 100000, doc: 'steps of every environment per rollout (one update)' },
      options: { kind: 'open', doc: "the environment's own options, checked by its schema" },
    },
  },
  curriculum: {
    kind: 'section',
    fields: {
      start_level: { kind: 'int', default: 0, min: 0 },
      advance_at: { kind: 'number', default: 0.9, min: 0, max: 1, doc: 'success over the window that moves to the next level' },
      advance_window: { kind: 'int', default: 10, min: 1 },
    },
  },
  model: { kind: 'open', doc: 'id plus the model options' },
  algo: { kind: 'open', doc: 'name plus the algorithm options' },
  train: {
    kind: 'section',
    fields: {
      total_env_steps: { kind: 'int', default: 500000, min: 1, doc: 'environment steps over the whole run (all actors)' },
      checkpoint_every: { kind: 'int', default: 0, min: 0, doc: 'updates between checkpoints; 0 = only at the end' },
      threads: { kind: 'int', default: 2, min: 1, max: 64 },
      device: {
        kind: 'string',
        oneOf: ['cpu', 'cuda'],
        default: 'cpu',
        doc: "onnxruntime's execution provider for the train step; a learner service's --device overrides it",
      },
      success_window: { kind: 'int', default: 10, min: 1, doc: 'updates averaged for the reported success rate' },
    },
  },
  mesh: {
    kind: 'section',
    doc: 'only read when the run is trained by the mesh',
    fields: {
      inference: {
        kind: 'string',
        default: 'central',
        oneOf: ['central', 'local'],
        doc: 'central: actors call the policy service; local: actors run each published version themselves',
      },
      actors_per_replica: { kind: 'int', default: 1, min: 1, max: 64, doc: 'rollout actors each env replica runs for this run' },
      max_chunks_in_flight: {
        kind: 'int',
        default: 1,
        min: 1,
        max: 1024,
        doc: 'rollouts an actor may have published that the learner has not consumed yet',
      },
      max_policy_lag: { kind: 'int', default: 4, min: 0, doc: 'rollouts older than this many versions are dropped, not trained on' },
      publish_every: { kind: 'int', default: 1, min: 1, doc: 'updates between published policy versions' },
      capture_hooks: {
        kind: 'string',
        default: '',
        doc: 'hook points (comma-separated) whose activations the learner samples from each rollout and publishes to rlmesh.activations.<run>.<hook>, for SAEs to follow the run; empty: none',
      },
      capture_rows: {
        kind: 'int',
        default: 64,
        min: 1,
        max: 65536,
        doc: "observations of each rollout captured (a seeded sample), with the weights of the learner's version",
      },
    },
  },
  eval: {
    kind: 'section',
    doc: "evaluation of published versions and the promotion gate, run by the mesh's evaluator service",
    fields: {
      every: { kind: 'int', default: 0, min: 0, doc: 'evaluate versions 1, 1 + every, 1 + 2 * every, ...; 0 = none' },
      suite: { kind: 'string', default: '', doc: "a suite file (YAML), read from the evaluator's working directory" },
      suite_inline: { kind: 'open', doc: 'the suite itself, instead of a file' },
      gate: {
        kind: 'string',
        default: 'none',
        oneOf: ['none', 'not_dominated', 'beats_baseline'],
        doc: 'none: promote every evaluated version; not_dominated: unless the promoted one dominates it; beats_baseline: only when it dominates the baseline',
      },
      baseline: { kind: 'string', default: '', doc: 'an evaluation id, or the label of a stored evaluation of the same suite' },
    },
  },
} as const satisfies Schema;

type Base = Infer<typeof RUN_SCHEMA>;

export interface RunConfig extends Omit<Base, 'model' | 'algo'> {
  model: { id: string } & Record<string, unknown>;
  algo: { name: string } & Record<string, unknown>;
}

function split(raw: Record<string, unknown>, key: string, section: string, fallback: string): [string, Record<string, unknown>] {
  const { [key]: id = fallback, ...rest } = raw;
  if (typeof id !== 'string') throw new ConfigError(`${section}.${key}`, `must be a string, got ${JSON.stringify(id)}`);
  return [id, rest];
}

/** Validates a whole run config (a parsed YAML/JSON mapping); ConfigError names the first bad key. */
export function parseRunConfig(raw: unknown): RunConfig {
  const base = validate(RUN_SCHEMA, raw);
  const spec = envSpec(base.env.id);
  base.env.options = envOptions(spec.id, base.env.options);
  const [modelId, modelRest] = split(base.model, 'id', 'model', 'mlp_actor_critic');
  const model = { id: modelId, ...validate(modelSpec(modelId).options, modelRest, 'model') };
  const [algoName, algoRest] = split(base.algo, 'name', 'algo', 'ppo');
  const algorithm = algorithmSpec(algoName);
  const algoCfg = validate(algorithm.config, algoRest, 'algo');
  algorithm.check?.(algoCfg);
  const algo = { name: algoName, ...algoCfg };
  if (base.curriculum.start_level > 0) {
    const levels = spec.make(base.env.options as never).numLevels;
    if (base.curriculum.start_level >= levels)
      throw new ConfigError('curriculum.start_level', `${spec.id} has levels 0..${levels - 1}, got ${base.curriculum.start_level}`);
  }
  checkEval(base.eval);
  if (base.mesh.inference === 'central' && base.env.num_envs > MAX_ACT_ROWS)
    throw new ConfigError(
      'env.num_envs',
      `at most ${MAX_ACT_ROWS} with mesh.inference central (the rows one Act call may carry), got ${base.env.num_envs}; use more actors or local inference`,
    );
  return { ...base, model, algo };
}

/** The policy service's default limit on rows per Act request: an actor's whole vector env goes in one. */
export const MAX_ACT_ROWS = 4096;

/** The eval section's fields that only make sense together. */
function checkEval(e: Base['eval']): void {
  const inline = Object.keys(e.suite_inline).length > 0;
  if (e.suite && inline) throw new ConfigError('eval.suite', 'set either eval.suite (a file) or eval.suite_inline, not both');
  if (e.every > 0 && !e.suite && !inline)
    throw new ConfigError('eval.suite', 'is required when eval.every > 0 (a file, or eval.suite_inline)');
  if (e.gate !== 'none' && e.every === 0) throw new ConfigError('eval.every', `must be >= 1 when eval.gate is ${e.gate}`);
  if (e.gate === 'beats_baseline' && !e.baseline) throw new ConfigError('eval.baseline', 'is required when eval.gate is beats_baseline');
}

/** Updates in a run: every update consumes one rollout of num_envs x num_steps steps. */
export function totalUpdates(cfg: RunConfig): number {
  return Math.ceil(cfg.train.total_env_steps / (cfg.env.num_envs * cfg.env.num_steps));
}
