/**
 * The multi-turn actor loop with a scripted generate function on a tiny world (walk `target` steps
 * with "a"): one row per turn, each next prompt is the last one plus the reply, a group's episodes
 * share the problem, every turn of the live episodes goes out in one generate call, episodes end
 * by the task, by max turns or by the context (truncated), refused turns score 0 and repeat the
 * prompt, returns sum the shaped per-turn rewards, and a restored collector replays the same rollout.
 */
import { describe, expect, it } from 'vitest';
import { ConversationCollector } from '../src/conversation-rollout';
import type { Rng } from '../src/rng';
import { type GenerateFn, SequenceCollector, type SequenceRequest, type TextCodec } from '../src/sequence-rollout';
import { type MultiTurnTextTask, TextEnv, type TextProblem, type Turn } from '../src/text-env';

interface Walk extends TextProblem {
  target: number;
  at: number;
}

/** "Go n:" then "a" moves one step (progress 0.1), anything else is invalid (-0.05); reaching n pays goal 1. */
const walk: MultiTurnTextTask<Walk> = {
  name: 'Walk',
  rewardComponents: ['goal', 'progress', 'invalid'],
  numLevels: 1,
  draw: (rng: Rng) => {
    const target = 1 + rng.int(3);
    return { prompt: `Go ${target}:`, target, at: 0 };
  },
  act(p, action): Turn {
    if (action !== 'a')
      return { reward: { goal: 0, progress: 0, invalid: -0.05 }, success: false, parsed: null, observation: '?', done: false };
    p.at++;
    const done = p.at === p.target;
    return { reward: { goal: done ? 1 : 0, progress: 0.1, invalid: 0 }, success: done, parsed: 'a', observation: `|${p.at}|`, done };
  },
};

/** Ids are char codes; 0 is EOS; 1 is not text. */
const codec: TextCodec = {
  encode: (t) => Array.from(t, (c) => c.charCodeAt(0)),
  decode: (ids) => {
    if (ids.includes(1)) throw new Error('not text');
    return String.fromCharCode(...ids);
  },
};
const text = (ids: ArrayLike<number>) => String.fromCharCode(...Array.from(ids));

/** Answers every request with `reply(request, index in the call)`, recording each call's rows. */
function scripted(calls: SequenceRequest[][], reply: (r: SequenceRequest, i: number) => string): GenerateFn {
  return async (rows) => {
    calls.push([...rows]);
    const results = rows.map((r, i) => {
      const tokens = [...codec.encode(reply(r, i)), 0];
      return { tokens, logProbs: tokens.map(() => -0.5), stopReason: 'eos' as const };
    });
    return { results, version: 4 };
  };
}

const sampling = { numGenerations: 2, maxCompletionLength: 3, temperature: 1, topK: 0, topP: 1, eosTokenId: 0 };
const envs = (n: number, steps = 5) => Array.from({ length: n }, () => new TextEnv(walk, steps));
const rowsOf = (r: { groupIds: Int32Array }) => r.groupIds.length;

describe('ConversationCollector', () => {
  it('writes one row per turn, prompts growing by each reply, groups sharing their problem', async () => {
    const calls: SequenceRequest[][] = [];
    const c = new ConversationCollector(envs(3), codec, 'a0', sampling, 2);
    const r = await c.collect(scripted(calls, () => 'a'));
    const targets = c.envs.map((e) => (e.current as Walk).target);
    expect(new Set(targets).size).toBeGreaterThan(1);
    // Every episode walks straight to its target: target turns each, G = 2 episodes per problem.
    expect(r.numPrompts).toBe(3);
    expect(r.groupSize).toBe(2);
    expect(r.episodes.map((e) => e.length)).toEqual(targets.flatMap((t) => [t, t]));
    expect(rowsOf(r)).toBe(2 * targets.reduce((a, t) => a + t, 0));
    // One generate call per turn holding every live episode.
    expect(calls.map((c) => c.length)).toEqual([1, 2, 3].map((t) => 2 * targets.filter((n) => n >= t).length));
    const episodeIds = Array.from(r.episodeIds ?? []);
    expect(episodeIds).toEqual([...episodeIds].sort((a, b) => a - b));
    const Lp = r.promptLength;
    const prompt = (row: number) => text(r.promptIds.subarray(row * Lp, row * Lp + r.promptLengths[row]));
    for (let row = 0; row < rowsOf(r); row++) {
      const e = episodeIds[row];
      expect(r.groupIds[row]).toBe(Math.floor(e / 2));
      const first = episodeIds.indexOf(e);
      const turn = row - first;
      // The prompt is the conversation so far: the problem, then per earlier turn the action and the reply.
      let want = `Go ${targets[r.groupIds[row]]}:`;
      for (let j = 1; j <= turn; j++) want += `a|${j}|`;
      expect(prompt(row)).toBe(want);
      expect(Array.from(r.completionIds.subarray(row * r.completionLength, row * r.completionLength + 2))).toEqual([97, 0]);
      expect(r.logProbs[row * r.completionLength]).toBeCloseTo(-0.5);
      const last = turn === targets[r.groupIds[row]] - 1;
      expect(r.rewards.goal[row]).toBe(last ? 1 : 0);
      expect(r.rewards.progress[row]).toBeCloseTo(0.1);
      expect(r.success[row]).toBe(last ? 1 : 0);
    }
    for (const [e, ep] of r.episodes.entries()) {
      expect(ep.success).toBe(true);
      expect(ep.returns.goal).toBe(1);
      expect(ep.returns.progress).toBeCloseTo(0.1 * targets[Math.floor(e / 2)], 6);
    }
    expect(Array.from(r.episodeTruncated ?? [])).toEqual(new Array(6).fill(0));
    expect(r.policyVersion).toBe(4);
    // The envs are back at their drawn problems, so the next rollout draws new ones from there.
    expect(c.envs.every((e) => (e.current as Walk).at === 0)).toBe(true);
  });

  it('ends an episode as truncated at max turns, at the env time limit and when the next prompt would not fit', async () => {
    const calls: SequenceRequest[][] = [];
    const capped = await new ConversationCollector(envs(2), codec, 'a0', sampling, 2, { maxTurns: 3 }).collect(scripted(calls, () => 'x'));
    expect(capped.episodes.map((e) => e.length)).toEqual([3, 3, 3, 3]);
    expect(Array.from(capped.episodeTruncated ?? [])).toEqual([1, 1, 1, 1]);
    expect(capped.episodes.every((e) => !e.success && Math.abs(e.returns.invalid + 0.15) < 1e-6)).toBe(true);
    // Without max turns the env's maxEpisodeSteps (4 here) ends it.
    const limited = await new ConversationCollector(envs(1, 4), codec, 'a0', sampling, 2).collect(scripted([], () => 'x'));
    expect(limited.episodes.map((e) => e.length)).toEqual([4, 4]);
    expect(Array.from(limited.episodeTruncated ?? [])).toEqual([1, 1]);
    // "Go n:" is 5 tokens; one more turn adds "x?" (2): room for exactly two more turns' prompts.
    const tight = await new ConversationCollector(envs(1), codec, 'a0', sampling, 2, { maxPromptTokens: 9 }).collect(
      scripted([], () => 'x'),
    );
    expect(tight.episodes.map((e) => e.length)).toEqual([3, 3]);
    expect(Math.max(...tight.promptLengths)).toBe(9);
    expect(Array.from(tight.episodeTruncated ?? [])).toEqual([1, 1]);
  });

  it('scores a refused turn 0, keeps the env as it was and asks the same prompt again', async () => {
    const calls: SequenceRequest[][] = [];
    // The first turn of every episode is empty (EOS only: the env refuses it), then "a" to the end.
    const c = new ConversationCollector(envs(1), codec, 'a0', sampling, 5);
    const r = await c.collect(scripted(calls, () => (calls.length === 1 ? '' : 'a')));
    const target = (c.envs[0].current as Walk).target;
    expect(r.episodes.map((e) => e.length)).toEqual([target + 1, target + 1]);
    expect(r.refused[0]).toBe(1);
    expect(r.rewards.invalid[0]).toBe(0);
    expect(text(calls[1][0].prompt)).toBe(text(calls[0][0].prompt));
    expect(r.episodes.every((e) => e.success)).toBe(true);
  });

  it('a restored collector plays the same rollouts as the one it was saved from', async () => {
    const gen = () => scripted([], (req) => (req.seed % 3 === 0 ? 'x' : 'a'));
    const a = new ConversationCollector(envs(2), codec, 'a0', sampling, 9, { maxTurns: 4 });
    await a.collect(gen());
    const saved = structuredClone(a.snapshot());
    const next = await a.collect(gen());
    const b = new ConversationCollector(envs(2), codec, 'a0', sampling, 9, { maxTurns: 4 });
    b.restore(saved);
    expect(await b.collect(gen())).toEqual(next);
  });

  it('refuses single-turn envs and bad limits', () => {
    const single = new TextEnv({
      name: 'One',
      rewardComponents: ['c'],
      numLevels: 1,
      draw: () => ({ prompt: 'p' }),
      verify: () => ({ reward: { c: 0 }, success: false, parsed: null }),
    });
    expect(() => new ConversationCollector([single], codec, 'a0', sampling, 1)).toThrow(/One is a single-turn text env/);
    expect(() => new ConversationCollector(envs(1), codec, 'a0', sampling, 1, { maxTurns: 0 })).toThrow(/maxTurns/);
    expect(new ConversationCollector(envs(1), codec, 'a0', sampling, 1)).toBeInstanceOf(SequenceCollector);
  });
});
