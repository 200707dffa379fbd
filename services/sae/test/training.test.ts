/** The pieces around the train step: AuxK against a reference, metrics, scaling, b_dec, dead latents, unit-norm decoder, bad input. */
import { Rng } from '@rlmesh/core';
import { Trainer } from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';
import {
  buildSaeTrainProgram,
  geometricMedian,
  initialSaeParameters,
  meanRow,
  normScalingFactor,
  plantedDictionary,
  SAE_BATCH,
  SaeTrainer,
  saeConfig,
  saeMetrics,
  sampleActivations,
} from '../src';

/** AuxK written out directly, row by row, for comparison with the program's metric. */
function auxKReference(
  p: Map<string, Float32Array>,
  x: Float32Array,
  rows: number,
  dIn: number,
  dSae: number,
  k: number,
  dead: boolean[],
  coef: number,
) {
  const [We, be, Wd, bd] = ['W_enc', 'b_enc', 'W_dec', 'b_dec'].map((n) => p.get(n) as Float32Array);
  const nDead = dead.filter(Boolean).length;
  const kAux = Math.min(Math.floor(dIn / 2), nDead);
  const scale = coef * Math.min(nDead / Math.floor(dIn / 2), 1);
  const decode = (a: number[]) => Array.from({ length: dIn }, (_, j) => bd[j] + a.reduce((s, v, r) => s + v * Wd[r * dIn + j], 0));
  let total = 0;
  for (let b = 0; b < rows; b++) {
    const xr = Array.from(x.subarray(b * dIn, (b + 1) * dIn));
    const pre = Array.from({ length: dSae }, (_, r) => be[r] + xr.reduce((s, v, j) => s + (v - bd[j]) * We[j * dSae + r], 0));
    const order = pre.map((v, r) => [v, r]).sort((a, c) => c[0] - a[0]);
    const acts = new Array(dSae).fill(0);
    for (const [v, r] of order.slice(0, k)) acts[r] = Math.max(v, 0);
    const out = decode(acts);
    const residual = xr.map((v, j) => v - out[j]);
    const aux = new Array(dSae).fill(0);
    for (const [v, r] of order.filter(([, r]) => dead[r]).slice(0, kAux)) aux[r] = v;
    const recon = decode(aux);
    total += recon.reduce((s, v, j) => s + (v - residual[j]) ** 2, 0);
  }
  return (scale * total) / rows;
}

describe('AuxK', () => {
  it.each([
    ['one dead latent: k_aux capped at 1, scale 1/2', [false, false, true, false, false, false]],
    ['three dead latents: k_aux = d_in/2 = 2, scale 1', [true, false, true, false, true, false]],
  ])('matches the reference with %s', async (_name, dead) => {
    const cfg = saeConfig({ architecture: 'topk', d_in: 4, d_sae: 6, k: 2, aux_loss_coefficient: 0.7 });
    const rng = new Rng(5);
    const params = initialSaeParameters(cfg, Float32Array.of(0.1, -0.2, 0.3, 0), rng);
    params.set(
      'b_enc',
      Float32Array.from({ length: 6 }, () => rng.normal() * 0.1),
    );
    const x = Float32Array.from({ length: 5 * 4 }, () => rng.normal());
    const trainer = await Trainer.create(buildSaeTrainProgram(cfg), params, { intraOpThreads: 1 });
    const nDead = dead.filter(Boolean).length;
    const m = await trainer.step(
      {
        [SAE_BATCH.x]: { data: x, shape: [5, 4] },
        [SAE_BATCH.coefficient]: { data: Float32Array.of(0), shape: [] },
        [SAE_BATCH.deadMask]: { data: Float32Array.from(dead, Number), shape: [6] },
        [SAE_BATCH.auxScale]: { data: Float32Array.of(0.7 * Math.min(nDead / 2, 1)), shape: [] },
      },
      1e-3,
    );
    await trainer.release();
    const want = auxKReference(params, x, 5, 4, 6, 2, dead, 0.7);
    expect(want).toBeGreaterThan(0.01);
    expect(m.auxiliary_reconstruction_loss).toBeCloseTo(want, 4);
  });
});

describe('metrics', () => {
  it('computes L0, MSE, normalised MSE, explained variance, dead and dense fractions as defined', () => {
    // Two rows of d_in 2; batch mean (2, 1); residuals (0, 1) and (1, 0).
    const m = saeMetrics({ x: Float32Array.of(1, 0, 3, 2), xHat: Float32Array.of(1, -1, 2, 2), dIn: 2, fired: [2, 1, 0, 0] });
    expect(m.l0).toBe(1.5);
    expect(m.mse).toBeCloseTo(2 / 4, 12);
    expect(m.normalized_mse).toBeCloseTo(2 / 14, 12);
    // Σ‖x − x̄‖² = (1 + 1) + (1 + 1) = 4
    expect(m.explained_variance).toBeCloseTo(1 - 2 / 4, 12);
    expect(m.dead_fraction).toBe(0.5);
    // fired on 2/2 and 1/2 of rows, both above 0.1
    expect(m.dense_fraction).toBe(0.5);
  });
});

describe('input scaling and b_dec', () => {
  it('scales to mean norm sqrt(d_in) and puts b_dec at the geometric median, which ignores an outlier the mean follows', () => {
    const rows = [0, 0, 2, 0, 0, 2, 2, 2, 100, 100];
    const acts = { data: Float32Array.from(rows), rows: 5 };
    const norms = [0, 2, 2, Math.SQRT2 * 2, Math.SQRT2 * 100];
    expect(normScalingFactor(acts, 2)).toBeCloseTo(Math.SQRT2 / (norms.reduce((a, b) => a + b) / 5), 9);
    const mean = meanRow(acts, 2);
    expect(mean[0]).toBeCloseTo(20.8, 4);
    const median = geometricMedian(acts, 2);
    expect(median[0]).toBeGreaterThan(0.8);
    expect(median[0]).toBeLessThan(1.6);
    expect(median[1]).toBeCloseTo(median[0], 3);
  });
});

describe('SaeTrainer', () => {
  const rng = new Rng(11);
  const dict = plantedDictionary(rng, 16, 8, 1);
  const data = (rows: number) => sampleActivations(dict, rng, rows, { p: 0.3 });

  it('counts a latent dead once it has not fired for more than dead_feature_window steps', async () => {
    // TopK with k = 1 over 64 latents: most never win, so many turn dead right after the window (none before it).
    const t = await SaeTrainer.create({ architecture: 'topk', d_in: 16, d_sae: 64, k: 1, dead_feature_window: 5 }, data(128), {
      intraOpThreads: 1,
    });
    const fractions: number[] = [];
    for (let s = 0; s < 8; s++) fractions.push((await t.step(data(32))).dead_fraction);
    await t.release();
    expect(fractions.slice(0, 5).every((f) => f === 0)).toBe(true);
    expect(fractions[7]).toBeGreaterThan(0.3);
  });

  it('keeps decoder rows at unit norm under normalize_sae_decoder and still learns', async () => {
    const t = await SaeTrainer.create({ d_in: 16, d_sae: 32, normalize_sae_decoder: true, lr: 3e-3, l1_coefficient: 0.1 }, data(256), {
      intraOpThreads: 1,
    });
    const first = await t.step(data(64));
    let last = first;
    for (let s = 0; s < 200; s++) last = await t.step(data(64));
    const wDec = t.parameters().get('W_dec') as Float32Array;
    for (let r = 0; r < 32; r++) expect(Math.hypot(...wDec.subarray(r * 16, (r + 1) * 16))).toBeCloseTo(1, 5);
    expect(last.mse_loss).toBeLessThan(first.mse_loss / 3);
    await t.release();
  });

  it('rejects bad activations naming the value, and bad configs naming the key', async () => {
    await expect(SaeTrainer.create({ d_in: 16, d_sae: 8, architecture: 'topk', k: 9 }, data(8))).rejects.toThrow(
      /^k: must be <= d_sae \(8\)/,
    );
    await expect(SaeTrainer.create({ d_in: 16, d_sae: 8, l1_coefficent: 1 }, data(8))).rejects.toThrow(/l1_coefficent: unknown key/);
    const t = await SaeTrainer.create({ d_in: 16, d_sae: 8 }, data(8), { intraOpThreads: 1 });
    const bad = data(2);
    bad.data[17] = Number.NaN;
    await expect(t.step(bad)).rejects.toThrow(/batch: value 17 \(row 1\) is NaN/);
    await expect(t.step({ data: new Float32Array(15), rows: 1 })).rejects.toThrow(/15 values is not 1 rows of d_in 16/);
    await t.release();
  });
});

/** Pre-activations on host: (x − b_dec) · W_enc + b_enc per row. */
function hostPre(p: Map<string, Float32Array>, x: Float32Array, rows: number, dIn: number, dSae: number): number[][] {
  const [We, be, bd] = ['W_enc', 'b_enc', 'b_dec'].map((n) => p.get(n) as Float32Array);
  return Array.from({ length: rows }, (_, b) =>
    Array.from({ length: dSae }, (_, r) => {
      let s = be[r];
      for (let j = 0; j < dIn; j++) s += (x[b * dIn + j] - bd[j]) * We[j * dSae + r];
      return s;
    }),
  );
}

describe('sparsity terms, with their warm-up', () => {
  const rng = new Rng(13);
  const dict = plantedDictionary(rng, 8, 6, 1);
  const data = (rows: number) => sampleActivations(dict, rng, rows, { p: 0.4 });

  it.each([
    ['p = 1, weighted by decoder row norms', { lp_norm: 1, scale_sparsity_penalty_by_decoder_norm: true }],
    ['p = 2, weighted', { lp_norm: 2, scale_sparsity_penalty_by_decoder_norm: true }],
    ['p = 1, unweighted', { lp_norm: 1, scale_sparsity_penalty_by_decoder_norm: false }],
  ])('standard l1_loss = c·min(1, (step+1)/warm-up) · mean_b ‖a ⊙ ‖W_dec‖‖_p (%s)', async (_name, extra) => {
    const cfg = { d_in: 8, d_sae: 12, l1_coefficient: 0.6, l1_warm_up_steps: 4, lr: 1e-2, ...extra };
    const t = await SaeTrainer.create(cfg, data(64), { intraOpThreads: 1 });
    for (let s = 0; s < 6; s++) {
      const p = t.parameters();
      const batch = data(16);
      const x = batch.data.map((v) => v * t.scalingFactor);
      const Wd = p.get('W_dec') as Float32Array;
      const norms = Array.from({ length: 12 }, (_, r) =>
        extra.scale_sparsity_penalty_by_decoder_norm ? Math.hypot(...Wd.subarray(r * 8, r * 8 + 8)) : 1,
      );
      const rowsNorm = hostPre(p, x, 16, 8, 12).map((pre) => {
        const w = pre.map((z, r) => Math.max(z, 0) * norms[r]);
        return w.reduce((a, v) => a + v ** extra.lp_norm, 0) ** (1 / extra.lp_norm);
      });
      const want = 0.6 * Math.min(1, (s + 1) / 4) * (rowsNorm.reduce((a, b) => a + b) / 16);
      const m = await t.step(batch);
      expect(want).toBeGreaterThan(1e-3);
      expect(Math.abs(m.l1_loss - want) / want).toBeLessThan(1e-4);
    }
    await t.release();
  });

  it('jumprelu l0_loss = c·min(1, (step+1)/warm-up) · mean_b #(z > θ), and l0 counts active codes', async () => {
    const cfg = { architecture: 'jumprelu', d_in: 8, d_sae: 12, l0_coefficient: 0.3, l0_warm_up_steps: 3, jumprelu_init_threshold: 0.2 };
    const t = await SaeTrainer.create(cfg, data(64), { intraOpThreads: 1 });
    for (let s = 0; s < 4; s++) {
      const p = t.parameters();
      const theta = Array.from(p.get('log_threshold') as Float32Array, Math.exp);
      const batch = data(16);
      const x = batch.data.map((v) => v * t.scalingFactor);
      const count = hostPre(p, x, 16, 8, 12).reduce((a, pre) => a + pre.filter((z, r) => z > theta[r]).length, 0) / 16;
      const m = await t.step(batch);
      expect(count).toBeGreaterThan(0);
      expect(m.l0).toBeCloseTo(count, 5);
      expect(m.l0_loss).toBeCloseTo(0.3 * Math.min(1, (s + 1) / 3) * count, 5);
    }
    await t.release();
  });
});
