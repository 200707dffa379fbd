/**
 * The SFT train step on a tiny GPT-2: the loss is the mean completion-token NLL computed apart from
 * the step (float64 log-softmax over the logits program's output), prompt and padding positions do
 * not reach the gradient, k micro-batches accumulate to the gradient of one batch k times the size,
 * and the update is torch's AdamW (decay on matrices only, clipped gradient) to float32 precision.
 */
import { initParameters, ParamLayout, Rng, Session } from '@rlmesh/graph';
import { afterAll, describe, expect, it } from 'vitest';
import { buildLogitsProgram, GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { decayMask } from '../src/models/gpt2-step';
import { collate, type SftBatch, type TokenizedExample } from '../src/sft/data';
import { SftTrainer } from '../src/sft/step';

const V = 23;
const PAD = 0;
const TINY: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: V,
  n_positions: 24,
  n_embd: 16,
  n_layer: 2,
  n_head: 2,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: -1,
  eos_token_id: 1,
  pad_token_id: PAD,
};

/** Rows of different prompt and completion lengths, ids drawn from 2..V-1, EOS (1) last. */
function examples(n: number, seed: number): TokenizedExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const promptLength = 2 + rng.int(8);
    const completion = 1 + rng.int(5);
    const ids = [...Array.from({ length: promptLength + completion }, () => 2 + rng.int(V - 2)), 1];
    return { ids, promptLength, record: { prompt: 'p', completion: 'c', line: i + 1 } };
  });
}

const model = new Gpt2LMHeadModel(TINY);
const params = initParameters(model, new Rng(7));
const ADAMW = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 0.5 };
const trainers: SftTrainer[] = [];
async function trainer(): Promise<SftTrainer> {
  const t = await SftTrainer.create(model, params, ADAMW, 1);
  trainers.push(t);
  return t;
}
afterAll(async () => {
  for (const t of trainers) await t.release();
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const maxAbs = (a: Float32Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

describe('sft: batches', () => {
  it('right-pads, and masks the loss to the positions that predict completion tokens (EOS included)', () => {
    const ex: TokenizedExample[] = [
      { ids: [5, 6, 7, 8, 1], promptLength: 3, record: { prompt: 'p', completion: 'c', line: 1 } },
      { ids: [9, 10, 11, 1], promptLength: 2, record: { prompt: 'p', completion: 'c', line: 2 } },
    ];
    const b = collate(ex, PAD);
    expect(b.feeds.input_ids.shape).toEqual([2, 5]);
    expect(Array.from(b.feeds.input_ids.data as BigInt64Array, Number)).toEqual([5, 6, 7, 8, 1, 9, 10, 11, 1, PAD]);
    expect(Array.from(b.feeds.attention_mask.data as BigInt64Array, Number)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    // Position t is scored on ids[t + 1]: row 0 predicts 8 and EOS (positions 2, 3); row 1 predicts 11 and EOS.
    expect(Array.from(b.feeds.loss_mask.data as Float32Array)).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
    expect(Array.from(b.feeds.labels.data as BigInt64Array, Number).filter((_, i) => [2, 3, 6, 7].includes(i))).toEqual([8, 1, 11, 1]);
    expect(b.tokens).toBe(4);
  });
});

describe('sft: train step', () => {
  it('the loss is the mean NLL over completion tokens, as a float64 reference over the model’s logits computes it', async () => {
    const ex = examples(6, 1);
    const batch = collate(ex, PAD);
    const t = await trainer();
    const { loss, tokens } = await t.gradient([batch]);

    const session = await Session.create(buildLogitsProgram(model, params));
    const { logits } = await session.run({ input_ids: batch.feeds.input_ids, attention_mask: batch.feeds.attention_mask });
    await session.release();
    const L = logits.data as Float32Array;
    const T = batch.feeds.input_ids.shape[1];
    let sum = 0;
    let count = 0;
    ex.forEach((e, b) => {
      // Every completion token (EOS included) is predicted from the position before it.
      for (let pos = e.promptLength; pos < e.ids.length; pos++) {
        const row = L.subarray((b * T + pos - 1) * V, (b * T + pos) * V);
        let m = -Infinity;
        for (const x of row) m = Math.max(m, x);
        let z = 0;
        for (const x of row) z += Math.exp(x - m);
        sum -= row[e.ids[pos]] - m - Math.log(z);
        count++;
      }
    });
    expect(tokens).toBe(count);
    expect(count).toBe(ex.reduce((n, e) => n + e.ids.length - e.promptLength, 0));
    expect(Math.abs(loss - sum / count)).toBeLessThan(1e-5);
    expect(loss).toBeGreaterThan(0.5 * Math.log(V)); // an untrained model: near log V, not a degenerate 0
  });

  it('prompt and padding positions do not change the gradient; a completion label does', async () => {
    const batch = collate(examples(5, 2), PAD);
    const t = await trainer();
    const base = (await t.gradient([batch])).grad;
    const rng = new Rng(3);
    const mask = batch.feeds.loss_mask.data as Float32Array;
    const att = batch.feeds.attention_mask.data as BigInt64Array;
    const labels = Array.from(batch.feeds.labels.data as BigInt64Array);
    const ids = Array.from(batch.feeds.input_ids.data as BigInt64Array);
    const scrambled = (keep: (i: number) => boolean, what: bigint[]) =>
      BigInt64Array.from(what, (v, i) => (keep(i) ? v : BigInt(2 + rng.int(V - 2))));
    // Labels of prompt and padding positions, and the ids in padding slots, replaced by random tokens.
    const noisy: SftBatch = {
      ...batch,
      feeds: {
        ...batch.feeds,
        labels: { ...batch.feeds.labels, data: scrambled((i) => mask[i] === 1, labels) },
        input_ids: { ...batch.feeds.input_ids, data: scrambled((i) => att[i] === 1n, ids) },
      },
    };
    expect(att.some((a) => a === 0n)).toBe(true);
    const same = (await t.gradient([noisy])).grad;
    expect(maxAbsDiff(base, same)).toBeLessThan(1e-7);

    const at = mask.indexOf(1);
    const changed = BigInt64Array.from(labels);
    changed[at] = changed[at] === 2n ? 3n : 2n;
    const other = (await t.gradient([{ ...batch, feeds: { ...batch.feeds, labels: { ...batch.feeds.labels, data: changed } } }])).grad;
    expect(maxAbsDiff(base, other)).toBeGreaterThan(1e-3 * maxAbs(base));
  });

  it('k micro-batches accumulate to one batch k times the size (each padded to its own length)', async () => {
    const ex = examples(8, 4);
    const t = await trainer();
    const whole = await t.gradient([collate(ex, PAD)]);
    for (const k of [2, 4, 8]) {
      const size = ex.length / k;
      const micro = Array.from({ length: k }, (_, j) => collate(ex.slice(j * size, (j + 1) * size), PAD));
      const acc = await t.gradient(micro);
      expect(acc.tokens).toBe(whole.tokens);
      expect(Math.abs(acc.loss - whole.loss)).toBeLessThan(1e-5);
      expect(maxAbsDiff(acc.grad, whole.grad)).toBeLessThan(1e-5 * maxAbs(whole.grad));
    }
    // Unequal token counts per micro-batch: averaging per micro-batch would weigh them wrongly.
    const mean =
      (await Promise.all([0, 1].map(async (j) => (await t.gradient([collate(ex.slice(4 * j, 4 * j + 4), PAD)])).loss))).reduce(
        (a, b) => a + b,
      ) / 2;
    expect(Math.abs(mean - whole.loss)).toBeGreaterThan(1e-4);
  });

  it('the update is torch AdamW on the clipped summed gradient, decaying matrices only', async () => {
    const micro = [collate(examples(3, 5), PAD), collate(examples(3, 6), PAD)];
    const t = await trainer();
    const { grad } = await t.gradient(micro);
    const before = t.snapshot().params;
    const lr = 0.01;
    const metrics = await t.step(micro, lr);
    const after = t.snapshot().params;
    const layout = new ParamLayout(model);
    const decay = decayMask(layout);

    let norm = 0;
    for (const g of grad) norm += g * g;
    norm = Math.sqrt(norm);
    expect(Math.abs(metrics.grad_norm - norm)).toBeLessThan(1e-5 * norm);
    expect(norm).toBeGreaterThan(ADAMW.maxGradNorm); // so the clip is exercised
    const clip = Math.min(1, ADAMW.maxGradNorm / (norm + 1e-6));
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = ADAMW;
    let worst = 0;
    for (let i = 0; i < before.length; i++) {
      const g = grad[i] * clip;
      const m = (1 - b1) * g;
      const v = (1 - b2) * g * g;
      const p = before[i] * (1 - lr * wd * decay[i]);
      const want = p - (lr * (m / (1 - b1))) / (Math.sqrt(v / (1 - b2)) + eps);
      worst = Math.max(worst, Math.abs(after[i] - want));
    }
    expect(worst).toBeLessThan(1e-5);
    // Biases and LayerNorm parameters are not decayed; matrices and embeddings are.
    const named = (n: string) => layout.entries.find((e) => e.name === n);
    for (const n of ['transformer.ln_f.weight', 'transformer.h.0.attn.c_attn.bias'])
      expect(decay[(named(n) as { offset: number }).offset]).toBe(0);
    for (const n of ['transformer.wte.weight', 'transformer.h.1.mlp.c_fc.weight'])
      expect(decay[(named(n) as { offset: number }).offset]).toBe(1);
  });
});
