/**
 * Archived LLM calls as GRPO rollouts, one per clock window (the Babylon design: every agent in a
 * window faced the same market, so a window is a group). Reads top to bottom:
 *
 *   calls of a trajectory   its own (recorded inside it) plus the agent's calls recorded outside any
 *                           trajectory (the OpenAI-compatible endpoint's) between its start and end
 *   token ids               prompt: the caller's encoder over the recorded messages (the endpoint's
 *                           chat template and the run's tokenizer), checked against the recorded
 *                           prompt token count; completion: each recorded token's UTF-8 bytes looked
 *                           up in the byte-level vocabulary (a special token by its text)
 *   behaviour log-probs     as recorded (the generating policy's, at temperature 1), so the update is
 *                           off-policy through GRPO's importance ratio, as num_iterations > 1 already is
 *   rows                    K calls of every trajectory with usable calls (a seeded draw, repeated
 *                           when it has fewer), each rewarded with its trajectory's judge score; equal
 *                           rows per trajectory keep the group's mean the trajectories' mean
 *
 * The archive and its rows are described by the fields read here (matched by shape), so the learner
 * does not depend on the archive package.
 */
import { Rng, type SequenceRollout } from '@rlmesh/core';
import { bytesToUnicode, type Tokenizer } from '@rlmesh/text';

export interface ArchivedTrajectory {
  id: string;
  agentId: string;
  windowId: string;
  startedAt: Date;
  endedAt: Date;
}

export interface ArchivedCall {
  id: string;
  trajectoryId: string | null;
  agentId: string | null;
  model: string;
  messages: { role: string; content: string }[];
  finishReason: string | null;
  promptTokens: number | null;
  logprobs: { token: string; logprob: number; bytes?: number[] | null }[] | null;
  at: Date;
}

/** The calls of `t`: its own, then its agent's calls outside any trajectory during it, by time. */
export function callsOfTrajectory(
  t: ArchivedTrajectory,
  own: readonly ArchivedCall[],
  windowCalls: readonly ArchivedCall[],
): ArchivedCall[] {
  const from = t.startedAt.getTime();
  const to = t.endedAt.getTime();
  const loose = windowCalls.filter(
    (c) => c.trajectoryId === null && c.agentId === t.agentId && c.at.getTime() >= from && c.at.getTime() <= to,
  );
  return [...own, ...loose].sort((a, b) => a.at.getTime() - b.at.getTime());
}

/** The token ids of a recorded completion, or the reason they cannot be recovered. */
export function completionTokenIds(call: ArchivedCall, tokenizer: Tokenizer): number[] | string {
  if (!call.logprobs || call.logprobs.length === 0) return 'no recorded tokens';
  const ids: number[] = [];
  for (const entry of call.logprobs) {
    const special = tokenizer.tokenToId(entry.token);
    if (special !== undefined && tokenizer.isSpecial(special)) ids.push(special);
    else {
      if (!entry.bytes) return 'a token without its bytes';
      const id = tokenizer.tokenToId(bytesToUnicode(Uint8Array.from(entry.bytes)));
      if (id === undefined) return "a token outside the tokenizer's vocabulary";
      ids.push(id);
    }
  }
  return ids;
}

/** The policy version a recorded model id names (`<run>@v<n>`), else null. */
export function versionOf(model: string): number | null {
  const m = /@v(\d+)$/.exec(model);
  return m ? Number(m[1]) : null;
}

interface Row {
  prompt: number[];
  completion: number[];
  logProbs: number[];
  truncated: boolean;
  score: number;
  version: number | null;
}

export interface WindowRolloutInput {
  windowId: string;
  trajectories: readonly ArchivedTrajectory[];
  /** Trajectory id -> its calls (callsOfTrajectory). */
  calls: ReadonlyMap<string, readonly ArchivedCall[]>;
  /** Trajectory id -> judge score; a trajectory without one is left out. */
  scores: ReadonlyMap<string, number>;
  tokenizer: Tokenizer;
  /** The prompt token ids the endpoint generated from, for the recorded messages. */
  encodePrompt: (messages: ArchivedCall['messages']) => number[];
  /** K: rows per trajectory. */
  callsPerTrajectory: number;
  seed: number;
  /** The version a row without a recorded one is taken to be from (the learner's current). */
  currentVersion: number;
}

export interface WindowRollout {
  /** null when fewer than two trajectories had usable calls (no group to compare within). */
  rollout: SequenceRollout | null;
  trajectories: number;
  /** Calls left out, by reason. */
  skipped: Record<string, number>;
}

/** One window's rollout: numPrompts 1, groupSize = rows, reward component `judge`. */
export function windowRollout(x: WindowRolloutInput): WindowRollout {
  const skipped: Record<string, number> = {};
  const skip = (reason: string) => {
    skipped[reason] = (skipped[reason] ?? 0) + 1;
  };
  const rng = new Rng(x.seed);
  const rows: Row[] = [];
  let trajectories = 0;
  for (const t of x.trajectories) {
    const score = x.scores.get(t.id);
    const calls = x.calls.get(t.id) ?? [];
    if (score === undefined) {
      for (const _ of calls) skip('trajectory not judged');
      continue;
    }
    const usable: Row[] = [];
    for (const c of calls) {
      const completion = completionTokenIds(c, x.tokenizer);
      if (typeof completion === 'string') {
        skip(completion);
        continue;
      }
      const prompt = x.encodePrompt(c.messages);
      if (c.promptTokens !== null && c.promptTokens !== prompt.length) {
        skip('prompt re-encodes to another length than recorded');
        continue;
      }
      const logProbs = (c.logprobs ?? []).map((l) => l.logprob);
      usable.push({ prompt, completion, logProbs, truncated: c.finishReason === 'length', score, version: versionOf(c.model) });
    }
    if (usable.length === 0) continue;
    trajectories++;
    const order = usable.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let k = 0; k < x.callsPerTrajectory; k++) rows.push(usable[order[k % order.length]]);
  }
  if (trajectories < 2) return { rollout: null, trajectories, skipped };
  return { rollout: toRollout(x.windowId, rows, x.currentVersion), trajectories, skipped };
}

function toRollout(windowId: string, rows: Row[], currentVersion: number): SequenceRollout {
  const n = rows.length;
  const Lp = Math.max(...rows.map((r) => r.prompt.length));
  const Lc = Math.max(...rows.map((r) => r.completion.length));
  const promptIds = new Int32Array(n * Lp);
  const promptLengths = new Int32Array(n);
  const completionIds = new Int32Array(n * Lc);
  const completionMask = new Uint8Array(n * Lc);
  const logProbs = new Float32Array(n * Lc);
  const judge = new Float32Array(n);
  const truncated = new Uint8Array(n);
  const success = new Uint8Array(n);
  rows.forEach((r, i) => {
    promptIds.set(r.prompt, i * Lp);
    promptLengths[i] = r.prompt.length;
    completionIds.set(r.completion, i * Lc);
    completionMask.fill(1, i * Lc, i * Lc + r.completion.length);
    logProbs.set(r.logProbs, i * Lc);
    judge[i] = r.score;
    truncated[i] = r.truncated ? 1 : 0;
    success[i] = r.score >= 0.5 ? 1 : 0;
  });
  const versions = rows.map((r) => r.version ?? currentVersion);
  return {
    actorId: `window:${windowId}`,
    sequence: 0,
    policyVersion: Math.min(...versions),
    numPrompts: 1,
    groupSize: n,
    promptLength: Lp,
    completionLength: Lc,
    promptIds,
    promptLengths,
    completionIds,
    completionMask,
    logProbs,
    rewards: { judge },
    success,
    refused: new Uint8Array(n),
    truncated,
    groupIds: new Int32Array(n),
    episodes: rows.map((r) => ({ length: 1, returns: { judge: r.score }, success: r.score >= 0.5 })),
  };
}
