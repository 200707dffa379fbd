/**
 * Loss recovered against SAEs whose answer is known: one that reconstructs its input exactly
 * (codes relu(x) and relu(−x), decoded back as x) recovers all of the loss, and one that outputs
 * zeros recovers none of it; a real, briefly trained one lies in between. The same for a causal
 * language model over every token position.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { buildCardsDatasets, exampleRecord } from '@rlmesh/envs';
import { initParameters, saveWeights } from '@rlmesh/graph';
import { buildModel, envShape, loadPolicyFile, type PolicyFile, parseRunConfig } from '@rlmesh/learner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyGpt2Dir } from '../../evaluator/test/gpt2-fixture';
import {
  captureActivations,
  gpt2Policy,
  lossRecovered,
  openGpt2Directory,
  readActivationStore,
  type SaeWeights,
  saeConfig,
  trainOnStore,
} from '../src';

const HOOK = 'blocks.0.hook_resid_post';
const H = 16;

function exactSae(H = 16): SaeWeights {
  const cfg = saeConfig({ architecture: 'standard', d_in: H, d_sae: 2 * H, apply_b_dec_to_input: false, normalize_activations: 'none' });
  const W_enc = new Float32Array(H * 2 * H);
  const W_dec = new Float32Array(2 * H * H);
  for (let i = 0; i < H; i++) {
    W_enc[i * 2 * H + i] = 1;
    W_enc[i * 2 * H + H + i] = -1;
    W_dec[i * H + i] = 1;
    W_dec[(H + i) * H + i] = -1;
  }
  const params = new Map([
    ['W_enc', W_enc],
    ['b_enc', new Float32Array(2 * H)],
    ['W_dec', W_dec],
    ['b_dec', new Float32Array(H)],
  ]);
  return { cfg, params, metadata: {} };
}

function zeroSae(H = 16): SaeWeights {
  const w = exactSae(H);
  for (const v of w.params.values()) v.fill(0);
  return w;
}

describe('lossRecovered', () => {
  let dir: string;
  let file: PolicyFile;
  let obs: Float32Array;
  let rows: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-lossrec-'));
    const cfg = parseRunConfig({
      run: { name: 'loss-recovered', seed: 0 },
      env: { id: 'SequenceNext', num_envs: 4, num_steps: 1, options: { num_symbols: 8, max_episode_steps: 2 } },
      model: { id: 'baby', hidden_dim: H, num_layers: 2, num_heads: 2, ff_dim: 32 },
      algo: { name: 'reinforce' },
      train: { total_env_steps: 64 },
    });
    const model = buildModel(cfg, envShape(cfg));
    const path = join(dir, 'model.safetensors');
    // Larger weights than the default init, so the policy is far from uniform and ablation costs something.
    const params = initParameters(model.module, new Rng(2));
    for (const v of params.values()) for (let i = 0; i < v.length; i++) v[i] *= 3;
    await saveWeights(path, model.module, params, { config: JSON.stringify(cfg), model: model.name });
    file = await loadPolicyFile(path);
    await captureActivations(path, HOOK, { env: { episodes: 150, level: 2 } }, join(dir, 'acts'));
    const store = await readActivationStore(join(dir, 'acts'));
    expect(store.observations?.d).toBe(24);
    obs = store.observations?.data as Float32Array;
    rows = store.rows;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is 1 for an SAE that reconstructs exactly and 0 for one that outputs zeros', async () => {
    const exact = await lossRecovered(file, HOOK, exactSae(), obs, rows);
    expect(exact.rows).toBe(300);
    expect(exact.zero - exact.clean).toBeGreaterThan(0.05);
    expect(exact.recovered).toBeCloseTo(1, 4);
    expect(Math.abs(exact.kl)).toBeLessThan(1e-5);
    const zero = await lossRecovered(file, HOOK, zeroSae(), obs, rows);
    expect(zero.recovered).toBeCloseTo(0, 4);
    expect(zero.clean).toBeCloseTo(exact.clean, 6);
  });

  it('puts a briefly trained SAE between the two, and refuses a hook of another width', async () => {
    const store = await readActivationStore(join(dir, 'acts'));
    const trained = await trainOnStore(store, { architecture: 'topk', d_sae: 32, k: 4, lr: 3e-3 }, { steps: 150, batchSize: 64 });
    const r = await lossRecovered(file, HOOK, trained.weights, obs, rows);
    expect(r.recovered).toBeGreaterThan(0.2);
    expect(r.recovered).toBeLessThan(1.0001);
    await expect(lossRecovered(file, 'blocks.0.mlp.hook_post', exactSae(), obs, rows)).rejects.toThrow(
      /the hook is \[batch,32\], the SAE reads rows of 16/,
    );
  });
});

describe('lossRecovered on a causal language model', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-lossrec-lm-'));
    await tinyGpt2Dir(join(dir, 'gpt2'));
    const examples = buildCardsDatasets({ seed: 2, nTrain: 0, nVal: 0, nTest: 4 })[0].examples.slice(0, 4);
    writeFileSync(join(dir, 'cards.jsonl'), examples.map((e) => `${JSON.stringify(exampleRecord(e))}\n`).join(''));
    await captureActivations(join(dir, 'gpt2'), HOOK, { data: join(dir, 'cards.jsonl') }, join(dir, 'acts'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('averages the next-token cross-entropy over every token: 1 for an exact SAE, 0 for a zero one', async () => {
    const store = await readActivationStore(join(dir, 'acts'));
    const seen = store.observations as { data: Float32Array; d: number };
    const g = await openGpt2Directory(join(dir, 'gpt2'));
    const policy = { model: gpt2Policy(g.config, seen.d, g.padId), params: g.params };
    const exact = await lossRecovered(policy, HOOK, exactSae(32), seen.data, store.rows);
    // Every captured row is one token position, each counted once.
    expect(exact.rows).toBe(store.rows);
    // Random weights: ablating costs little, but enough that the ratio is well defined.
    expect(exact.zero - exact.clean).toBeGreaterThan(1e-3);
    expect(exact.recovered).toBeCloseTo(1, 4);
    const zero = await lossRecovered(policy, HOOK, zeroSae(32), seen.data, store.rows);
    expect(zero.recovered).toBeCloseTo(0, 4);
  });
});
