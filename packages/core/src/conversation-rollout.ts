/**
 * The text actor loop of multi-turn envs (a MultiTurnTextTask behind TextEnv): an episode is a
 * conversation, and every policy turn is a trainable row of the same SequenceRollout the
 * single-turn loop writes. P envs each draw a problem; G episodes of each (a group) start from the
 * state snapshotted right after that draw, so a group's episodes all face the same problem. Turn by
 * turn, every live episode's next prompt (the conversation so far, as the env returns it) goes
 * into ONE generate call; each reply steps its own episode's env state (restored before the step,
 * snapshotted after), until every episode has ended.
 *
 * An episode ends when the env says terminated or truncated (its maxEpisodeSteps), when it has
 * played `maxTurns` turns (counting refused ones), or when its next prompt would not leave room for
 * maxCompletionLength new tokens in the model's context (`maxPromptTokens`): the last two are
 * truncations too (episodeTruncated). The opening prompt is not checked here: generate's own check
 * rejects a task whose first prompt does not fit, which is a configuration error, not an episode.
 *
 * A refused turn (not text, or the env's TextInputError) scores 0 on every component, leaves the
 * env as it was and the episode goes on with the same prompt, bounded by maxTurns.
 *
 * Rows are laid out episode after episode, each episode's turns in order; episode e = p * G + k is
 * in group p. A row holds the prompt as generated (the whole conversation before the turn), the
 * turn's tokens and behaviour log-probs, the turn's own (shaped) rewards and success flag. The
 * episode summaries carry each conversation's length in turns, its return (the per-turn rewards
 * summed) and whether any turn reached the goal. How learners assign credit from these rows is
 * their business (grpo.ts: the episode's return, group-normalised, on every turn; ppo-seq.ts:
 * each turn's discounted return-to-go).
 */
import type { EpisodeSummary } from './rollout';
import {
  type GenerateFn,
  packSequenceRollout,
  SequenceCollector,
  type SequenceRollout,
  type SequenceRow,
  type SequenceSampling,
  sequenceRequest,
  stepCompletion,
  type TextCodec,
} from './sequence-rollout';
import type { TextEnv } from './text-env';

export interface ConversationLimits {
  /** Turns per episode at most (the env's maxEpisodeSteps still applies); undefined: the env's only. */
  maxTurns?: number;
  /** The longest prompt that still leaves room for a turn (context - maxCompletionLength); undefined: no limit. */
  maxPromptTokens?: number;
}

/** Whether an env plays multi-turn episodes (its task acts on a world state). */
export function isMultiTurn(env: TextEnv): boolean {
  return 'act' in env.task;
}

interface Episode {
  group: number;
  /** The env's state before this episode's next turn. */
  state: unknown;
  prompt: string;
  rows: SequenceRow[];
  ended: boolean;
  truncated: boolean;
  success: boolean;
}

export class ConversationCollector extends SequenceCollector {
  constructor(
    envs: readonly TextEnv[],
    codec: TextCodec,
    actorId: string,
    sampling: SequenceSampling,
    seed: number,
    readonly limits: ConversationLimits = {},
  ) {
    super(envs, codec, actorId, sampling, seed);
    for (const env of envs) if (!isMultiTurn(env)) throw new Error(`ConversationCollector: ${env.task.name} is a single-turn text env`);
    const { maxTurns, maxPromptTokens } = limits;
    if (maxTurns !== undefined && (!Number.isInteger(maxTurns) || maxTurns < 1))
      throw new Error(`ConversationCollector: maxTurns must be a positive integer, got ${maxTurns}`);
    if (maxPromptTokens !== undefined && (!Number.isInteger(maxPromptTokens) || maxPromptTokens < 1))
      throw new Error(`ConversationCollector: maxPromptTokens must be a positive integer, got ${maxPromptTokens}`);
  }

  /** Plays G conversations of each env's next problem to their ends; one row per turn. */
  override async collect(generate: GenerateFn): Promise<SequenceRollout> {
    const P = this.envs.length;
    const G = this.sampling.numGenerations;
    const s = this.sampling;
    const { prompts, snapshots } = this.drawProblems();
    const episodes: Episode[] = [];
    for (let p = 0; p < P; p++)
      for (let k = 0; k < G; k++)
        episodes.push({ group: p, state: snapshots[p], prompt: prompts[p], rows: [], ended: false, truncated: false, success: false });
    const turnLimit = (p: number) => Math.min(this.limits.maxTurns ?? Number.POSITIVE_INFINITY, this.envs[p].maxEpisodeSteps);
    let version = Number.POSITIVE_INFINITY;
    for (let turn = 0; ; turn++) {
      const asks: { ep: Episode; ids: number[] }[] = [];
      for (const ep of episodes) {
        if (ep.ended) continue;
        const ids = this.codec.encode(ep.prompt);
        if (turn > 0 && this.limits.maxPromptTokens !== undefined && ids.length > this.limits.maxPromptTokens) {
          ep.ended = true;
          ep.truncated = true;
          continue;
        }
        asks.push({ ep, ids });
      }
      if (asks.length === 0) break;
      const answer = await generate(asks.map((a) => sequenceRequest(a.ids, s, this.rng)));
      if (answer.results.length !== asks.length)
        throw new Error(`generate returned ${answer.results.length} rows for ${asks.length} requests`);
      version = Math.min(version, answer.version);
      for (const [i, { ep, ids }] of asks.entries()) {
        const env = this.envs[ep.group];
        env.restore(ep.state);
        const step = stepCompletion(env, this.codec, s.eosTokenId, answer.results[i]);
        ep.rows.push({ prompt: ids, result: answer.results[i], group: ep.group, verdict: step });
        if (step) {
          ep.state = env.snapshot();
          ep.success ||= step.success;
          if (step.terminated || step.truncated) {
            ep.ended = true;
            ep.truncated = step.truncated;
          } else ep.prompt = step.prompt;
        }
        if (!ep.ended && ep.rows.length >= turnLimit(ep.group)) {
          ep.ended = true;
          ep.truncated = true;
        }
      }
    }
    // Back to the drawn problems, so the next reset continues each env's generator from there.
    for (const [p, env] of this.envs.entries()) env.restore(snapshots[p]);

    const components = this.envs[0].rewardComponents;
    const head = { actorId: this.actorId, sequence: this.sequence++, policyVersion: version, numPrompts: P, groupSize: G };
    const out = packSequenceRollout(
      head,
      components,
      s.maxCompletionLength,
      episodes.flatMap((ep) => ep.rows),
    );
    out.episodeIds = Int32Array.from(episodes.flatMap((ep, e) => ep.rows.map(() => e)));
    out.episodeTruncated = Uint8Array.from(episodes, (ep) => (ep.truncated ? 1 : 0));
    out.episodes = episodes.map(
      (ep): EpisodeSummary => ({
        length: ep.rows.length,
        returns: Object.fromEntries(components.map((c) => [c, ep.rows.reduce((a, r) => a + (r.verdict?.reward[c] ?? 0), 0)])),
        success: ep.success,
      }),
    );
    return out;
  }
}
