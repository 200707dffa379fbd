/**
 * Episodes of a text env (a prompt in, a completion out), played by a text policy: every episode of
 * a wave is reset with its seed, the prompts of all episodes still running are completed together
 * (one batch per step, greedy or seeded sampling), and each completion goes to its env's step,
 * whose verifier gives the reward components and the success flag. A one-step env (the card game)
 * thus costs one batched generation per wave.
 *
 * A completion the env refuses (empty, bytes that are not UTF-8, too long) or that could not be
 * decoded scores 0 on every component and ends its episode as a failure: the env would show the
 * same prompt again, and a greedy policy would write the same completion forever. A multi-turn
 * episode whose conversation outgrows the model's context (prompt plus max_new_tokens) ends after
 * the turn that made it too long, with the rewards and success it has.
 */
import { makeTextEnv, TextInputError } from '@rlmesh/core';
import { PolicyFitError, type TextPolicySource } from './policy-source';
import { DEFAULT_MAX_NEW_TOKENS, type SuiteEntry } from './suite';

export interface TextEpisode {
  /** 1 when the env's success flag was set on the last step, else 0. */
  score: number;
  /** Summed over steps, per reward component. */
  components: Record<string, number>;
  length: number;
}

/** The seed of a sampled completion: one per episode and step, so a suite gives the same draws every time. */
export const completionSeed = (episodeSeed: number, step: number): number => (episodeSeed * 31 + step) >>> 0;

/** Whether `prompt` and the entry's token budget fit the model's context. */
function promptFits(entry: SuiteEntry, policy: TextPolicySource, prompt: string): boolean {
  return policy.promptTokens(prompt) + (entry.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS) <= policy.contextLength;
}

/**
 * Throws a PolicyFitError unless the first prompt of episode seed `seed` of `entry` and the entry's
 * token budget fit the model's context: a completion cut to the room left would be scored as the
 * model's answer when the model was never given the room to write one. (A later turn of a
 * conversation that outgrows the context ends that episode instead, as training ends it.)
 */
export function checkPromptFits(entry: SuiteEntry, policy: TextPolicySource, prompt: string, seed: number): void {
  const budget = entry.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS;
  const tokens = policy.promptTokens(prompt);
  if (!promptFits(entry, policy, prompt))
    throw new PolicyFitError(
      entry.name,
      `entry "${entry.name}" (${entry.env.id}): the prompt of episode seed ${seed} has ${tokens} tokens; with max_new_tokens ${budget} it exceeds the model's context of ${policy.contextLength}`,
    );
}

/** Plays episodes [start, start + size) of a text entry. */
export async function playTextWave(
  entry: SuiteEntry,
  index: number,
  policy: TextPolicySource,
  greedy: boolean,
  start: number,
  size: number,
  onEpisode: () => void,
  signal?: AbortSignal,
): Promise<TextEpisode[]> {
  const envs = Array.from({ length: size }, () => makeTextEnv(entry.env.id, entry.env.options, `entries[${index}].env.options`));
  const seeds = envs.map((_, j) => entry.seed + start + j);
  const prompts = envs.map((env, j) => env.reset(seeds[j], { difficulty: entry.level ?? 0 }));
  for (const [j, p] of prompts.entries()) checkPromptFits(entry, policy, p, seeds[j]);
  const episodes: TextEpisode[] = envs.map((env) => ({
    score: 0,
    components: Object.fromEntries(env.rewardComponents.map((c) => [c, 0])),
    length: 0,
  }));
  const maxSteps = entry.max_steps ?? Number.POSITIVE_INFINITY;
  let running = envs.map((_, j) => j);
  for (let step = 0; running.length > 0; step++) {
    signal?.throwIfAborted();
    const done = await policy.complete(
      running.map((j) => prompts[j]),
      {
        greedy,
        seeds: running.map((j) => completionSeed(seeds[j], step)),
        maxNewTokens: entry.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS,
      },
    );
    const next: number[] = [];
    running.forEach((j, k) => {
      const e = episodes[j];
      e.length++;
      const text = done[k].text;
      // A completion that is not text, or that the env refuses, ends the episode as it stands.
      let ended = true;
      if (text !== null) {
        try {
          const r = envs[j].step(text);
          for (const [c, v] of Object.entries(r.reward)) e.components[c] += v;
          e.score = r.success ? 1 : 0;
          // A conversation whose next turn no longer fits the context ends there, truncated, as it stands.
          ended = r.terminated || r.truncated || !promptFits(entry, policy, r.prompt);
          prompts[j] = r.prompt;
        } catch (err) {
          if (!(err instanceof TextInputError)) throw err;
        }
      }
      if (!ended && e.length >= maxSteps) ended = true;
      if (ended) onEpisode();
      else next.push(j);
    });
    running = next;
  }
  return episodes;
}
