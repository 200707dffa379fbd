/**
 * The token-sequence rollout and the one text actor loop that plays it, for RL on language models
 * (GRPO and its kin): P text environments each draw a prompt, the policy writes G completions of
 * every prompt (a group), the environment scores each completion. Every mode runs this loop; what
 * varies is the generate function: an in-process generator in the embedded mode, the policy
 * service's Generate through the mesh. A SequenceRollout is plain typed arrays, so it encodes as a
 * trajectory chunk as it is.
 *
 * A group is G completions of the SAME problem: the env is reset once (drawing the problem), its
 * state is snapshotted, and before each completion is scored the snapshot is restored, so every
 * completion is judged against the same answer and the env's generator moves on once per prompt.
 * A completion the env refuses (empty, not UTF-8, over its byte limit) or one that cannot be
 * decoded scores 0 on every reward component and counts as `refused`; the loop goes on.
 *
 * Multi-turn envs have their own loop (conversation-rollout.ts) that writes the same rollout with one
 * row per turn; the request, scoring and packing helpers below are shared by both loops.
 */

import { Rng, type RngState } from './rng';
import type { EpisodeSummary } from './rollout';
import { type TextEnv, TextInputError, type TextStep } from './text-env';

/** One row for the generate function: GPT-2 generation's options, by the names Gpt2Generator takes. */
export interface SequenceRequest {
  prompt: readonly number[];
  maxNewTokens: number;
  /** 0 is greedy; logits are divided by it before the softmax. */
  temperature: number;
  /** 0 keeps every token. */
  topK: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
  seed: number;
  eosTokenId?: number;
}

/** One generated row: the new tokens (EOS included when it stopped the row) and their behaviour log-probs. */
export interface SequenceResult {
  tokens: readonly number[];
  /** log pi(token) under the policy that generated it (temperature 1, untruncated). */
  logProbs: readonly number[];
  stopReason: 'max_tokens' | 'eos' | 'stop' | 'cancelled';
}

/**
 * What the actor calls to write completions: token ids and sampling options in, tokens, per-token
 * log-probs and stop reasons out, with the policy version that answered. In-process generation and
 * the policy service's Generate RPC are both this function.
 */
export type GenerateFn = (rows: readonly SequenceRequest[]) => Promise<{ results: SequenceResult[]; version: number }>;

/** Text to ids and back, as the policy's tokenizer does it; `decode` throws for ids that are not text. */
export interface TextCodec {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

export interface SequenceSampling {
  /** G: completions per prompt. */
  numGenerations: number;
  maxCompletionLength: number;
  temperature: number;
  topK: number;
  topP: number;
  /** Ends a completion (kept in it, dropped before decoding); null: only the length limit does. */
  eosTokenId: number | null;
}

export interface SequenceRollout {
  actorId: string;
  sequence: number;
  /** The oldest policy version that generated in it. */
  policyVersion: number;
  /**
   * P problems x G episodes of each (a group). Single-turn: one row per episode, row r in group
   * floor(r / G). Multi-turn: one row per turn, so rows (sequenceRows) vary; see episodeIds.
   */
  numPrompts: number;
  groupSize: number;
  /** Widest prompt (Lp) and completion (Lc) in tokens. */
  promptLength: number;
  completionLength: number;
  /** [rows, Lp], each prompt left-aligned and right-padded with 0; promptLengths gives the real length. */
  promptIds: Int32Array;
  promptLengths: Int32Array; // [rows]
  /** [rows, Lc] right-padded with 0; completionMask is 1 on the generated tokens (EOS included). */
  completionIds: Int32Array;
  completionMask: Uint8Array;
  /** [rows, Lc] behaviour log-probs of the completion tokens, 0 on padding. */
  logProbs: Float32Array;
  /** component -> [rows] */
  rewards: Record<string, Float32Array>;
  success: Uint8Array; // [rows]
  /** 1 where the env refused the completion or it could not be decoded (all rewards 0). */
  refused: Uint8Array; // [rows]
  /** 1 where the completion hit maxCompletionLength without EOS. */
  truncated: Uint8Array; // [rows]
  groupIds: Int32Array; // [rows]
  /**
   * Multi-turn only: the episode of each row; an episode's rows are contiguous and in turn order,
   * episode e in group floor(e / G). Absent: row r is episode r (one turn each).
   */
  episodeIds?: Int32Array;
  /** Multi-turn only, [episodes]: 1 where a limit (turns, the model's context) ended the episode, not the task. */
  episodeTruncated?: Uint8Array;
  /** One finished episode per row (single-turn) or per conversation (multi-turn), in episode order. */
  episodes: EpisodeSummary[];
}

/** The rows of a rollout: completions (single-turn) or turns (multi-turn). */
export function sequenceRows(r: SequenceRollout): number {
  return r.groupIds.length;
}

/** The episode of every row: episodeIds, or row r itself for one-turn episodes. */
export function rowEpisodes(r: SequenceRollout): Int32Array {
  return r.episodeIds ?? Int32Array.from({ length: sequenceRows(r) }, (_, i) => i);
}

/** One generate row for `prompt`, with the sampling options and a seed drawn from `rng`. */
export function sequenceRequest(prompt: readonly number[], s: SequenceSampling, rng: Rng): SequenceRequest {
  return {
    prompt,
    maxNewTokens: s.maxCompletionLength,
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    seed: rng.nextU32() % 2 ** 31,
    ...(s.eosTokenId === null ? {} : { eosTokenId: s.eosTokenId }),
  };
}

/**
 * Steps `env` with a generated completion (EOS dropped before decoding); null when it was refused:
 * not text, or a TextInputError from the env (which is then left as it was).
 */
export function stepCompletion(env: TextEnv, codec: TextCodec, eosTokenId: number | null, res: SequenceResult): TextStep | null {
  const ids = eosTokenId !== null && res.tokens[res.tokens.length - 1] === eosTokenId ? res.tokens.slice(0, -1) : res.tokens;
  let text: string;
  try {
    text = codec.decode(ids);
  } catch {
    return null;
  }
  try {
    return env.step(text);
  } catch (e) {
    if (e instanceof TextInputError) return null;
    throw e;
  }
}

/** One row before packing: its prompt, what was generated, its group and the env's verdict (null: refused). */
export interface SequenceRow {
  prompt: readonly number[];
  result: SequenceResult;
  group: number;
  verdict: { reward: Record<string, number>; success: boolean } | null;
}

/** Packs rows (in their final order) into a rollout's padded arrays; the caller adds episodes and multi-turn fields. */
export function packSequenceRollout(
  head: Pick<SequenceRollout, 'actorId' | 'sequence' | 'policyVersion' | 'numPrompts' | 'groupSize'>,
  components: readonly string[],
  maxCompletionLength: number,
  rows: readonly SequenceRow[],
): SequenceRollout {
  const n = rows.length;
  const Lp = Math.max(1, ...rows.map((r) => r.prompt.length));
  const Lc = Math.max(1, ...rows.map((r) => r.result.tokens.length));
  const out: SequenceRollout = {
    ...head,
    promptLength: Lp,
    completionLength: Lc,
    promptIds: new Int32Array(n * Lp),
    promptLengths: new Int32Array(n),
    completionIds: new Int32Array(n * Lc),
    completionMask: new Uint8Array(n * Lc),
    logProbs: new Float32Array(n * Lc),
    rewards: Object.fromEntries(components.map((c) => [c, new Float32Array(n)])),
    success: new Uint8Array(n),
    refused: new Uint8Array(n),
    truncated: new Uint8Array(n),
    groupIds: new Int32Array(n),
    episodes: [],
  };
  for (const [r, row] of rows.entries()) {
    const res = row.result;
    if (res.logProbs.length !== res.tokens.length)
      throw new Error(`generate row ${r}: ${res.tokens.length} tokens but ${res.logProbs.length} log-probs`);
    out.groupIds[r] = row.group;
    out.promptIds.set(row.prompt, r * Lp);
    out.promptLengths[r] = row.prompt.length;
    out.completionIds.set(res.tokens, r * Lc);
    out.completionMask.fill(1, r * Lc, r * Lc + res.tokens.length);
    out.logProbs.set(res.logProbs, r * Lc);
    out.truncated[r] = res.stopReason === 'max_tokens' && res.tokens.length >= maxCompletionLength ? 1 : 0;
    for (const c of components) out.rewards[c][r] = row.verdict?.reward[c] ?? 0;
    out.success[r] = row.verdict?.success ? 1 : 0;
    out.refused[r] = row.verdict ? 0 : 1;
  }
  return out;
}

export interface SequenceCollectorState {
  envs: unknown[];
  rng: RngState;
  sequence: number;
  started: boolean;
}

export class SequenceCollector {
  sequence = 0;
  protected rng: Rng;
  private started = false;

  constructor(
    readonly envs: readonly TextEnv[],
    readonly codec: TextCodec,
    readonly actorId: string,
    readonly sampling: SequenceSampling,
    private readonly seed: number,
  ) {
    if (envs.length < 1) throw new Error('SequenceCollector: needs at least one text env (one per prompt of an update)');
    if (!Number.isInteger(sampling.numGenerations) || sampling.numGenerations < 1)
      throw new Error(`SequenceCollector: numGenerations must be a positive integer, got ${sampling.numGenerations}`);
    this.rng = new Rng(seed ^ 0x2545f491);
  }

  /** Draws one prompt per env, generates G completions of each, scores them. */
  async collect(generate: GenerateFn): Promise<SequenceRollout> {
    const P = this.envs.length;
    const G = this.sampling.numGenerations;
    const s = this.sampling;
    const { prompts, snapshots } = this.drawProblems();
    const promptIds = prompts.map((p) => this.codec.encode(p));
    const requests: SequenceRequest[] = [];
    for (let p = 0; p < P; p++) for (let k = 0; k < G; k++) requests.push(sequenceRequest(promptIds[p], s, this.rng));
    const { results, version } = await generate(requests);
    if (results.length !== requests.length) throw new Error(`generate returned ${results.length} rows for ${requests.length} requests`);
    const rows: SequenceRow[] = results.map((res, r) => {
      const p = Math.floor(r / G);
      const env = this.envs[p];
      env.restore(snapshots[p]);
      return { prompt: promptIds[p], result: res, group: p, verdict: stepCompletion(env, this.codec, s.eosTokenId, res) };
    });
    const components = this.envs[0].rewardComponents;
    const head = { actorId: this.actorId, sequence: this.sequence++, policyVersion: version, numPrompts: P, groupSize: G };
    const out = packSequenceRollout(head, components, s.maxCompletionLength, rows);
    for (let r = 0; r < rows.length; r++)
      out.episodes.push({
        length: 1,
        returns: Object.fromEntries(components.map((c) => [c, out.rewards[c][r]])),
        success: out.success[r] === 1,
      });
    return out;
  }

  /** Resets every env (drawing its problem) and snapshots it, so each episode of a group starts from the same state. */
  protected drawProblems(): { prompts: string[]; snapshots: unknown[] } {
    const prompts: string[] = [];
    const snapshots: unknown[] = [];
    for (const [i, env] of this.envs.entries()) {
      // Seeded once, on the first rollout; later resets continue each env's generator.
      prompts.push(this.started ? env.reset() : env.reset(this.seed + i));
      snapshots.push(env.snapshot());
    }
    this.started = true;
    return { prompts, snapshots };
  }

  snapshot(): SequenceCollectorState {
    return { envs: this.envs.map((e) => e.snapshot()), rng: this.rng.state(), sequence: this.sequence, started: this.started };
  }

  restore(s: SequenceCollectorState): void {
    if (s.envs.length !== this.envs.length)
      throw new Error(`restore: the snapshot holds ${s.envs.length} text envs, this collector has ${this.envs.length}`);
    for (const [i, e] of this.envs.entries()) e.restore(s.envs[i]);
    this.rng = Rng.fromState(s.rng);
    this.sequence = s.sequence;
    this.started = s.started;
  }
}
