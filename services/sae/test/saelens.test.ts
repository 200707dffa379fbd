/** Saving in SAELens's layout and loading it back; what is saved works on raw (unscaled) activations. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { loadSafetensors, saveSafetensors } from '@rlmesh/graph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  foldedWeights,
  loadSaeLens,
  plantedDictionary,
  SAE_CFG_FILENAME,
  SAE_WEIGHTS_FILENAME,
  SaeModel,
  SaeTrainer,
  sampleActivations,
  saveSaeLens,
} from '../src';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rlmesh-sae-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(['standard', 'topk', 'jumprelu'] as const)('SAELens layout: %s', (architecture) => {
  it('saves W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec (+ threshold) and cfg.json, and loads them back', async () => {
    const rng = new Rng(3);
    const dict = plantedDictionary(rng, 8, 12, 1);
    // Raw activations far from unit scale, so a missing fold of the input scaling would show.
    const raw = (rows: number) => {
      const a = sampleActivations(dict, rng, rows, { p: 0.25 });
      return { data: a.data.map((v) => v * 37), rows };
    };
    const trainer = await SaeTrainer.create(
      { architecture, d_in: 8, d_sae: 24, k: 3, lr: 3e-3, jumprelu_init_threshold: 0.05, jumprelu_bandwidth: 0.05 },
      raw(256),
      { intraOpThreads: 1 },
    );
    for (let s = 0; s < 30; s++) await trainer.step(raw(64));
    expect(trainer.scalingFactor).not.toBeCloseTo(1, 1);
    const out = join(dir, architecture);
    await saveSaeLens(out, foldedWeights(trainer, { model_name: 'baby', hook_name: 'blocks.0.hook_resid_post' }));

    const file = await loadSafetensors(join(out, SAE_WEIGHTS_FILENAME));
    const shapes = Object.fromEntries(Object.entries(file.tensors).map(([k, t]) => [k, `${t.dtype}[${t.shape}]`]));
    expect(shapes).toEqual({
      W_enc: 'F32[8,24]',
      W_dec: 'F32[24,8]',
      b_enc: 'F32[24]',
      b_dec: 'F32[8]',
      ...(architecture === 'jumprelu' ? { threshold: 'F32[24]' } : {}),
    });
    const cfg = JSON.parse(await readFile(join(out, SAE_CFG_FILENAME), 'utf8'));
    expect(cfg).toMatchObject({
      architecture,
      d_in: 8,
      d_sae: 24,
      dtype: 'float32',
      apply_b_dec_to_input: true,
      normalize_activations: 'none',
      metadata: { hook_name: 'blocks.0.hook_resid_post', model_name: 'baby' },
    });
    if (architecture === 'topk') expect(cfg.k).toBe(3);
    else expect(cfg.k).toBeUndefined();

    // The loaded SAE on raw inputs reproduces the trained one on scaled inputs, scaled back.
    const loaded = await loadSaeLens(out);
    expect(loaded.cfg.architecture).toBe(architecture);
    const model = await SaeModel.create(loaded, { intraOpThreads: 1 });
    const probe = raw(32);
    const { saeOut, featureActs } = await model.forward(probe);
    await model.release();
    const s = trainer.scalingFactor;
    const m = await trainer.evaluate(probe);
    let resid = 0;
    let energy = 0;
    for (let i = 0; i < probe.data.length; i++) {
      resid += (probe.data[i] * s - saeOut[i] * s) ** 2;
      energy += (probe.data[i] * s) ** 2;
    }
    expect(resid / energy).toBeCloseTo(m.normalized_mse, 4);
    let active = 0;
    for (const v of featureActs) if (v > 0) active++;
    expect(active / probe.rows).toBeCloseTo(m.l0, 5);
    await trainer.release();
  });
});

describe('loading rejects what it cannot use, naming it', () => {
  it('a missing tensor, a wrong shape, and an input scaling that was not folded', async () => {
    const rng = new Rng(1);
    const dict = plantedDictionary(rng, 4, 6);
    const trainer = await SaeTrainer.create({ d_in: 4, d_sae: 8 }, sampleActivations(dict, rng, 64, { p: 0.5 }), { intraOpThreads: 1 });
    const out = join(dir, 'bad');
    await saveSaeLens(out, foldedWeights(trainer));
    await trainer.release();
    const weights = join(out, SAE_WEIGHTS_FILENAME);
    const good = await loadSafetensors(weights);

    const { b_enc: _dropped, ...rest } = good.tensors;
    await saveSafetensors(weights, rest);
    await expect(loadSaeLens(out)).rejects.toThrow(/tensor b_enc missing/);

    await saveSafetensors(weights, { ...good.tensors, W_dec: { ...good.tensors.W_dec, shape: [4, 8] } });
    await expect(loadSaeLens(out)).rejects.toThrow(/W_dec must be F32 \[8,4\], got F32 \[4,8\]/);

    await saveSafetensors(weights, good.tensors);
    const cfgPath = join(out, SAE_CFG_FILENAME);
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8'));
    await writeFile(cfgPath, JSON.stringify({ ...cfg, normalize_activations: 'expected_average_only_in' }));
    await expect(loadSaeLens(out)).rejects.toThrow(/normalize_activations/);
    await writeFile(cfgPath, JSON.stringify({ ...cfg, d_sae: 0 }));
    await expect(loadSaeLens(out)).rejects.toThrow(/d_sae: must be an integer >= 1/);
  });
});
