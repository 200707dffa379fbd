/**
 * A multi-turn rollout (one row per turn of P x G conversations) survives the trip through a
 * TrajectoryChunk and its bytes exactly, episode ids and truncations included, and a chunk whose
 * episodes are out of order, incomplete or in the wrong group is a TensorError naming the field.
 */
import { ConversationCollector, type GenerateFn, type MultiTurnTextTask, type Rng, TextEnv } from '@rlmesh/core';
import { encodeTensor, TrajectoryChunk } from '@rlmesh/proto';
import { describe, expect, it } from 'vitest';
import { chunkBytes, decodeSequenceRollout, encodeSequenceRollout } from '../src/codec';

/** Reach n (1..3) by answering "y"; anything else is wasted. */
const task: MultiTurnTextTask<{ prompt: string; n: number; at: number }> = {
  name: 'Reach',
  rewardComponents: ['goal'],
  numLevels: 1,
  draw: (rng: Rng) => ({ prompt: 'x', n: 1 + rng.int(3), at: 0 }),
  act: (p, a) => {
    if (a.startsWith('y')) p.at++;
    const done = p.at >= p.n;
    return { reward: { goal: done ? 1 : 0 }, success: done, parsed: a, observation: 'o', done };
  },
};
const codec = {
  encode: (t: string) => Array.from(t, (ch) => (ch === 'x' ? 3 : ch === 'y' ? 4 : ch === 'z' ? 6 : 5)),
  decode: (ids: readonly number[]) => ids.map((i) => (i === 4 ? 'y' : 'z')).join(''),
};
/** Even requests of a call answer "y" + EOS, odd ones "z" without EOS. */
const scripted: GenerateFn = async (rows) => ({
  results: rows.map((_, k) => {
    const tokens = k % 2 === 0 ? [4, 0] : [6];
    return { tokens, logProbs: tokens.map((_, j) => -0.5 * (j + 1)), stopReason: k % 2 === 0 ? ('eos' as const) : ('max_tokens' as const) };
  }),
  version: 3,
});
const sampling = { numGenerations: 2, maxCompletionLength: 2, temperature: 1, topK: 0, topP: 1, eosTokenId: 0 };
const SHAPE = { numPrompts: 2, groupSize: 2, maxCompletionLength: 2, vocabSize: 8, components: ['goal'] };

async function rollout() {
  return new ConversationCollector([new TextEnv(task, 4), new TextEnv(task, 4)], codec, 'a-1', sampling, 4, { maxTurns: 4 }).collect(
    scripted,
  );
}

describe('multi-turn rollouts as chunks', () => {
  it('round-trip through the chunk and its bytes, a row per turn', async () => {
    const r = await rollout();
    expect(r.groupIds.length).toBeGreaterThan(4);
    const chunk = TrajectoryChunk.decode(chunkBytes(encodeSequenceRollout('run-1', r)));
    expect(chunk.numEnvs).toBe(r.groupIds.length);
    expect(chunk.episodes).toHaveLength(4);
    expect(decodeSequenceRollout(chunk, SHAPE)).toEqual(r);
  });

  it('a chunk with episodes out of order, missing or in the wrong group names the field', async () => {
    const r = await rollout();
    const rows = r.groupIds.length;
    const bad = (edit: (s: NonNullable<TrajectoryChunk['sequences']>) => void) => {
      const c = TrajectoryChunk.decode(chunkBytes(encodeSequenceRollout('run-1', r)));
      edit(c.sequences as NonNullable<TrajectoryChunk['sequences']>);
      return () => decodeSequenceRollout(c, SHAPE);
    };
    const ids = (edit: (e: Int32Array) => void) =>
      bad((s) => {
        const e = Int32Array.from(r.episodeIds ?? []);
        edit(e);
        s.episodeIds = encodeTensor(e, [e.length]);
      });
    expect(ids((e) => e.reverse())).toThrow(/sequences\.episode_ids: row 0 is in episode 3; episodes run in order/);
    // Episode 3's rows relabelled as episode 2's: the last episode is missing.
    expect(ids((e) => e.set(Array.from(e, (x) => Math.min(x, 2))))).toThrow(
      /sequences\.episode_ids: must cover episodes 0\.\.3 \(2 prompts x 2\), got 0\.\.2/,
    );
    expect(ids((e) => e.set([0, 2], 0))).toThrow(/sequences\.episode_ids: row 1 is in episode 2/);
    expect(
      bad((s) => {
        s.episodeTruncated = encodeTensor(new Uint8Array(3), [3]);
      }),
    ).toThrow(/sequences\.episode_truncated: shape must be \[4\], got \[3\]/);
    expect(
      bad((s) => {
        s.episodeTruncated = undefined;
      }),
    ).toThrow(/sequences\.episode_truncated: is required/);
    expect(
      bad((s) => {
        const g = Int32Array.from(r.groupIds);
        g[rows - 1] = 0;
        s.groupIds = encodeTensor(g, [rows]);
      }),
    ).toThrow(/sequences\.group_ids: row \d+ is in group 0; rows run group after group \(the group of their episode\)/);
    // Rows are the episode ids' length: other per-row fields must match it.
    expect(
      bad((s) => {
        s.episodeIds = encodeTensor(Int32Array.from([...(r.episodeIds ?? []), 3]), [rows + 1]);
      }),
    ).toThrow(/sequences\.prompt_ids: shape must be \[\d+, \*\], got/);
  });
});
