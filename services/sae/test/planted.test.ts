/**
 * The acceptance check: on activations built from a known sparse dictionary (48 random unit
 * directions in 32 dimensions plus a constant offset, about 3 active per row with coefficients in
 * [0.5, 1.5]), every SAE kind recovers at least 90% of the planted directions (best decoder cosine
 * >= 0.9). The same check on the SAE's initial weights must fail, so passing it takes training that
 * found the dictionary, not a lenient threshold.
 */
import { Rng } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import { type PlantedDictionary, plantedDictionary, recovery, SaeTrainer, sampleActivations } from '../src';

const D_IN = 32;
const PLANTED = 48;
const CODES = { p: 3 / PLANTED };

interface Case {
  name: string;
  config: Record<string, unknown>;
  steps: number;
}

// Coefficients are set for this data (inputs scaled to mean norm sqrt(32)); everything else is the default.
const cases: Case[] = [
  { name: 'standard (ReLU + L1)', config: { architecture: 'standard', l1_coefficient: 0.2 }, steps: 1500 },
  {
    name: 'standard with a unit-norm decoder',
    config: { architecture: 'standard', l1_coefficient: 0.3, normalize_sae_decoder: true },
    steps: 1500,
  },
  { name: 'topk (k = 4, AuxK)', config: { architecture: 'topk', k: 4 }, steps: 1000 },
  {
    name: 'jumprelu',
    config: { architecture: 'jumprelu', jumprelu_bandwidth: 0.1, jumprelu_init_threshold: 0.3, l0_coefficient: 0.2 },
    steps: 1500,
  },
];

function decoder(trainer: SaeTrainer): Float32Array {
  return trainer.parameters().get('W_dec') as Float32Array;
}

async function setup(config: Record<string, unknown>) {
  const rng = new Rng(7);
  const dict = plantedDictionary(rng, D_IN, PLANTED, 2);
  const sample = sampleActivations(dict, rng, 2048, CODES);
  const trainer = await SaeTrainer.create({ d_in: D_IN, d_sae: 96, lr: 3e-3, seed: 1, ...config }, sample, { intraOpThreads: 1 });
  return { rng, dict, trainer };
}

async function train(trainer: SaeTrainer, dict: PlantedDictionary, rng: Rng, steps: number) {
  const first = await trainer.step(sampleActivations(dict, rng, 256, CODES));
  let last = first;
  for (let s = 1; s < steps; s++) last = await trainer.step(sampleActivations(dict, rng, 256, CODES));
  return { first, last };
}

describe('planted dictionary', () => {
  for (const c of cases) {
    it(`${c.name} recovers >= 90% of the planted directions; its initial weights recover almost none`, async () => {
      const { rng, dict, trainer } = await setup(c.config);
      try {
        const before = recovery(dict, decoder(trainer));
        expect(before.fraction).toBeLessThan(0.1);
        const { first, last } = await train(trainer, dict, rng, c.steps);
        const after = recovery(dict, decoder(trainer));
        expect(after.fraction, `best cosines ${Array.from(after.bestCosine, (v) => v.toFixed(2))}`).toBeGreaterThanOrEqual(0.9);
        expect(last.mse_loss).toBeLessThan(first.mse_loss / 5);
        const m = await trainer.evaluate(sampleActivations(dict, rng, 2048, CODES));
        expect(m.explained_variance).toBeGreaterThan(0.9);
        if (c.config.architecture === 'topk') expect(m.l0).toBeLessThanOrEqual(4);
        if (c.config.architecture === 'jumprelu') expect(m.l0).toBeLessThan(6);
      } finally {
        await trainer.release();
      }
    });
  }

  it('a trainer with the sparsity penalty off does not pass: the check needs the right objective', async () => {
    // Plain ReLU autoencoding (no L1) reconstructs well but spreads the dictionary over mixtures.
    const { rng, dict, trainer } = await setup({ architecture: 'standard', l1_coefficient: 0 });
    try {
      await train(trainer, dict, rng, 1500);
      const m = await trainer.evaluate(sampleActivations(dict, rng, 2048, CODES));
      expect(m.explained_variance).toBeGreaterThan(0.9);
      expect(recovery(dict, decoder(trainer)).fraction).toBeLessThan(0.9);
    } finally {
      await trainer.release();
    }
  });
});
