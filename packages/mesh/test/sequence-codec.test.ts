/**
 * A token-sequence rollout survives the trip through a TrajectoryChunk and its bytes exactly, and a
 * malformed sequence chunk is a TensorError naming the field and the rule.
 */
import { type GenerateFn, type Rng, SequenceCollector, type SequenceRollout, TextEnv, type TextTask } from '@rlmesh/core';
import { TensorError, TrajectoryChunk } from '@rlmesh/proto';
import { describe, expect, it } from 'vitest';
import { chunkBytes, decodeSequenceRollout, encodeSequenceRollout } from '../src/codec';

const task: TextTask<{ prompt: string; n: number }> = {
  name: 'Count',
  rewardComponents: ['correct', 'format'],
  numLevels: 1,
  draw: (rng: Rng) => {
    const n = 1 + rng.int(5);
    return { prompt: 'x'.repeat(n), n };
  },
  verify: (p, c) => ({ reward: { correct: c.length === p.n ? 1 : 0, format: 1 }, success: c.length === p.n, parsed: c }),
};
const codec = {
  encode: (t: string) => Array.from(t, () => 3),
  decode: (ids: readonly number[]) => 'y'.repeat(ids.filter((i) => i !== 0).length),
};
/** Row k writes k % 4 + 1 tokens, the last of them EOS (0) on even rows. */
const scripted: GenerateFn = async (rows) => ({
  results: rows.map((r, k) => {
    const tokens = Array.from({ length: (k % 4) + 1 }, (_, j) => (k % 2 === 0 && j === k % 4 ? 0 : 4 + j));
    return { tokens, logProbs: tokens.map((_, j) => -0.25 * (j + 1) - r.seed * 1e-12), stopReason: k % 2 === 0 ? 'eos' : 'max_tokens' };
  }),
  version: 5,
});

async function rollout(): Promise<SequenceRollout> {
  const c = new SequenceCollector(
    [new TextEnv(task), new TextEnv(task)],
    codec,
    'actor-7',
    {
      numGenerations: 3,
      maxCompletionLength: 4,
      temperature: 1,
      topK: 0,
      topP: 1,
      eosTokenId: 0,
    },
    2,
  );
  return c.collect(scripted);
}
const SHAPE = { numPrompts: 2, groupSize: 3, maxCompletionLength: 4, vocabSize: 8, components: ['correct', 'format'] };

describe('sequence rollouts as chunks', () => {
  it('round-trips through the chunk and its bytes', async () => {
    const r = await rollout();
    const chunk = TrajectoryChunk.decode(chunkBytes(encodeSequenceRollout('run-1', r)));
    expect(chunk.runId).toBe('run-1');
    expect(chunk.numEnvs).toBe(6);
    const back = decodeSequenceRollout(chunk, SHAPE);
    expect(back).toEqual(r);
  });

  it('a malformed chunk names the field and the rule', async () => {
    const r = await rollout();
    const bad = (edit: (c: TrajectoryChunk) => void) => {
      const c = TrajectoryChunk.decode(chunkBytes(encodeSequenceRollout('run-1', r)));
      edit(c);
      return () => decodeSequenceRollout(c, SHAPE);
    };
    expect(
      bad((c) => {
        c.sequences = undefined;
      }),
    ).toThrow(/sequences: is required/);
    expect(() =>
      decodeSequenceRollout(TrajectoryChunk.decode(chunkBytes(encodeSequenceRollout('r', r))), { ...SHAPE, groupSize: 2, numPrompts: 3 }),
    ).toThrow(/sequences: holds 2 prompts x 3; the run expects 3 x 2/);
    expect(() =>
      decodeSequenceRollout(TrajectoryChunk.decode(chunkBytes(encodeSequenceRollout('r', r))), { ...SHAPE, vocabSize: 5 }),
    ).toThrow(/sequences\.completion_ids: element \d+ is \d, not a token id below 5/);
    expect(() =>
      decodeSequenceRollout(TrajectoryChunk.decode(chunkBytes(encodeSequenceRollout('r', r))), { ...SHAPE, maxCompletionLength: 3 }),
    ).toThrow(/sequences\.completion_ids: has 4 tokens per row; the run allows 3/);
    expect(
      bad((c) => {
        if (c.sequences?.promptLengths) c.sequences.promptLengths.data = Buffer.alloc(24);
      }),
    ).toThrow(/sequences\.prompt_lengths: element 0 is 0/);
    expect(
      bad((c) => {
        if (c.sequences?.groupIds) c.sequences.groupIds.data = Buffer.alloc(24);
      }),
    ).toThrow(/sequences\.group_ids: row 3 is in group 0/);
    expect(
      bad((c) => {
        c.logProbs = undefined;
      }),
    ).toThrow(TensorError);
    expect(
      bad((c) => {
        delete c.rewards.format;
      }),
    ).toThrow(/rewards\.format: is required/);
  });
});
