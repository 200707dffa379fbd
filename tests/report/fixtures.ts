/**
 * Inputs of the report tests: a real short training run (the shipped WMIL PatternEcho config, fewer
 * env steps, written under a temporary out_dir) and hand-built evaluation results whose frontier is
 * known. Real evaluations come from `rlmesh eval` in the tests; these are built from chosen success
 * counts, with the evaluator's own Jeffreys intervals and aggregates, over an ID/OOD suite that no
 * shipped policy can play: `good` and `ood-specialist` each beat the other on one environment (both
 * on the frontier), and `initial` is beaten everywhere (dominated).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EnvironmentResult, EvaluationResult } from '@rlmesh/core';
import { aggregates, jeffreysInterval, summarize } from '@rlmesh/evaluator';
import { parseRunConfig, type RunConfig } from '@rlmesh/learner';
import { parse } from 'yaml';

const ROOT = join(__dirname, '..', '..');

export function patternEchoConfig(outDir: string, totalEnvSteps: number, name = 'wmil-pattern-echo'): RunConfig {
  const raw = parse(readFileSync(join(ROOT, 'configs', 'wmil-pattern-echo.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  return parseRunConfig({
    ...raw,
    run: { ...raw.run, name, out_dir: outDir },
    train: { ...raw.train, total_env_steps: totalEnvSteps, checkpoint_every: 0 },
  });
}

const SUITE = [
  { name: 'echo-8', env_id: 'PatternEcho', options: { num_symbols: 8 }, split: 'ID' },
  { name: 'next', env_id: 'SequenceNext', options: {}, split: 'ID' },
  { name: 'echo-16', env_id: 'PatternEcho', options: { num_symbols: 16 }, split: 'OOD' },
];

function evaluation(id: string, label: string, successes: number[], episodes = 100): EvaluationResult {
  const environments: EnvironmentResult[] = SUITE.map((e, i) => {
    const returns = summarize([successes[i] / episodes]);
    return {
      ...e,
      weight: 1,
      episodes,
      successes: successes[i],
      success_rate: successes[i] / episodes,
      interval: jeffreysInterval(successes[i], episodes),
      returns,
      lengths: summarize([1]),
      seeds: Array.from({ length: episodes }, (_, k) => 1000 + k),
    };
  });
  return {
    id,
    suite: 'wmil-id-ood',
    policy: { label, checkpoint: `runs/${label}/model.safetensors` },
    mode: 'greedy',
    created_at: `2026-01-0${id.length % 9}T00:00:00.000Z`,
    environments,
    aggregate: aggregates(environments),
    duration_s: 0.5,
  };
}

/** Success counts out of 100 on echo-8 (ID), next (ID), echo-16 (OOD). */
export const EVALUATIONS = {
  good: evaluation('eval-good', 'good', [92, 80, 55]),
  specialist: evaluation('eval-ood-specialist', 'ood-specialist', [50, 78, 88]),
  initial: evaluation('eval-initial', 'initial', [13, 11, 7]),
};

export function writeEvaluation(runDir: string, e: EvaluationResult): void {
  mkdirSync(join(runDir, 'evaluations'), { recursive: true });
  writeFileSync(join(runDir, 'evaluations', `${e.id}.json`), JSON.stringify(e, null, 2));
}
