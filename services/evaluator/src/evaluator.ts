/**
 * Runs a policy on every entry of a suite, in process, and summarises what happened. Episode i of an
 * entry starts from seed entry.seed + i, and the act seeds of sampled mode come from a generator
 * seeded the same way, so a policy and a suite always give the same result.
 *
 * Episodes are played by core's RolloutCollector, one step per collect, over a vector of up to
 * WAVE environments: environment j of a wave is reset with seed (first episode of the wave) + j, and
 * its first finished episode is the one counted. Success, length and per-component returns are
 * therefore the collector's, as in training: success is the env's success flag on the episode's
 * last step, and an episode's return is the unweighted sum of its reward components (each
 * component's mean is kept too). Text envs are played by text-episodes.ts with the same counting.
 */
import { randomBytes } from 'node:crypto';
import {
  type ActFn,
  ConfigError,
  type EnvironmentResult,
  type EvaluationResult,
  isTextEnv,
  makeVectorEnv,
  RolloutCollector,
} from '@rlmesh/core';
import { type AnyPolicySource, isTextPolicy, PolicyFitError, type PolicySource } from './policy-source';
import { aggregates, jeffreysInterval, summarize } from './stats';
import { parseSuite, type Suite, type SuiteEntry } from './suite';
import { playTextWave } from './text-episodes';

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

interface Episode {
  score: number;
  /** Summed over the episode's steps, per reward component; the return is their sum. */
  components: Record<string, number>;
  length: number;
}

const total = (c: Record<string, number>) => Object.values(c).reduce((a, r) => a + r, 0);

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
  const running = Object.fromEntries(vec.rewardComponents.map((c) => [c, new Float64Array(size)]));
  const maxSteps = entry.max_steps ?? DEFAULT_MAX_STEPS;
  let left = size;
  for (let step = 1; left > 0; step++) {
    signal?.throwIfAborted();
    const r = await collector.collect(act);
    let k = 0;
    for (let j = 0; j < size; j++) {
      for (const c of vec.rewardComponents) running[c][j] += r.rewards[c][j];
      if (!r.terminated[j] && !r.truncated[j]) continue;
      // The collector lists the episodes that ended on this step in environment order.
      const e = r.episodes[k++];
      if (episodes[j] !== null) continue;
      episodes[j] = { score: e.success ? 1 : 0, components: { ...e.returns }, length: e.length };
      left--;
      onEpisode();
    }
    if (step >= maxSteps && left > 0) {
      for (let j = 0; j < size; j++) {
        if (episodes[j] !== null) continue;
        episodes[j] = { score: 0, components: Object.fromEntries(vec.rewardComponents.map((c) => [c, running[c][j]])), length: maxSteps };
        onEpisode();
      }
      left = 0;
    }
    for (let j = 0; j < size; j++) if (r.terminated[j] || r.truncated[j]) for (const c of vec.rewardComponents) running[c][j] = 0;
  }
  return episodes as Episode[];
}

/**
 * The wave player the entry and the policy call for: a text env needs a text policy and a numeric
 * env an action policy; a mismatch is a PolicyFitError naming the entry before any episode runs.
 */
function waveOf(entry: SuiteEntry, index: number, policy: AnyPolicySource, greedy: boolean, signal?: AbortSignal) {
  const where = `entry "${entry.name}" (${entry.env.id})`;
  if (isTextEnv(entry.env.id)) {
    if (!isTextPolicy(policy))
      throw new PolicyFitError(entry.name, `${where} is a text env: it needs a language model (a GPT-2 directory), not an action policy`);
    return (start: number, size: number, onEpisode: () => void) =>
      playTextWave(entry, index, policy, greedy, start, size, onEpisode, signal);
  }
  if (isTextPolicy(policy))
    throw new PolicyFitError(entry.name, `${where} takes actions: a language model (GPT-2 directory) cannot act in it`);
  return (start: number, size: number, onEpisode: () => void) => playWave(entry, index, policy, greedy, start, size, onEpisode, signal);
}

async function evaluateEntry(
  entry: SuiteEntry,
  index: number,
  policy: AnyPolicySource,
  suite: Suite,
  opts: EvaluateOptions,
): Promise<EnvironmentResult> {
  const play = waveOf(entry, index, policy, suite.mode === 'greedy', opts.signal);
  const episodes: Episode[] = [];
  let done = 0;
  const progress = () => {
    done++;
    opts.onProgress?.({ entry: entry.name, episodes_done: done, episodes_total: entry.episodes });
  };
  for (let start = 0; start < entry.episodes; start += WAVE) {
    const size = Math.min(WAVE, entry.episodes - start);
    episodes.push(...(await play(start, size, progress)));
  }
  const successes = episodes.reduce((a, e) => a + e.score, 0);
  const names = Object.keys(episodes[0]?.components ?? {});
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
    returns: summarize(episodes.map((e) => total(e.components))),
    components: Object.fromEntries(names.map((c) => [c, episodes.reduce((a, e) => a + (e.components[c] ?? 0), 0) / episodes.length])),
    lengths: summarize(episodes.map((e) => e.length)),
    seeds: episodes.map((_, i) => entry.seed + i),
  };
  if (entry.level !== undefined) result.level = entry.level;
  return result;
}

/** Evaluates `policy` on every entry of `suite` (validated again here, so a suite built in code is checked too). */
export async function evaluate(suite: Suite, policy: AnyPolicySource, opts: EvaluateOptions = {}): Promise<EvaluationResult> {
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
