/**
 * Greedy decoding with GPT-2's KV cache (prefill + decode programs, batched left-padded prompts)
 * equals full recomputation token for token: each prompt alone, the whole sequence through the
 * logits program at every step, no cache and no padding.
 */
import { Rng } from '@rlmesh/core';
import { Session } from '@rlmesh/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLogitsProgram, GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { Gpt2Generator } from '../src/models/gpt2-generate';

const CFG: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: 17,
  n_positions: 32,
  n_embd: 16,
  n_layer: 2,
  n_head: 4,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: -1,
  eos_token_id: -1,
};

function randomParams(model: Gpt2LMHeadModel, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(
    model.namedParameters().map((p) => {
      const gain = /ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0;
      return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.5 * rng.normal())];
    }),
  );
}

/** Greedy decoding by recomputing the whole unpadded sequence at every step. */
async function recompute(session: Session, prompt: number[], steps: number, V: number) {
  const seq = [...prompt];
  const tokens: number[] = [];
  const logProbs: number[] = [];
  for (let s = 0; s < steps; s++) {
    const T = seq.length;
    const out = await session.run({
      input_ids: { data: BigInt64Array.from(seq, BigInt), shape: [1, T] },
      attention_mask: { data: new BigInt64Array(T).fill(1n), shape: [1, T] },
    });
    const row = (out.logits.data as Float32Array).subarray((T - 1) * V, T * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    tokens.push(best);
    logProbs.push(row[best] - lse);
    seq.push(best);
  }
  return { tokens, logProbs };
}

describe('gpt2: greedy decoding with the KV cache', () => {
  const model = new Gpt2LMHeadModel(CFG);
  const params = randomParams(model, 21);
  let generator: Gpt2Generator;
  let full: Session;
  beforeAll(async () => {
    generator = await Gpt2Generator.create(model, params);
    full = await Session.create(buildLogitsProgram(model, params), { intraOpThreads: 1 });
  });
  afterAll(async () => {
    await generator.release();
    await full.release();
  });

  it('equals full recomputation token for token, for a batch of prompts of different lengths', async () => {
    const prompts = [[3, 1, 4, 1, 5, 9, 2, 6], [5], [8, 9, 7, 9], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4]];
    const steps = 14;
    const cached = await generator.greedy(prompts, { maxNewTokens: steps });
    for (const [b, p] of prompts.entries()) {
      const want = await recompute(full, p, steps, CFG.vocab_size);
      expect(cached.tokens[b], `prompt ${b}`).toEqual(want.tokens);
      for (const [i, lp] of cached.logProbs[b].entries()) expect(Math.abs(lp - want.logProbs[i])).toBeLessThan(1e-4);
    }
    // Not a degenerate model: the continuations use several tokens and differ between prompts.
    expect(new Set(cached.tokens.flat()).size).toBeGreaterThan(3);
    expect(new Set(cached.tokens.map((t) => t.join(','))).size).toBe(prompts.length);
  });

  it('stops a row at EOS and keeps decoding the others', async () => {
    const prompts = [
      [3, 1, 4],
      [2, 7, 1, 8],
    ];
    const free = await generator.greedy(prompts, { maxNewTokens: 10 });
    const eos = free.tokens[0][2];
    const stopped = await generator.greedy(prompts, { maxNewTokens: 10, eosTokenId: eos });
    const cut = free.tokens[0].indexOf(eos) + 1;
    expect(stopped.tokens[0]).toEqual(free.tokens[0].slice(0, cut));
    const other = free.tokens[1].indexOf(eos);
    expect(stopped.tokens[1]).toEqual(other >= 0 ? free.tokens[1].slice(0, other + 1) : free.tokens[1]);
  });

  it('refuses empty prompts, prompts past the context and ids outside the vocabulary', async () => {
    await expect(generator.greedy([[1], []], { maxNewTokens: 2 })).rejects.toThrow(/prompt 1 is empty/);
    await expect(generator.greedy([new Array(30).fill(1)], { maxNewTokens: 5 })).rejects.toThrow(/exceeds the context of 32/);
    await expect(generator.greedy([[1, 17]], { maxNewTokens: 2 })).rejects.toThrow(/token id 17 is outside the vocabulary of 17/);
  });
});
