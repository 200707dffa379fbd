/**
 * ppo_seq's maths against float64 hand computations written apart from the implementation: the
 * per-token rewards (k1 and k3 KL, the score on the last token), TRL-style GAE by its own backward
 * loop, whitening, and returns, on rows of different lengths (one row cut at the length limit, one
 * with an early EOS, one of a single token), and the clipped policy and value losses of the traced
 * gradient program on a tiny GPT-2 with a value head, with padding, the same whatever the
 * micro-batch split.
 */
import type { SequenceRollout } from '@rlmesh/core';
import { buildForwardProgram, type HostTensor, initParameters, Rng, Session } from '@rlmesh/graph';
import { afterAll, describe, expect, it } from 'vitest';
import { maskedWhiten, ppoSeq, ppoTargets } from '../src/algorithms/ppo-seq';
import { rolloutLmBatch } from '../src/algorithms/sequence-batch';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { buildGradientProgram, GradientTrainer, LM_BATCH_INPUTS, tokenLogProbs } from '../src/models/gpt2-step';

const cfgOf = (over: Record<string, unknown>) =>
  ({ ...Object.fromEntries(Object.entries(ppoSeq.config).map(([k, f]) => [k, (f as { default: unknown }).default])), ...over }) as never;

/** Three rows, Lc 4: a full row (no EOS), an early EOS after 2 tokens, a 1-token row. */
const LENGTHS = [4, 2, 1];
const LC = 4;
const SCORES = [0.5, 1, -0.25];
const LOGP = [-1.2, -0.3, -2.0, -0.7, -0.9, -0.1, 0, 0, -1.5, 0, 0, 0];
const REF = [-1.0, -0.5, -2.4, -0.6, -0.9, -0.4, 0, 0, -1.1, 0, 0, 0];
const VALUES = [0.2, -0.1, 0.4, 0.3, 0.6, 0.5, 0, 0, -0.3, 0, 0, 0];

/** TRL's rollout maths in float64, as its PPOTrainer's loops read (values zero past the last token). */
function handTargets(klCoef: number, estimator: 'k1' | 'k3', gamma: number, lam: number) {
  const N = LENGTHS.length;
  const kl: number[] = [];
  const rewards: number[] = [];
  const adv: number[] = [];
  const ret: number[] = [];
  for (let i = 0; i < N; i++) {
    const row = (a: number[]) => a.slice(i * LC, (i + 1) * LC);
    const [lp, rf, v] = [row(LOGP), row(REF), row(VALUES)];
    const k = lp.map((x, t) => {
      if (t >= LENGTHS[i]) return 0;
      const logr = rf[t] - x;
      return estimator === 'k1' ? -logr : Math.exp(logr) - 1 - logr;
    });
    const r = k.map((x) => -klCoef * x);
    r[LENGTHS[i] - 1] += SCORES[i];
    const vv = v.map((x, t) => (t < LENGTHS[i] ? x : 0));
    const a = new Array(LC).fill(0);
    let last = 0;
    for (let t = LC - 1; t >= 0; t--) {
      const next = t < LC - 1 ? vv[t + 1] : 0;
      const delta = r[t] + gamma * next - vv[t];
      last = delta + gamma * lam * last;
      a[t] = last;
    }
    kl.push(...k);
    rewards.push(...r.map((x, t) => (t < LENGTHS[i] ? x : 0)));
    adv.push(...a.map((x, t) => (t < LENGTHS[i] ? x : 0)));
    ret.push(...a.map((x, t) => (t < LENGTHS[i] ? x + vv[t] : 0)));
  }
  // Whitening over the 7 completion tokens, Bessel-corrected.
  const live = adv.filter((_, k) => k % LC < LENGTHS[Math.floor(k / LC)]);
  const m = live.reduce((a, b) => a + b, 0) / live.length;
  const s = Math.sqrt(live.reduce((a, b) => a + (b - m) ** 2, 0) / (live.length - 1) + 1e-8);
  const white = adv.map((x, k) => (k % LC < LENGTHS[Math.floor(k / LC)] ? (x - m) / s : 0));
  return { kl, rewards, raw: adv, advantages: white, returns: ret };
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, digits = 5) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(a[i], `index ${i}`).toBeCloseTo(b[i], digits);
};

describe('ppo_seq: rewards, GAE, whitening and returns against a float64 hand computation', () => {
  for (const [estimator, gamma, lam] of [
    ['k1', 1, 0.95],
    ['k3', 0.9, 0.8],
  ] as const) {
    it(`${estimator}, gamma ${gamma}, lam ${lam}`, () => {
      const cfg = { kl_coef: 0.1, kl_estimator: estimator, whiten_rewards: false, gamma, lam };
      const got = ppoTargets({
        scores: SCORES,
        lengths: LENGTHS,
        logProbs: LOGP,
        refLogProbs: REF,
        values: VALUES,
        completionLength: LC,
        cfg,
      });
      const want = handTargets(0.1, estimator, gamma, lam);
      close(got.kl, want.kl);
      close(got.rewards, want.rewards);
      close(got.rawAdvantages, want.raw);
      close(got.advantages, want.advantages);
      close(got.returns, want.returns);
    });
  }

  it('one row worked out by hand: kl_coef 0, gamma 1, lam 0.95', () => {
    const got = ppoTargets({
      scores: [1],
      lengths: [2],
      logProbs: [-1, -1, 0],
      refLogProbs: null,
      values: [0.25, 0.5, 9],
      completionLength: 3,
      cfg: { kl_coef: 0, kl_estimator: 'k1', whiten_rewards: false, gamma: 1, lam: 0.95 },
    });
    // A_1 = 1 - 0.5; A_0 = (0.5 - 0.25) + 0.95 * 0.5; the padded slot's value (9) is never read.
    close(got.rawAdvantages, [0.25 + 0.95 * 0.5, 0.5, 0]);
    close(got.returns, [0.25 + 0.25 + 0.95 * 0.5, 1, 0]);
  });

  it('whiten_rewards whitens the per-token rewards keeping their mean; maskedWhiten ignores masked slots', () => {
    const cfg = { kl_coef: 0.1, kl_estimator: 'k1' as const, whiten_rewards: true, gamma: 1, lam: 0.95 };
    const got = ppoTargets({
      scores: SCORES,
      lengths: LENGTHS,
      logProbs: LOGP,
      refLogProbs: REF,
      values: VALUES,
      completionLength: LC,
      cfg,
    });
    const raw = handTargets(0.1, 'k1', 1, 0.95).rewards;
    const mask = raw.map((_, k) => (k % LC < LENGTHS[Math.floor(k / LC)] ? 1 : 0));
    const live = raw.filter((_, k) => mask[k]);
    const m = live.reduce((a, b) => a + b, 0) / live.length;
    const s = Math.sqrt(live.reduce((a, b) => a + (b - m) ** 2, 0) / (live.length - 1) + 1e-8);
    close(
      got.rewards,
      raw.map((x, k) => (mask[k] ? (x - m) / s + m : 0)),
    );
    close(maskedWhiten([1, 2, 100, 3], [1, 1, 0, 1], true), [-1, 0, 0, 1]);
  });
});

// ---- the traced loss ----------------------------------------------------------------------------

const TINY: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: 19,
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
  value_head: true,
};
const model = new Gpt2LMHeadModel(TINY);
const params = initParameters(model, new Rng(5));

/** Prompts of 3, 2, 4 tokens; completions of 1, 3 (an early EOS: Lc is 4) and 2 tokens. */
const PROMPTS = [
  [5, 6, 7],
  [9, 4],
  [3, 13, 14, 15],
];
const COMPLETIONS = [[8], [11, 12, 1], [16, 1]];
const CLC = 4;
const rollout: SequenceRollout = {
  actorId: 'test',
  sequence: 0,
  policyVersion: 1,
  numPrompts: 3,
  groupSize: 1,
  promptLength: 4,
  completionLength: CLC,
  promptIds: Int32Array.from(PROMPTS.flatMap((p) => [...p, ...new Array(4 - p.length).fill(0)])),
  promptLengths: Int32Array.from(PROMPTS, (p) => p.length),
  completionIds: Int32Array.from(COMPLETIONS.flatMap((c) => [...c, ...new Array(CLC - c.length).fill(0)])),
  completionMask: Uint8Array.from(COMPLETIONS.flatMap((c) => [...c.map(() => 1), ...new Array(CLC - c.length).fill(0)])),
  logProbs: new Float32Array(3 * CLC),
  rewards: { correct: Float32Array.of(1, 0, 1) },
  success: Uint8Array.of(1, 0, 1),
  refused: new Uint8Array(3),
  truncated: new Uint8Array(3),
  groupIds: Int32Array.of(0, 1, 2),
  episodes: [],
};
/** Per completion token [rows, CLC]: log ratio offsets (inside and outside the clip range), value offsets, advantages, returns. */
const LOG_RATIO = [0.5, 0, 0, 0, -0.5, 0.05, 0.4, 0, -0.4, 0.1, 0, 0];
const V_OFFSET = [0.3, 0, 0, 0, -0.05, 0.4, -0.3, 0, 0.1, -0.5, 0, 0];
const ADV = [1.3, 0, 0, 0, -0.7, 0.2, -1.1, 0, 0.4, 0.9, 0, 0];
const RET = [0.8, 0, 0, 0, -0.2, 0.3, 1.5, 0, 0.1, -0.4, 0, 0];

const sessions: { release(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

/** The model's log-probs and values of every completion token, by a forward program apart from the gradient program. */
async function modelOutputs(): Promise<{ logp: Float32Array; value: Float32Array }> {
  const { onnx, layout } = buildForwardProgram({
    module: model,
    inputs: LM_BATCH_INPUTS,
    forward: (b) => {
      const o = tokenLogProbs(model, b);
      return { log_probs: o.logProbs, value: o.value as never };
    },
  });
  const s = await Session.create(onnx);
  sessions.push(s);
  const lm = rolloutLmBatch(rollout, [0, 1, 2], 0);
  const flat = layout.pack(params);
  const out = await s.run({ ...lm.feeds, params: { data: flat, shape: [flat.length] } });
  const logp = new Float32Array(3 * CLC);
  const value = new Float32Array(3 * CLC);
  lm.take(out.log_probs.data as Float32Array, logp);
  lm.take(out.value.data as Float32Array, value);
  return { logp, value };
}

function feedsFor(rows: number[], old: Float32Array, oldValues: Float32Array, weight: number): Record<string, HostTensor> {
  const lm = rolloutLmBatch(rollout, rows, 0);
  const shape = lm.feeds.input_ids.shape;
  return {
    ...lm.feeds,
    old_log_probs: { data: lm.place(old), shape },
    old_values: { data: lm.place(oldValues), shape },
    advantages: { data: lm.place(ADV), shape },
    returns: { data: lm.place(RET), shape },
    row_weight: { data: new Float32Array(rows.length).fill(weight), shape: [rows.length] },
  };
}

describe('ppo_seq: the clipped policy and value losses against a float64 hand computation', () => {
  it('token mean over the minibatch, every logged sum, and the same gradient split into micro-batches', async () => {
    const cfg = cfgOf({ cliprange: 0.2, cliprange_value: 0.2, vf_coef: 0.1 });
    const { logp, value } = await modelOutputs();
    const old = Float32Array.from(logp, (x, k) => x - LOG_RATIO[k]);
    const oldValues = Float32Array.from(value, (x, k) => x - V_OFFSET[k]);
    // By hand: token k has log ratio LOG_RATIO[k] and v - V_old = V_OFFSET[k].
    let pg = 0;
    let vf = 0;
    let clipped = 0;
    let vfClipped = 0;
    let approx = 0;
    let tokens = 0;
    for (let k = 0; k < 3 * CLC; k++) {
      if (!rollout.completionMask[k]) continue;
      tokens++;
      const ratio = Math.exp(LOG_RATIO[k]);
      const p1 = -ADV[k] * ratio;
      const p2 = -ADV[k] * Math.min(Math.max(ratio, 0.8), 1.2);
      pg += Math.max(p1, p2);
      if (p2 > p1) clipped++;
      const v = value[k];
      const vc = oldValues[k] + Math.min(Math.max(v - oldValues[k], -0.2), 0.2);
      const v1 = (v - RET[k]) ** 2;
      const v2 = (vc - RET[k]) ** 2;
      vf += 0.5 * Math.max(v1, v2);
      if (v2 > v1) vfClipped++;
      approx += 0.5 * LOG_RATIO[k] ** 2;
    }
    expect(tokens).toBe(6);
    expect(clipped).toBeGreaterThan(0);
    expect(vfClipped).toBeGreaterThan(0);
    const program = buildGradientProgram(model, 'ppo_seq_test', ppoSeq.inputs(cfg), (b) => ppoSeq.loss(model, b, cfg));
    const trainer = await GradientTrainer.create(program, params, ppoSeq.adamw(cfg), 1);
    sessions.push(trainer);
    const whole = await trainer.gradient([feedsFor([0, 1, 2], old, oldValues, 1 / tokens)]);
    expect(whole.sums.policy_loss).toBeCloseTo(pg / tokens, 5);
    expect(whole.sums.value_loss).toBeCloseTo(vf / tokens, 5);
    expect(whole.sums.loss).toBeCloseTo(pg / tokens + 0.1 * (vf / tokens), 5);
    expect(whole.sums.clip_sum).toBe(clipped);
    expect(whole.sums.vf_clip_sum).toBe(vfClipped);
    expect(whole.sums.approx_kl_sum).toBeCloseTo(approx, 4);
    // Two micro-batches carrying the minibatch's token count: the same loss and gradient.
    const split = await trainer.gradient([feedsFor([2], old, oldValues, 1 / tokens), feedsFor([0, 1], old, oldValues, 1 / tokens)]);
    expect(split.sums.loss).toBeCloseTo(whole.sums.loss, 5);
    let maxDiff = 0;
    for (let i = 0; i < whole.grad.length; i++) maxDiff = Math.max(maxDiff, Math.abs(whole.grad[i] - split.grad[i]));
    expect(maxDiff).toBeLessThan(1e-5);
    // The value head gets a gradient (the value loss reaches it).
    const head = trainer.layout.entries.find((e) => e.name === 'v_head.summary.weight');
    expect(head).toBeDefined();
    const g = whole.grad.subarray(head?.offset ?? 0, (head?.offset ?? 0) + (head?.size ?? 0));
    expect(g.some((x) => x !== 0)).toBe(true);
  });
});
