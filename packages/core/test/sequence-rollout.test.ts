/**
 * The text actor loop with a scripted generate function: rows come group after group with the
 * same prompt, every completion of a group is judged against the same problem, refused and
 * undecodable completions score 0 and the loop goes on, EOS is kept in the tokens but not in the
 * text, and a restored collector draws the same prompts and seeds as the one it was saved from.
 */
import { describe, expect, it } from 'vitest';
import type { Rng } from '../src/rng';
import { type GenerateFn, SequenceCollector, type SequenceRequest, type TextCodec } from '../src/sequence-rollout';
import { TextEnv, type TextProblem, type TextTask } from '../src/text-env';

interface Sum extends TextProblem {
  answer: string;
}

/** "a+b=" -> the digits of the sum; `format` is 1 when nothing but the answer was written. */
const sums: TextTask<Sum> = {
  name: 'Sums',
  rewardComponents: ['correct', 'format'],
  numLevels: 1,
  draw(rng: Rng) {
    const a = rng.int(10);
    const b = rng.int(10);
    return { prompt: `${a}+${b}=`, answer: String(a + b) };
  },
  verify(p, completion) {
    const ok = completion.trim() === p.answer;
    return { reward: { correct: ok ? 1 : 0, format: /^\d+$/.test(completion) ? 1 : 0 }, success: ok, parsed: completion.trim() };
  },
};

/** Ids are char codes; 0 is EOS; 1 is not text (decode throws). */
const codec: TextCodec = {
  encode: (t) => Array.from(t, (c) => c.charCodeAt(0)),
  decode: (ids) => {
    if (ids.includes(1)) throw new Error('not text');
    return String.fromCharCode(...ids);
  },
};

/** Answers every prompt of a group differently: right with EOS, wrong, empty (EOS only), undecodable, right without EOS. */
function scripted(seen: SequenceRequest[]): GenerateFn {
  return async (rows) => {
    seen.push(...rows);
    const results = rows.map((r, i) => {
      const text = codec.decode(r.prompt);
      const [a, b] = text.slice(0, -1).split('+').map(Number);
      const right = Array.from(String(a + b), (c) => c.charCodeAt(0));
      const k = i % 5;
      const tokens = k === 0 ? [...right, 0] : k === 1 ? [...right, 55, 0] : k === 2 ? [0] : k === 3 ? [1, 0] : right;
      return { tokens, logProbs: tokens.map((_, t) => -0.1 * (t + 1)), stopReason: (k === 4 ? 'max_tokens' : 'eos') as 'eos' };
    });
    return { results, version: 7 };
  };
}

const sampling = { numGenerations: 5, maxCompletionLength: 4, temperature: 1, topK: 0, topP: 1, eosTokenId: 0 };

describe('SequenceCollector', () => {
  it('lays out P groups of G rows of one prompt each, scored against the same problem', async () => {
    const envs = [new TextEnv(sums), new TextEnv(sums), new TextEnv(sums)];
    const seen: SequenceRequest[] = [];
    const c = new SequenceCollector(envs, codec, 'a0', sampling, 11);
    const r = await c.collect(scripted(seen));
    expect(r.numPrompts).toBe(3);
    expect(r.groupSize).toBe(5);
    expect(r.policyVersion).toBe(7);
    expect(Array.from(r.groupIds)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    for (let g = 0; g < 3; g++) {
      const prompts = seen.slice(g * 5, g * 5 + 5).map((q) => q.prompt.join(','));
      expect(new Set(prompts).size).toBe(1);
      // Every row gets its own sampling seed.
      expect(new Set(seen.slice(g * 5, g * 5 + 5).map((q) => q.seed)).size).toBe(5);
    }
    // Per group: right (1), wrong (0), empty -> refused, undecodable -> refused, right without EOS (1).
    expect(Array.from(r.rewards.correct)).toEqual([1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1]);
    expect(Array.from(r.refused)).toEqual([0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0]);
    expect(Array.from(r.success)).toEqual(Array.from(r.rewards.correct));
    expect(r.rewards.format[0]).toBe(1); // the EOS is not part of the text
    expect(r.episodes).toHaveLength(15);
    // Completions are right-padded; the mask covers the generated tokens, EOS included.
    const Lc = r.completionLength;
    const [a, b] = codec.decode(seen[0].prompt).slice(0, -1).split('+').map(Number);
    expect(Array.from(r.completionMask.subarray(0, Lc)).filter(Boolean)).toHaveLength(String(a + b).length + 1);
    expect(Array.from(r.completionMask.subarray(2 * Lc, 3 * Lc)).filter(Boolean)).toEqual([1]);
    expect(r.logProbs[2 * Lc]).toBeCloseTo(-0.1, 6);
    expect(r.promptLengths[0]).toBe(seen[0].prompt.length);
  });

  it('a restored collector draws the prompts and seeds the saved one would have', async () => {
    const make = () => new SequenceCollector([new TextEnv(sums), new TextEnv(sums)], codec, 'a0', sampling, 5);
    const a = make();
    await a.collect(scripted([]));
    const saved = a.snapshot();
    const next: SequenceRequest[] = [];
    await a.collect(scripted(next));
    const b = make();
    b.restore(JSON.parse(JSON.stringify(saved)));
    const again: SequenceRequest[] = [];
    await b.collect(scripted(again));
    expect(again).toEqual(next);
  });

  it('a generate function that returns the wrong number of rows is an error, not a silent misalignment', async () => {
    const c = new SequenceCollector([new TextEnv(sums)], codec, 'a0', sampling, 1);
    await expect(c.collect(async () => ({ results: [], version: 1 }))).rejects.toThrow(/0 rows for 5 requests/);
  });
});
