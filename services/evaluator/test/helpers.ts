import type { EnvironmentResult, EvaluationResult } from '@rlmesh/core';
import { aggregates, jeffreysInterval, summarize } from '../src/stats';

/** A hand-built environment result: `s` successes out of `n` episodes on entry `name`. */
export function envResult(name: string, s: number, n: number, extra: Partial<EnvironmentResult> = {}): EnvironmentResult {
  return {
    name,
    env_id: `${name}-v0`,
    options: {},
    split: 'ID',
    weight: 1,
    episodes: n,
    successes: s,
    success_rate: s / n,
    interval: jeffreysInterval(s, n),
    returns: summarize([s / n]),
    lengths: summarize([1]),
    seeds: Array.from({ length: n }, (_, i) => i),
    ...extra,
  };
}

/** A hand-built evaluation from per-environment [successes, episodes]. */
export function evalResult(id: string, envs: Record<string, [number, number]>): EvaluationResult {
  const environments = Object.entries(envs).map(([name, [s, n]]) => envResult(name, s, n));
  return {
    id,
    suite: 'hand-built',
    policy: { label: id },
    mode: 'greedy',
    created_at: '2026-01-01T00:00:00.000Z',
    environments,
    aggregate: aggregates(environments),
    duration_s: 0,
  };
}
