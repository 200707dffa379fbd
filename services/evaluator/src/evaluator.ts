/**
 * Runs a policy on every entry of a suite, in process, and summarises what happened. Episode i of an
 * entry starts from seed entry.seed + i, and the act seeds of sampled mode come from a generator
 * seeded the same way, so a policy and a suite always give the same result.
 *
 * Episodes are played by core's RolloutCollector, one step per collect, over a vector of up to
 * WAVE environments: environment j of a wave is reset with seed (first episode of the wave) + j, and
 * its first finished episode is the one counted. Success, length and per-component returns are
 * therefore the collector's, as in training: success is the env's success flag on the episode's
 * last step, and an episode's return is the unweighted sum of its reward components.
 */
import { randomBytes } from 'node:crypto';
import {
  type ActFn,
  ConfigError,
  type EnvironmentResult,
  type EpisodeSummary,
  type EvaluationResult,
  makeVectorEnv,
  RolloutCollector,
} from '@rlmesh/core';
import type { PolicySource } from './policy-source';
import { aggregates, jeffreysInterval, summarize } from './stats';
import { parseSuite, type Suite, type SuiteEntry } from './suite';

export interface EvaluateOptions {
  onProgress?(p: { entry: string; episodes_done: number; episodes_total: number }): void;
  signal?: AbortSignal;
  id?: string;
}

/** Environments stepped together: enough to batch the forward pass, few enough to bound memory. */
const WAVE = 64;

/** Steps after which an episode still running is cut, when its entry sets no max_steps. */
export const DEFAULT_MAX_STEPS = 100_000;

/** Sortable and unique: the UTC time to the second, then random hex. */
export function newEvaluationId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `ev-${stamp}-${randomBytes(4).toString('hex')}`;
}

/** The policy failed to act in an entry's environment (another model, observation width or action space). */
export class PolicyFitError extends Error {
  constructor(
    readonly entry: string,
    message: string,
  ) {
    super(message);
    this.name = 'PolicyFitError';
  }
}

interface Episode {
  score: number;
  return: number;
  length: number;
}

const episodeReturn = (e: EpisodeSummary) => Object.values(e.returns).reduce((a, r) => a + r, 0);

/** Plays episodes [start, start + size) of `entry`; `cut` receives episodes stopped by max_steps. */
async function playWave(
  entry: SuiteEntry,
  index: number,
  policy: PolicySource,
  greedy: boolean,
  start: number,
  size: number,
  onEpisode: () => void,
  signal?: AbortSignal,
): Promise<Episode[]> {
  const vec = makeVectorEnv(entry.env.id, entry.env.options, size, `entries[${index}].env.options`);
  const collector = new RolloutCollector(vec, `eval/${entry.name}`, 1, entry.seed + start, entry.level ?? 0);
  const zeros = new Float32Array(size);
  const act: ActFn = async (obs, rows, seed) => {
    let actions: Int32Array | Float32Array;
    try {
      actions = await policy.act(obs, rows, greedy, seed);
    } catch (e) {
      throw new PolicyFitError(entry.name, `entry "${entry.name}" (${entry.env.id}): the policy cannot act: ${(e as Error).message}`);
    }
    return { actions, logProbs: zeros, values: zeros, version: 0 };
  };
  const episodes: (Episode | null)[] = new Array(size).fill(null);
  const running = new Float64Array(size);
  const maxSteps = entry.max_steps ?? DEFAULT_MAX_STEPS;
  let left = size;
  for (let step = 1; left > 0; step++) {
    signal?.throwIfAborted();
    const r = await collector.collect(act);
    let k = 0;
    for (let j = 0; j < size; j++) {
      for (const c of vec.rewardComponents) running[j] += r.rewards[c][j];
      if (!r.terminated[j] && !r.truncated[j]) continue;
      // The collector lists the episodes that ended on this step in environment order.
      const e = r.episodes[k++];
      if (episodes[j] !== null) continue;
      episodes[j] = { score: e.success ? 1 : 0, return: episodeReturn(e), length: e.length };
      left--;
      onEpisode();
    }
    if (step >= maxSteps && left > 0) {
      for (let j = 0; j < size; j++) {
        if (episodes[j] !== null) continue;
        episodes[j] = { score: 0, return: running[j], length: maxSteps };
        onEpisode();
      }
      left = 0;
    }
    for (let j = 0; j < size; j++) if (r.terminated[j] || r.truncated[j]) running[j] = 0;
  }
  return episodes as Episode[];
}

async function evaluateEntry(
  entry: SuiteEntry,
  index: number,
  policy: PolicySource,
  suite: Suite,
  opts: EvaluateOptions,
): Promise<EnvironmentResult> {
  const episodes: Episode[] = [];
  let done = 0;
  const progress = () => {
    done++;
    opts.onProgress?.({ entry: entry.name, episodes_done: done, episodes_total: entry.episodes });
  };
  for (let start = 0; start < entry.episodes; start += WAVE) {
    const size = Math.min(WAVE, entry.episodes - start);
    episodes.push(...(await playWave(entry, index, policy, suite.mode === 'greedy', start, size, progress, opts.signal)));
  }
  const successes = episodes.reduce((a, e) => a + e.score, 0);
  const result: EnvironmentResult = {
    name: entry.name,
    env_id: entry.env.id,
    options: entry.env.options,
    split: entry.split,
    weight: entry.weight,
    episodes: entry.episodes,
    successes,
    success_rate: successes / entry.episodes,
    interval: jeffreysInterval(successes, entry.episodes),
    returns: summarize(episodes.map((e) => e.return)),
    lengths: summarize(episodes.map((e) => e.length)),
    seeds: episodes.map((_, i) => entry.seed + i),
  };
  if (entry.level !== undefined) result.level = entry.level;
  return result;
}

/** Evaluates `policy` on every entry of `suite` (validated again here, so a suite built in code is checked too). */
export async function evaluate(suite: Suite, policy: PolicySource, opts: EvaluateOptions = {}): Promise<EvaluationResult> {
  const checked = parseSuite(suite);
  const t0 = performance.now();
  const created = new Date();
  const environments: EnvironmentResult[] = [];
  for (const [i, entry] of checked.entries.entries()) {
    opts.signal?.throwIfAborted();
    environments.push(await evaluateEntry(entry, i, policy, checked, opts));
  }
  if (environments.length === 0) throw new ConfigError('entries', 'must not be empty');
  return {
    id: opts.id ?? newEvaluationId(created),
    suite: checked.name,
    policy: policy.ref,
    mode: checked.mode,
    created_at: created.toISOString(),
    environments,
    aggregate: aggregates(environments),
    duration_s: (performance.now() - t0) / 1000,
  };
}
