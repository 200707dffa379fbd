/**
 * Train-step smoke test: next-token cross-entropy of a tiny GPT-2 on a tiny character corpus, with
 * padded rows of different lengths, falls from about log(V) to a fraction of it under
 * packages/graph's buildTrainProgram + Trainer.
 */
import { buildTrainProgram, crossEntropy, Trainer } from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';

const CORPUS = 'the cat sat on the mat. the dog sat on the log. a cat and a dog sat.';
const CHARS = [...new Set(CORPUS)].sort();
const T = 16;

/** Rows of T ids: windows of the corpus, every third one cut short and right-padded (pad id 0). */
function batch(rows: number, offset: number) {
  const ids = new BigInt64Array(rows * T);
  const mask = new BigInt64Array(rows * T);
  const labels = new BigInt64Array(rows * T);
  const lossMask = new Float32Array(rows * T);
  for (let r = 0; r < rows; r++) {
    const start = (offset + r * 5) % (CORPUS.length - T - 1);
    const len = r % 3 === 2 ? 9 : T;
    for (let t = 0; t < len; t++) {
      ids[r * T + t] = BigInt(CHARS.indexOf(CORPUS[start + t]));
      mask[r * T + t] = 1n;
      labels[r * T + t] = BigInt(CHARS.indexOf(CORPUS[start + t + 1]));
      lossMask[r * T + t] = 1;
    }
  }
  return {
    input_ids: { data: ids, shape: [rows, T] },
    attention_mask: { data: mask, shape: [rows, T] },
    labels: { data: labels, shape: [rows, T] },
    loss_mask: { data: lossMask, shape: [rows, T] },
  };
}

function program(config: Gpt2Config) {
  const model = new Gpt2LMHeadModel(config);
  const prog = buildTrainProgram({
    module: model,
    batch: [
      { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
      { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'] },
      { name: 'labels', dtype: 'int64', shape: ['batch', 'sequence'] },
      { name: 'loss_mask', dtype: 'float32', shape: ['batch', 'sequence'] },
    ],
    optimizer: { kind: 'adamw', weightDecay: 0.01, maxGradNorm: 1 },
    loss: (b) => {
      const { logits } = model.forward({ ids: b.input_ids, attentionMask: b.attention_mask });
      return { loss: crossEntropy(logits, b.labels, b.loss_mask) };
    },
  });
  return { model, prog };
}

const TINY: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: CHARS.length,
  n_positions: T,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: -1,
  eos_token_id: -1,
};

describe('gpt2: train step', () => {
  it('next-token cross-entropy on a tiny corpus falls from ~log(V) to under a third of it', async () => {
    const { model, prog } = program(TINY);
    const trainer = await Trainer.fromModule(prog, model, 0, { intraOpThreads: 1 });
    const losses: number[] = [];
    for (let step = 0; step < 80; step++) losses.push((await trainer.step(batch(12, step * 7), 3e-3)).loss);
    await trainer.release();
    const logV = Math.log(CHARS.length);
    expect(Math.abs(losses[0] - logV)).toBeLessThan(0.3);
    const late = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    expect(late).toBeLessThan(logV / 3);
  }, 60_000);

  it('trains with dropout on (the train program runs the model in training mode)', async () => {
    const { model, prog } = program({ ...TINY, embd_pdrop: 0.1, attn_pdrop: 0.1, resid_pdrop: 0.1 });
    const trainer = await Trainer.fromModule(prog, model, 1, { intraOpThreads: 1 });
    const b = batch(4, 0);
    const [a, c] = [(await trainer.step(b, 0)).loss, (await trainer.step(b, 0)).loss];
    await trainer.release();
    expect(Number.isFinite(a) && Number.isFinite(c)).toBe(true);
    // Same parameters (lr 0), same batch: only fresh dropout masks make the two losses differ.
    expect(a).not.toBe(c);
  });
});
