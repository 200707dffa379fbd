/**
 * Sampling in the GPT-2 decode loop: top-k 1, a tiny top-p and temperature 0 are greedy; a seeded row
 * draws the same tokens alone or batched with others; the first sampled token's frequencies match the
 * model's softmax (temperature 1, and with top-k / top-p applied) by a chi-square test; stop strings
 * and stop token sequences end a row; log-probs are those of the temperature-1 model.
 */
import { Rng } from '@rlmesh/core';
import { Session } from '@rlmesh/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLogitsProgram, GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { Gpt2Generator, sampleToken } from '../src/models/gpt2-generate';

const CFG: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: 11,
  n_positions: 48,
  n_embd: 16,
  n_layer: 2,
  n_head: 4,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: -1,
  eos_token_id: -1,
};

function randomParams(model: Gpt2LMHeadModel, seed: number, scale: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(
    model.namedParameters().map((p) => {
      const gain = /ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0;
      return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + scale * rng.normal())];
    }),
  );
}

/** Pearson's chi-square statistic of `counts` against expected probabilities `probs` (bins with p > 0). */
function chiSquare(counts: number[], probs: number[]): { stat: number; df: number } {
  const n = counts.reduce((a, b) => a + b, 0);
  let stat = 0;
  let df = -1;
  probs.forEach((p, i) => {
    if (p <= 0) {
      expect(counts[i], `token ${i} has probability 0 but was drawn`).toBe(0);
      return;
    }
    stat += (counts[i] - n * p) ** 2 / (n * p);
    df++;
  });
  return { stat, df };
}

/** The 0.999 quantile of chi-square(df) by Wilson-Hilferty, loose enough to fail only on a real mismatch. */
function chiSquareCritical(df: number): number {
  const z = 3.09;
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
}

function softmax(row: ArrayLike<number>, t = 1): number[] {
  const m = Math.max(...Array.from(row));
  const e = Array.from(row, (v) => Math.exp((v - m) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('gpt2: sampling with the KV cache', () => {
  const model = new Gpt2LMHeadModel(CFG);
  // Small weights: a flat-ish next-token distribution, so every token has a countable probability.
  const params = randomParams(model, 5, 0.15);
  let generator: Gpt2Generator;
  let full: Session;
  let first: Float32Array; // the model's next-token logits after PROMPT
  const PROMPT = [3, 1, 4, 1, 5];
  beforeAll(async () => {
    generator = await Gpt2Generator.create(model, params);
    full = await Session.create(buildLogitsProgram(model, params), { intraOpThreads: 1 });
    const T = PROMPT.length;
    const out = await full.run({
      input_ids: { data: BigInt64Array.from(PROMPT, BigInt), shape: [1, T] },
      attention_mask: { data: new BigInt64Array(T).fill(1n), shape: [1, T] },
    });
    first = (out.logits.data as Float32Array).slice((T - 1) * CFG.vocab_size, T * CFG.vocab_size);
  });
  afterAll(async () => {
    await generator.release();
    await full.release();
  });

  it('top-k 1, a tiny top-p and temperature 0 all equal greedy decoding', async () => {
    const prompts = [PROMPT, [2, 7], [9, 9, 9, 1, 0, 6, 2]];
    const greedy = await generator.greedy(prompts, { maxNewTokens: 12 });
    for (const s of [{ topK: 1, temperature: 1.5 }, { topP: 1e-6, temperature: 2 }, { temperature: 0 }]) {
      const rows = await generator.generate(prompts.map((prompt, i) => ({ prompt, maxNewTokens: 12, seed: 100 + i, ...s })));
      expect(
        rows.map((r) => r.tokens),
        JSON.stringify(s),
      ).toEqual(greedy.tokens);
    }
    // Sampling at temperature 1 does not: the test above could not pass by ignoring the settings.
    const sampled = await generator.generate(prompts.map((prompt, i) => ({ prompt, maxNewTokens: 12, seed: 100 + i })));
    expect(sampled.map((r) => r.tokens)).not.toEqual(greedy.tokens);
  });

  it('a seeded row draws the same tokens alone as in a batch, and another seed draws others', async () => {
    const row = { prompt: [4, 2, 8], maxNewTokens: 16, seed: 77, temperature: 1.3, topK: 8, topP: 0.95 };
    const alone = await generator.generate([row]);
    const others = [
      { prompt: [1, 2, 3, 4, 5, 6, 7, 8, 9], maxNewTokens: 16, seed: 1 },
      { prompt: [6], maxNewTokens: 3, seed: 2, temperature: 0.5 },
    ];
    const batched = await generator.generate([others[0], row, others[1]]);
    expect(batched[1].tokens).toEqual(alone[0].tokens);
    for (const [i, lp] of batched[1].logProbs.entries()) expect(Math.abs(lp - alone[0].logProbs[i])).toBeLessThan(1e-5);
    const reseeded = await generator.generate([{ ...row, seed: 78 }]);
    expect(reseeded[0].tokens).not.toEqual(alone[0].tokens);
  });

  it('log-probs are those of the temperature-1 model, whatever the sampling settings', async () => {
    const [r] = await generator.generate([{ prompt: PROMPT, maxNewTokens: 1, seed: 3, temperature: 0.3, topK: 3 }]);
    const p = softmax(first);
    expect(r.logProbs[0]).toBeCloseTo(Math.log(p[r.tokens[0]]), 5);
  });

  it("first-token frequencies match the model's softmax (chi-square), with temperature, top-k and top-p", async () => {
    const n = 2000;
    const cases = [
      { s: { temperature: 1 }, want: softmax(first) },
      { s: { temperature: 0.7, topK: 4 }, want: truncate(softmax(first, 0.7), 4, 1) },
      { s: { temperature: 1, topP: 0.6 }, want: truncate(softmax(first), CFG.vocab_size, 0.6) },
    ];
    for (const { s, want } of cases) {
      // One batch of n rows with seeds 1..n: each row's first token is one independent draw.
      const rows = await generator.generate(Array.from({ length: n }, (_, i) => ({ prompt: PROMPT, maxNewTokens: 1, seed: i + 1, ...s })));
      const counts = new Array<number>(CFG.vocab_size).fill(0);
      for (const r of rows) counts[r.tokens[0]]++;
      const { stat, df } = chiSquare(counts, want);
      expect(df, 'enough tokens with mass to test').toBeGreaterThanOrEqual(2);
      expect(stat, `${JSON.stringify(s)}: counts ${counts} vs ${want.map((p) => (n * p).toFixed(0))}`).toBeLessThan(chiSquareCritical(df));
    }
    // The test can fail: counts drawn from a different distribution are rejected.
    const rng = new Rng(9);
    const counts = new Array<number>(CFG.vocab_size).fill(0);
    for (let i = 0; i < n; i++) counts[rng.int(CFG.vocab_size)]++;
    const { stat, df } = chiSquare(counts, softmax(first, 0.5));
    expect(stat).toBeGreaterThan(chiSquareCritical(df));
  });

  it('stop strings (decoded text), stop token sequences and EOS end a row with their reason', async () => {
    const letters = 'abcdefghijk';
    const decode = (ids: readonly number[]) => ids.map((i) => letters[i]).join('');
    const free = await generator.generate([{ prompt: PROMPT, maxNewTokens: 20, seed: 4 }]);
    const text = decode(free[0].tokens);
    expect(free[0].stopReason).toBe('max_tokens');
    expect(free[0].tokens).toHaveLength(20);
    const stop = text.slice(5, 7);
    const byString = await generator.generate([{ prompt: PROMPT, maxNewTokens: 20, seed: 4, stop: [stop] }], { decode });
    expect(byString[0].stopReason).toBe('stop');
    expect(decode(byString[0].tokens)).toBe(text.slice(0, text.indexOf(stop) + stop.length));
    const byTokens = await generator.generate([{ prompt: PROMPT, maxNewTokens: 20, seed: 4, stopTokens: [free[0].tokens.slice(3, 5)] }]);
    expect(byTokens[0].stopReason).toBe('stop');
    expect(byTokens[0].tokens.length).toBeLessThanOrEqual(5);
    const eos = free[0].tokens[6];
    const byEos = await generator.generate([{ prompt: PROMPT, maxNewTokens: 20, seed: 4, eosTokenId: eos }]);
    expect(byEos[0]).toMatchObject({ stopReason: 'eos', tokens: free[0].tokens.slice(0, free[0].tokens.indexOf(eos) + 1) });
    await expect(generator.generate([{ prompt: PROMPT, maxNewTokens: 2, stop: ['x'] }])).rejects.toThrow(/need a decode function/);
  });

  it('without the KV cache (the whole sequence recomputed each step) it draws the same tokens and log-probs', async () => {
    const rows = [
      { prompt: PROMPT, maxNewTokens: 10, seed: 8, temperature: 1.2 },
      { prompt: [2], maxNewTokens: 4, seed: 9, topK: 3 },
      { prompt: [7, 7, 1], maxNewTokens: 10, temperature: 0 },
    ];
    const cached = await generator.generate(rows);
    const recomputed = await generator.generate(rows, { cache: false });
    expect(recomputed.map((r) => r.tokens)).toEqual(cached.map((r) => r.tokens));
    for (const [b, r] of recomputed.entries())
      for (const [i, lp] of r.logProbs.entries()) expect(Math.abs(lp - cached[b].logProbs[i])).toBeLessThan(1e-4);
  });

  it('a cancelled row stops at once with its reason while the others go on', async () => {
    let steps = 0;
    const rows = await generator.generate(
      [
        { prompt: PROMPT, maxNewTokens: 12, seed: 1, cancelled: () => steps >= 3 },
        { prompt: [2, 2], maxNewTokens: 12, seed: 2 },
      ],
      { onStep: () => steps++ },
    );
    expect(rows[0]).toMatchObject({ stopReason: 'cancelled' });
    expect(rows[0].tokens).toHaveLength(3);
    expect(rows[1]).toMatchObject({ stopReason: 'max_tokens' });
    expect(rows[1].tokens).toHaveLength(12);
  });

  it('rows that join a running loop (and rows that leave it) get the tokens they would get alone', async () => {
    const rows = [
      { prompt: PROMPT, maxNewTokens: 9, seed: 1 },
      { prompt: [2], maxNewTokens: 3, seed: 2, temperature: 0.8 },
      { prompt: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2], maxNewTokens: 6, seed: 3 },
      { prompt: [4, 4], maxNewTokens: 5, seed: 4, topK: 4 },
      { prompt: [1, 2, 3], maxNewTokens: 0 },
    ];
    // Row 0 starts alone; row 4 (nothing to generate) comes at step 1; rows 1 and 2 join at step 2
    // (row 2 with a longer prompt, so the batch is re-padded); row 3 joins at step 5 after row 1 has
    // left; at most 3 rows at once.
    const joins = [[0], [4], [1, 2], [], [], [3]];
    let step = 0;
    const sizes: number[] = [];
    const got = new Map<number, number[]>();
    const reasons = new Map<number, string>();
    await generator.serve(
      (room) => {
        const fresh = (joins[step++] ?? []).map((i) => rows[i]);
        expect(fresh.length).toBeLessThanOrEqual(room);
        return fresh;
      },
      (row, r) => {
        got.set(rows.indexOf(row as (typeof rows)[number]), r.tokens);
        reasons.set(rows.indexOf(row as (typeof rows)[number]), r.stopReason);
      },
      { maxBatch: 3, onStep: (emitted) => sizes.push(emitted.length) },
    );
    for (const [i, r] of rows.entries()) expect(got.get(i), `row ${i}`).toEqual((await generator.generate([r]))[0].tokens);
    expect(reasons.get(4)).toBe('max_tokens');
    expect(got.get(4)).toEqual([]);
    // The batch held 1, then 3, then fewer rows as they left, then row 3 beside row 0 and row 2.
    expect(sizes.slice(0, 4)).toEqual([1, 1, 3, 3]);
    expect(Math.max(...sizes)).toBe(3);
    // With and without the cache the re-padded, joined loop agrees.
    step = 0;
    const recomputed = new Map<number, number[]>();
    await generator.serve(
      () => (joins[step++] ?? []).map((i) => rows[i]),
      (row, r) => recomputed.set(rows.indexOf(row as (typeof rows)[number]), r.tokens),
      { cache: false },
    );
    expect(recomputed).toEqual(got);
  });

  it('a row that finishes early does not run past the context while a longer row goes on', async () => {
    const near = Array.from({ length: 45 }, (_, i) => i % CFG.vocab_size);
    const rows = await generator.generate([
      { prompt: near, maxNewTokens: 3, seed: 1 },
      { prompt: [1], maxNewTokens: 30, seed: 2 },
    ]);
    expect(rows.map((r) => r.tokens.length)).toEqual([3, 30]);
  });

  it('refuses bad sampling settings, naming them', async () => {
    const row = { prompt: [1], maxNewTokens: 1 };
    await expect(generator.generate([{ ...row, topP: 0 }])).rejects.toThrow(/top_p: must be in \(0, 1\]/);
    await expect(generator.generate([{ ...row, topP: 1.5 }])).rejects.toThrow(/top_p/);
    await expect(generator.generate([{ ...row, temperature: -1 }])).rejects.toThrow(/temperature/);
    await expect(generator.generate([{ ...row, topK: 1.5 }])).rejects.toThrow(/top_k/);
  });

  it('sampleToken: a tiny top-p keeps only the most likely token', () => {
    const logits = Float32Array.from([0.1, 2, 1.9, -3]);
    const rng = new Rng(1);
    for (let i = 0; i < 50; i++) expect(sampleToken(logits, { topP: 0.01 }, rng)).toBe(1);
  });
});

/** Probabilities cut to the top k, then to the nucleus of mass p (as a fraction of the kept mass), renormalised. */
function truncate(probs: number[], k: number, p: number): number[] {
  const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a]);
  const top = order.slice(0, k);
  const kept = top.reduce((a, i) => a + probs[i], 0);
  const nucleus: number[] = [];
  let mass = 0;
  for (const i of top) {
    if (nucleus.length > 0 && mass >= p * kept) break;
    nucleus.push(i);
    mass += probs[i];
  }
  return probs.map((q, i) => (nucleus.includes(i) ? q / mass : 0));
}
