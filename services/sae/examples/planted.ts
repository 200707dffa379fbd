/**
 * Trains a TopK SAE on activations built from a planted dictionary, reports how many planted
 * directions it recovered and its metrics, and saves it in SAELens's layout.
 *   npx tsx --conditions=source services/sae/examples/planted.ts [outDir]
 */
import { Rng } from '@rlmesh/core';
import { foldedWeights, loadSaeLens, plantedDictionary, recovery, SaeTrainer, sampleActivations, saveSaeLens } from '../src';

async function main() {
  const out = process.argv[2] ?? '.tmp/sae-example';
  const rng = new Rng(7);
  const dict = plantedDictionary(rng, 32, 48, 2); // 48 unit directions in 32 dims, plus an offset
  const codes = { p: 3 / 48 }; // about 3 active directions per row
  const trainer = await SaeTrainer.create(
    { architecture: 'topk', d_in: 32, d_sae: 96, k: 4, lr: 3e-3 },
    sampleActivations(dict, rng, 2048, codes), // sets the input scaling and b_dec
  );
  for (let step = 0; step < 1000; step++) {
    const m = await trainer.step(sampleActivations(dict, rng, 256, codes));
    if (step % 200 === 0) console.log(`step ${step}: mse_loss ${m.mse_loss.toFixed(3)} l0 ${m.l0}`);
  }
  const found = recovery(dict, trainer.parameters().get('W_dec') as Float32Array);
  console.log(`recovered ${(found.fraction * 100).toFixed(0)}% of planted directions (best cosine >= 0.9)`);
  console.log(await trainer.evaluate(sampleActivations(dict, rng, 4096, codes)));
  await saveSaeLens(out, foldedWeights(trainer, { model_name: 'planted', hook_name: 'synthetic' }));
  const loaded = await loadSaeLens(out);
  console.log(`saved ${out}/sae_weights.safetensors and cfg.json (${loaded.cfg.architecture}, d_sae ${loaded.cfg.d_sae})`);
  await trainer.release();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
