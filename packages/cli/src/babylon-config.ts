/**
 * The config of `rlmesh babylon`: Babylon's loop in one process. Every section is checked before
 * anything runs; errors name the key.
 */
import { type Infer, type Schema, validate } from '@rlmesh/core';

export const BABYLON_USAGE = `rlmesh babylon <config.yaml> [--section.key value ...]
    Babylon's loop in one process (configs/babylon.yaml): a tiny GPT-2 and its BPE tokenizer are
    fitted to the market's prompts by SFT on scripted traders' decisions; then, per iteration,
    scripted and LM traders share a simulated market for some hours (the LM traders call the
    served model through the OpenAI-compatible endpoint on loopback, each call recorded in the
    archive), every window is judged, GRPO trains by window from the archive, and the endpoint
    serves the new version. Finally the initial and the trained model each trade their own copy of
    every held-out market. Writes out_dir/results.json and out_dir/report.html. With a PGlite
    directory or postgres:// archive, running the same config again resumes after the last
    iteration the archive records as finished.`;

const BABYLON_SCHEMA = {
  out_dir: { kind: 'string', doc: 'where the run writes (models, checkpoints, results.json, report.html)' },
  seed: { kind: 'int', default: 1, min: 0, max: 2 ** 31 - 1 },
  archive: {
    kind: 'string',
    default: 'memory',
    doc: 'memory (PGlite in process), a PGlite directory, or a postgres:// URL (these two resume an interrupted run)',
  },
  market: { kind: 'open', doc: "@rlmesh/market's options (seed is the loop's)" },
  agents: {
    kind: 'section',
    fields: {
      scripted: {
        kind: 'string',
        default: 'momentum,mean-reversion,news-follower',
        doc: 'comma-separated strategies (buy-and-hold, random, momentum, mean-reversion, news-follower)',
      },
      lm: { kind: 'int', default: 3, min: 2, max: 64, doc: 'LM traders calling the served model' },
      pace_ms: { kind: 'number', default: 300_000, min: 1000, doc: 'simulated ms between an agent’s turns (jittered x0.5-1.5)' },
      max_tokens: { kind: 'int', default: 8, min: 1, max: 256 },
      temperature: { kind: 'number', default: 1, min: 0 },
    },
  },
  model: {
    kind: 'section',
    fields: {
      vocab_size: { kind: 'int', default: 512, min: 300, max: 65_536, doc: 'BPE trained on the SFT prompts and completions' },
      n_positions: { kind: 'int', default: 512, min: 64, max: 4096 },
      n_embd: { kind: 'int', default: 32, min: 8, max: 4096 },
      n_layer: { kind: 'int', default: 1, min: 1, max: 64 },
      n_head: { kind: 'int', default: 2, min: 1, max: 64 },
    },
  },
  sft: {
    kind: 'section',
    fields: {
      hours: { kind: 'number', default: 4, min: 0.1, doc: 'simulated hours of the scripted traders whose decisions are the SFT data' },
      steps: { kind: 'int', default: 100, min: 1 },
      lr: { kind: 'number', default: 3e-3, min: 0, exclusiveMin: true },
      micro_batch_size: { kind: 'int', default: 16, min: 1 },
    },
  },
  loop: {
    kind: 'section',
    fields: {
      iterations: { kind: 'int', default: 10, min: 1, max: 1000 },
      hours: { kind: 'int', default: 2, min: 1, max: 48, doc: 'simulated hours (= 1-hour windows) per iteration' },
      min_agents: { kind: 'int', default: 5, min: 2, doc: 'a window trains only with at least this many agents' },
      target: { kind: 'int', default: 1000, min: 1, doc: 'trajectories a batch needs; more switches dropout on' },
      calls_per_trajectory: { kind: 'int', default: 4, min: 1, max: 1024, doc: 'rows each LM trajectory gives its window group' },
      judge: {
        kind: 'string',
        default: 'heuristic',
        oneOf: ['heuristic', 'chat'],
        doc: 'chat reads JUDGE_MODEL, OPENAI_BASE_URL, OPENAI_API_KEY',
      },
    },
  },
  algo: { kind: 'open', doc: "GRPO's options (learning_rate, num_iterations, epsilon, beta, loss_type ...)" },
  eval: {
    kind: 'section',
    fields: {
      seeds: { kind: 'int', default: 4, min: 1, max: 1000, doc: 'held-out markets (seeds after the training ones)' },
      hours: { kind: 'int', default: 2, min: 1, max: 48 },
      bootstrap: { kind: 'int', default: 2000, min: 100, max: 100_000, doc: 'resamples of the P&L interval' },
    },
  },
  threads: { kind: 'int', default: 2, min: 1, max: 64 },
} as const satisfies Schema;

export type BabylonConfig = Infer<typeof BABYLON_SCHEMA>;

export function parseBabylonConfig(raw: unknown): BabylonConfig {
  return validate(BABYLON_SCHEMA, raw);
}
