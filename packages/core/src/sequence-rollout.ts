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
 */

import { Rng, type RngState } from './rng';
import type { EpisodeSummary } from './rollout';
import { type TextEnv, TextInputError } from './text-env';

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
  /** P prompts x G completions = rows, row r in group floor(r / G). */
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
  /** One finished episode per row. */
  episodes: EpisodeSummary[];
}

export interface SequenceCollectorState {
  envs: unknown[];
  rng: RngState;
  sequence: number;
  started: boolean;
}

export class SequenceCollector {
  sequence = 0;
  private rng: Rng;
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
    const prompts: string[] = [];
    const snapshots: unknown[] = [];
    for (const [i, env] of this.envs.entries()) {
      // Seeded once, on the first rollout; later resets continue each env's generator.
      prompts.push(this.started ? env.reset() : env.reset(this.seed + i));
      snapshots.push(env.snapshot());
    }
    this.started = true;
    const promptIds = prompts.map((p) => this.codec.encode(p));
    const requests: SequenceRequest[] = [];
    for (let p = 0; p < P; p++)
      for (let k = 0; k < G; k++)
        requests.push({
          prompt: promptIds[p],
          maxNewTokens: s.maxCompletionLength,
          temperature: s.temperature,
          topK: s.topK,
          topP: s.topP,
          seed: this.rng.nextU32() % 2 ** 31,
          ...(s.eosTokenId === null ? {} : { eosTokenId: s.eosTokenId }),
        });
    const { results, version } = await generate(requests);
    if (results.length !== requests.length) throw new Error(`generate returned ${results.length} rows for ${requests.length} requests`);

    const rows = P * G;
    const Lp = Math.max(...promptIds.map((p) => p.length));
    const Lc = Math.max(1, ...results.map((r) => r.tokens.length));
    const components = this.envs[0].rewardComponents;
    const out: SequenceRollout = {
      actorId: this.actorId,
      sequence: this.sequence++,
      policyVersion: version,
      numPrompts: P,
      groupSize: G,
      promptLength: Lp,
      completionLength: Lc,
      promptIds: new Int32Array(rows * Lp),
      promptLengths: new Int32Array(rows),
      completionIds: new Int32Array(rows * Lc),
      completionMask: new Uint8Array(rows * Lc),
      logProbs: new Float32Array(rows * Lc),
      rewards: Object.fromEntries(components.map((c) => [c, new Float32Array(rows)])),
      success: new Uint8Array(rows),
      refused: new Uint8Array(rows),
      truncated: new Uint8Array(rows),
      groupIds: new Int32Array(rows),
      episodes: [],
    };
    for (let r = 0; r < rows; r++) {
      const p = Math.floor(r / G);
      const res = results[r];
      if (res.logProbs.length !== res.tokens.length)
        throw new Error(`generate row ${r}: ${res.tokens.length} tokens but ${res.logProbs.length} log-probs`);
      out.groupIds[r] = p;
      out.promptIds.set(promptIds[p], r * Lp);
      out.promptLengths[r] = promptIds[p].length;
      out.completionIds.set(res.tokens, r * Lc);
      out.completionMask.fill(1, r * Lc, r * Lc + res.tokens.length);
      out.logProbs.set(res.logProbs, r * Lc);
      out.truncated[r] = res.stopReason === 'max_tokens' && res.tokens.length >= s.maxCompletionLength ? 1 : 0;
      const env = this.envs[p];
      env.restore(snapshots[p]);
      const verdict = this.score(env, res);
      for (const c of components) out.rewards[c][r] = verdict?.reward[c] ?? 0;
      out.success[r] = verdict?.success ? 1 : 0;
      out.refused[r] = verdict ? 0 : 1;
      out.episodes.push({
        length: 1,
        returns: Object.fromEntries(components.map((c) => [c, out.rewards[c][r]])),
        success: out.success[r] === 1,
      });
    }
    return out;
  }

  /** The env's verdict on one completion, or null when it was refused (or not text). */
  private score(env: TextEnv, res: SequenceResult): { reward: Record<string, number>; success: boolean } | null {
    const s = this.sampling;
    const ids = s.eosTokenId !== null && res.tokens[res.tokens.length - 1] === s.eosTokenId ? res.tokens.slice(0, -1) : res.tokens;
    let text: string;
    try {
      text = this.codec.decode(ids);
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
