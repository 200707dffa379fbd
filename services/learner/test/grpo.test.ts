/**
 * GRPO's maths against a float64 hand computation: the loss of each loss_type on rows with known
 * log-probs (the model's own, read by a separate forward program), behaviour log-probs set to put
 * tokens inside the clip range, below it and above it, and a reference for the k3 KL; the clip
 * fractions and ratio mean; the same loss and gradient whatever the micro-batch split; and the
 * group advantages (scaled by group or batch std, unscaled, zero-std groups).
 */
import { buildForwardProgram, type HostTensor, initParameters, Rng, Session } from '@rlmesh/graph';
import { afterAll, describe, expect, it } from 'vitest';
import { ADVANTAGE_EPS, groupAdvantages, grpo, rowWeights } from '../src/algorithms/grpo';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { buildGradientProgram, GradientTrainer, LM_BATCH_INPUTS, tokenLogProbs } from '../src/models/gpt2-step';
import { collate } from '../src/sft/data';

const V = 19;
const TINY: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: V,
  n_positions: 16,
  n_embd: 16,
  n_layer: 1,
  n_head: 2,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: -1,
  eos_token_id: 1,
  pad_token_id: 0,
};
const model = new Gpt2LMHeadModel(TINY);
const params = initParameters(model, new Rng(3));

/** Three rows: prompts of 3, 2, 4 tokens and completions of 1, 3, 2 tokens. */
const ROWS = [
  { ids: [5, 6, 7, 8], promptLength: 3 },
  { ids: [9, 4, 11, 12, 1], promptLength: 2 },
  { ids: [3, 13, 14, 15, 16, 1], promptLength: 4 },
];
const ADV = [1.3, -0.7, 0.4];
/** Offsets that set the behaviour log-prob of each completion token: log ratio = offset. */
const LOG_RATIO = [[0.5], [-0.5, 0.05, 0.4], [-0.4, 0.1]];
/** ref - log pi per completion token, for the k3 KL. */
const REF_DIFF = [[0.3], [-0.2, 0.1, 0.0], [0.25, -0.6]];

const sessions: { release(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

/** The model's log p(label) at every position, read by a forward program apart from the gradient program. */
async function modelLogProbs(feeds: Record<string, HostTensor>): Promise<Float32Array> {
  const { onnx, layout } = buildForwardProgram({
    module: model,
    inputs: LM_BATCH_INPUTS,
    forward: (b) => ({ log_probs: tokenLogProbs(model, b).logProbs }),
  });
  const s = await Session.create(onnx);
  sessions.push(s);
  const flat = layout.pack(params);
  const out = await s.run({ ...feeds, params: { data: flat, shape: [flat.length] } });
  return out.log_probs.data as Float32Array;
}

function cfgOf(over: Record<string, unknown>) {
  return { ...Object.fromEntries(Object.entries(grpo.config).map(([k, f]) => [k, (f as { default: unknown }).default])), ...over } as never;
}

async function trainerFor(cfg: never): Promise<GradientTrainer> {
  const program = buildGradientProgram(model, 'grpo_test', grpo.inputs(cfg), (b) => grpo.loss(model, b, cfg));
  const t = await GradientTrainer.create(program, params, grpo.adamw(cfg), 1);
  sessions.push(t);
  return t;
}

/** Feeds for rows `idx` with the per-token inputs placed where each completion token is predicted. */
function feedsFor(idx: number[], logp: Float32Array, T0: number, weights: Float64Array, withRef: boolean) {
  const lm = collate(
    idx.map((i) => ROWS[i]),
    0,
  );
  const [B, T] = lm.feeds.input_ids.shape;
  const old = new Float32Array(B * T);
  const ref = new Float32Array(B * T);
  idx.forEach((i, k) => {
    const r = ROWS[i];
    for (let j = 0; j < r.ids.length - r.promptLength; j++) {
      const t = r.promptLength - 1 + j;
      const lp = logp[i * T0 + t];
      old[k * T + t] = lp - LOG_RATIO[i][j];
      ref[k * T + t] = lp + REF_DIFF[i][j];
    }
  });
  return {
    ...lm.feeds,
    old_log_probs: { data: old, shape: [B, T] },
    ...(withRef ? { ref_log_probs: { data: ref, shape: [B, T] } } : {}),
    advantages: { data: Float32Array.from(idx, (i) => ADV[i]), shape: [B] },
    row_weight: { data: Float32Array.from(idx, (i) => weights[i]), shape: [B] },
  };
}

/** The loss, computed by hand in float64 from the log ratios and KL offsets above. */
function expected(lossType: string, eps: number, epsHigh: number, beta: number) {
  const rows = ROWS.length;
  const lens = LOG_RATIO.map((l) => l.length);
  const tokens = lens.reduce((a, b) => a + b, 0);
  let loss = 0;
  let low = 0;
  let high = 0;
  let ratioSum = 0;
  let klSum = 0;
  LOG_RATIO.forEach((lr, i) => {
    let rowSum = 0;
    lr.forEach((x, j) => {
      const ratio = Math.exp(x);
      const clipped = Math.min(Math.max(ratio, 1 - eps), 1 + epsHigh);
      const d = REF_DIFF[i][j];
      const kl = Math.exp(d) - d - 1;
      rowSum += -Math.min(ratio * ADV[i], clipped * ADV[i]) + beta * kl;
      if (ratio < 1 - eps && ADV[i] < 0) low++;
      if (ratio > 1 + epsHigh && ADV[i] > 0) high++;
      ratioSum += ratio;
      klSum += kl;
    });
    if (lossType === 'grpo') loss += rowSum / lens[i] / rows;
    else if (lossType === 'dr_grpo') loss += rowSum / (rows * 4);
    else loss += rowSum / tokens;
  });
  return { loss, low: low / tokens, high: high / tokens, ratio: ratioSum / tokens, kl: klSum / tokens, tokens };
}

describe('grpo: the loss against a float64 hand computation', () => {
  for (const lossType of ['grpo', 'dr_grpo', 'dapo']) {
    it(`${lossType}: clipped surrogate, k3 KL (beta 0.1), aggregation, clip fractions`, async () => {
      const cfg = cfgOf({ loss_type: lossType, epsilon: 0.2, epsilon_high: 0.28, beta: 0.1, max_completion_length: 4 });
      const all = collate(ROWS, 0);
      const T0 = all.feeds.input_ids.shape[1];
      const logp = await modelLogProbs(all.feeds);
      const lens = LOG_RATIO.map((l) => l.length);
      const weights = rowWeights(lossType, lens, 4);
      const t = await trainerFor(cfg);
      const { sums } = await t.gradient([feedsFor([0, 1, 2], logp, T0, weights, true)]);
      const e = expected(lossType, 0.2, 0.28, 0.1);
      // The cases are all there: one token above the upper clip with A > 0, one below the lower with A < 0.
      expect(e.low).toBeGreaterThan(0);
      expect(e.high).toBeGreaterThan(0);
      expect(sums.loss).toBeCloseTo(e.loss, 5);
      expect(sums.clip_low_sum / e.tokens).toBeCloseTo(e.low, 6);
      expect(sums.clip_high_sum / e.tokens).toBeCloseTo(e.high, 6);
      expect(sums.ratio_sum / e.tokens).toBeCloseTo(e.ratio, 5);
      expect(sums.kl_sum / e.tokens).toBeCloseTo(e.kl, 5);
      expect(sums.policy_loss).toBeCloseTo(expected(lossType, 0.2, 0.28, 0).loss, 5);
    });
  }

  it('beta 0 has no reference input and no KL term', async () => {
    const cfg = cfgOf({ loss_type: 'dapo', beta: 0 });
    expect(grpo.inputs(cfg).map((i) => i.name)).not.toContain('ref_log_probs');
    expect(grpo.usesReference(cfg)).toBe(false);
    const all = collate(ROWS, 0);
    const T0 = all.feeds.input_ids.shape[1];
    const logp = await modelLogProbs(all.feeds);
    const t = await trainerFor(cfg);
    const { sums } = await t.gradient([feedsFor([0, 1, 2], logp, T0, rowWeights('dapo', [1, 3, 2], 16), false)]);
    expect(sums.loss).toBeCloseTo(expected('dapo', 0.2, 0.2, 0).loss, 5);
    expect(sums.kl_sum).toBeUndefined();
  });

  it('micro-batches sum to the loss and gradient of the whole batch, for every loss type', async () => {
    for (const lossType of ['grpo', 'dr_grpo', 'dapo']) {
      const cfg = cfgOf({ loss_type: lossType, beta: 0.05, max_completion_length: 4 });
      const all = collate(ROWS, 0);
      const T0 = all.feeds.input_ids.shape[1];
      const logp = await modelLogProbs(all.feeds);
      const weights = rowWeights(lossType, [1, 3, 2], 4);
      const t = await trainerFor(cfg);
      const whole = await t.gradient([feedsFor([0, 1, 2], logp, T0, weights, true)]);
      const split = await t.gradient([feedsFor([0], logp, T0, weights, true), feedsFor([1, 2], logp, T0, weights, true)]);
      expect(split.sums.loss).toBeCloseTo(whole.sums.loss, 6);
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < whole.grad.length; i++) {
        diff = Math.max(diff, Math.abs(whole.grad[i] - split.grad[i]));
        scale = Math.max(scale, Math.abs(whole.grad[i]));
      }
      expect(scale).toBeGreaterThan(1e-4);
      expect(diff).toBeLessThan(1e-5 * Math.max(1, scale));
    }
  });
});

describe('grpo: group advantages and row weights', () => {
  it('(r - group mean) / (group std + 1e-4), the std Bessel-corrected; a zero-std group gets 0 and is counted', () => {
    const { advantages, fracZeroStd } = groupAdvantages([1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5], 4, 'group');
    const s = Math.sqrt((4 * 0.25) / 3);
    expect(advantages[0]).toBeCloseTo(0.5 / (s + ADVANTAGE_EPS), 10);
    expect(advantages[1]).toBeCloseTo(-0.5 / (s + ADVANTAGE_EPS), 10);
    expect(Array.from(advantages.slice(4))).toEqual([0, 0, 0, 0]);
    expect(fracZeroStd).toBe(0.5);
  });

  it('scale_rewards none is r - group mean (Dr. GRPO); batch divides by the std of the whole batch', () => {
    const r = [1, 0, 0, 0, 1, 1];
    const none = groupAdvantages(r, 3, 'none').advantages;
    [2 / 3, -1 / 3, -1 / 3, -2 / 3, 1 / 3, 1 / 3].forEach((x, k) => {
      expect(none[k]).toBeCloseTo(x, 12);
    });
    const m = 0.5;
    const batchStd = Math.sqrt(r.reduce((a, x) => a + (x - m) ** 2, 0) / 5);
    expect(groupAdvantages(r, 3, 'batch').advantages[0]).toBeCloseTo(2 / 3 / (batchStd + ADVANTAGE_EPS), 10);
  });

  it('row weights: 1 / (len * rows) for grpo, 1 / (rows * max_completion_length) for dr_grpo, 1 / tokens for dapo', () => {
    expect(Array.from(rowWeights('grpo', [2, 4], 8))).toEqual([1 / 4, 1 / 8]);
    expect(Array.from(rowWeights('dr_grpo', [2, 4], 8))).toEqual([1 / 16, 1 / 16]);
    expect(Array.from(rowWeights('dapo', [2, 4], 8))).toEqual([1 / 6, 1 / 6]);
  });
});
