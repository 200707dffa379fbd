/**
 * Gpt2Generator with `worker: true` runs its programs in worker threads: the same tokens and
 * log-probs as in this thread, and the event loop keeps turning while a loop decodes (a service
 * answers other calls meanwhile), where the in-thread loop holds it for each whole step.
 */
import { Rng } from '@rlmesh/core';
import { initParameters } from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { type GenerateRow, Gpt2Generator } from '../src/models/gpt2-generate';

// Big enough that one recomputing step takes tens of milliseconds on this CPU.
const CFG: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: 512,
  n_positions: 160,
  n_embd: 192,
  n_layer: 4,
  n_head: 4,
  bos_token_id: -1,
  eos_token_id: -1,
};

/** The longest gap between ticks of a 1 ms interval while `work` runs. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(longest, performance.now() - last);
}

describe('gpt2: generation in worker threads', () => {
  it('gives the in-thread tokens and log-probs, and leaves the event loop free', async () => {
    const model = new Gpt2LMHeadModel(CFG);
    const params = initParameters(model, new Rng(3));
    const [here, there] = [await Gpt2Generator.create(model, params), await Gpt2Generator.create(model, params, { worker: true })];
    try {
      const rng = new Rng(4);
      const rows: GenerateRow[] = Array.from({ length: 8 }, (_, i) => ({
        prompt: Array.from({ length: 96 + i }, () => rng.int(CFG.vocab_size)),
        maxNewTokens: 6,
        seed: i + 1,
      }));
      const a = await here.generate(rows, { cache: false });
      const b = await there.generate(rows, { cache: false });
      expect(b.map((r) => r.tokens)).toEqual(a.map((r) => r.tokens));
      for (const [i, r] of b.entries()) for (const [j, lp] of r.logProbs.entries()) expect(lp).toBeCloseTo(a[i].logProbs[j], 5);

      const inThread = await longestStall(() => here.generate(rows, { cache: false }));
      // The smallest of three: a stall that other processes on a loaded machine cause is noise, while a
      // worker that blocked the loop would stall it on every run.
      let inWorker = Number.POSITIVE_INFINITY;
      for (let k = 0; k < 3; k++) inWorker = Math.min(inWorker, await longestStall(() => there.generate(rows, { cache: false })));
      expect(inThread, 'the in-thread loop blocks for whole steps (else this test shows nothing)').toBeGreaterThan(20);
      expect(inWorker).toBeLessThan(inThread / 3);
    } finally {
      await here.release();
      await there.release();
    }
  });
});
