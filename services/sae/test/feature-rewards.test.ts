/**
 * Feature rewards on a planted SAE: latent 0 is built to fire exactly on one token's embedding (the
 * hook_embed row of that token), latent 1 never fires and latent 2 always does, so every score is
 * known by counting tokens. Then the learner joins a set to GRPO's rewards: a penalty on the
 * always-firing latent lowers every completion's reward by exactly its weight.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, type SequenceRollout } from '@rlmesh/core';
import { loadSftCheckpoint, parseSequenceRunConfig, trainSequences } from '@rlmesh/learner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerLettersEnv, tinyGpt2Dir } from '../../learner/test/tiny-letters';
import {
  type Completion,
  FeatureRewarder,
  featureRewardWeights,
  firingScores,
  openGpt2Directory,
  parseFeatureRewards,
  rolloutCompletions,
  saeConfig,
  saveSaeLens,
} from '../src';

const HOOK = 'hook_embed';
let dir: string;
let gpt2: string;
let target: number;
let vocab: number;

/** The SAE of the file comment, for embeddings `wte` [vocab, d]: returns the token latent 0 detects. */
async function plantedSae(out: string, wte: Float32Array, d: number): Promise<number> {
  const V = wte.length / d;
  const row = (i: number) => wte.subarray(i * d, (i + 1) * d);
  const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);
  // The token whose projection on its own direction stands furthest above every other token's.
  let best = { token: -1, margin: 0, cut: 0 };
  for (let t = 0; t < V; t++) {
    const u = row(t).map((x) => x / Math.hypot(...row(t)));
    const own = dot(u, row(t));
    let other = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < V; j++) if (j !== t) other = Math.max(other, dot(u, row(j)));
    if (own - other > best.margin) best = { token: t, margin: own - other, cut: (own + other) / 2 };
  }
  if (best.token < 0) throw new Error('no token is separable by its own direction');
  const dSae = 3;
  const u = row(best.token).map((x) => x / Math.hypot(...row(best.token)));
  const wEnc = new Float32Array(d * dSae);
  for (let j = 0; j < d; j++) wEnc[j * dSae] = u[j];
  const cfg = saeConfig({ architecture: 'standard', d_in: d, d_sae: dSae, apply_b_dec_to_input: false, normalize_activations: 'none' });
  await saveSaeLens(out, {
    cfg,
    params: new Map([
      ['W_enc', wEnc],
      ['b_enc', Float32Array.from([-best.cut, -1, 1])],
      ['W_dec', new Float32Array(dSae * d)],
      ['b_dec', new Float32Array(d)],
    ]),
    metadata: { hook_name: HOOK },
  });
  return best.token;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rlmesh-feature-rewards-'));
  gpt2 = await tinyGpt2Dir(dir);
  const { config, params } = await loadSftCheckpoint(gpt2, false);
  vocab = config.vocab_size;
  target = await plantedSae(join(dir, 'sae'), params.get('transformer.wte.weight') as Float32Array, config.n_embd);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const set = (o: Record<string, unknown>) => ({ name: 'f', hook: HOOK, sae: join(dir, 'sae'), features: [0], ...o });

describe('feature rewards', () => {
  it('scores each completion by its planted latents, on completion tokens only', async () => {
    const specs = parseFeatureRewards([
      set({ name: 'target_mean' }),
      set({ name: 'target_max', reduce: 'max' }),
      set({ name: 'half', features: [1, 2] }),
      set({ name: 'above_threshold', features: [2], threshold: 2 }),
    ]);
    const g = await openGpt2Directory(gpt2);
    const r = await FeatureRewarder.create(specs, g);
    try {
      const rng = new Rng(3);
      const other = () => {
        const t = rng.int(vocab - 1);
        return t >= target ? t + 1 : t;
      };
      // The target in the prompt must not count; completions of 1-12 tokens, some with the target.
      const seqs: Completion[] = Array.from({ length: 20 }, (_, i) => ({
        prompt: [target, other(), other()],
        completion: Array.from({ length: 1 + (i % 12) }, () => (rng.uniform() < 0.3 ? target : other())),
      }));
      const s = await r.scoreCompletions(g.params, seqs);
      for (const [i, q] of seqs.entries()) {
        const hits = q.completion.filter((t) => t === target).length;
        expect(s.target_mean[i]).toBeCloseTo(hits / q.completion.length, 6);
        expect(s.target_max[i]).toBe(hits > 0 ? 1 : 0);
        expect(s.half[i]).toBeCloseTo(0.5, 6);
        expect(s.above_threshold[i]).toBe(0);
      }
      expect(seqs.some((q) => q.completion.includes(target))).toBe(true);
      expect(featureRewardWeights([...specs, { ...specs[0], name: 'p', kind: 'penalty', weight: 0.3 }])).toEqual({
        target_mean: 0.1,
        target_max: 0.1,
        half: 0.1,
        above_threshold: 0.1,
        p: -0.3,
      });
    } finally {
      await r.release();
    }
  });

  it('reads a rollout’s rows without their padding', () => {
    const r = {
      numPrompts: 1,
      groupSize: 2,
      promptLength: 3,
      completionLength: 2,
      promptIds: Int32Array.from([5, 6, 0, 5, 6, 0]),
      promptLengths: Int32Array.from([2, 2]),
      completionIds: Int32Array.from([7, 0, 8, 9]),
      completionMask: Uint8Array.from([1, 0, 1, 1]),
    } as unknown as SequenceRollout;
    expect(rolloutCompletions(r)).toEqual([
      { prompt: [5, 6], completion: [7] },
      { prompt: [5, 6], completion: [8, 9] },
    ]);
    expect(Array.from(firingScores(Float32Array.from([1, 0, 2, 0, 0, 0]), 2, [2, 1], 'mean'))).toEqual([1, 0, 0, 0]);
  });

  it('refuses bad feature sets naming the key', async () => {
    expect(() => parseFeatureRewards({})).toThrow(/feature_rewards: must be a list/);
    expect(() => parseFeatureRewards([set({ features: [] })])).toThrow(/feature_rewards\[0\]\.features: must be a non-empty list/);
    expect(() => parseFeatureRewards([set({ kind: 'bonus!' })])).toThrow(/feature_rewards\[0\]\.kind/);
    expect(() => parseFeatureRewards([set({}), set({})])).toThrow(/feature_rewards\[1\]\.name: f names two/);
    const g = await openGpt2Directory(gpt2);
    await expect(FeatureRewarder.create(parseFeatureRewards([set({ features: [3] })]), g)).rejects.toThrow(
      /feature_rewards\[0\]\.features: latent 3 is not below the SAE's d_sae 3/,
    );
    await expect(FeatureRewarder.create(parseFeatureRewards([set({ hook: 'blocks.0.hook_resid_post', sae: dir })]), g)).rejects.toThrow(
      /feature_rewards\[0\]\.sae/,
    );
    await expect(FeatureRewarder.create(parseFeatureRewards([set({ hook: 'nope' })]), g)).rejects.toThrow(/unknown hook "nope"/);
  });

  it('joins a set to GRPO’s rewards: a penalty on an always-firing latent costs exactly its weight', async () => {
    registerLettersEnv('FeatureLetters');
    const specs = parseFeatureRewards([set({ name: 'always', features: [2], kind: 'penalty', weight: 0.25 })]);
    const cfg = parseSequenceRunConfig({
      run: { name: 'grpo', seed: 1, out_dir: dir },
      env: { id: 'FeatureLetters' },
      init_from: gpt2,
      algo: {
        name: 'grpo',
        num_generations: 4,
        prompts_per_update: 2,
        micro_batch_size: 8,
        max_completion_length: 3,
        learning_rate: 1e-3,
        reward_weights: { correct: 1, ...featureRewardWeights(specs) },
      },
      train: { total_updates: 2, threads: 1 },
    });
    const extraRewards = await FeatureRewarder.create(specs, await openGpt2Directory(gpt2));
    const records: { metrics: Record<string, number> }[] = [];
    try {
      await trainSequences(cfg, { extraRewards, onUpdate: (r) => records.push(r) });
    } finally {
      await extraRewards.release();
    }
    expect(records).toHaveLength(2);
    for (const { metrics: m } of records) {
      expect(m.reward_always).toBe(1);
      expect(m.reward_mean).toBeCloseTo(m.reward_correct - 0.25, 6);
    }
  });
});
