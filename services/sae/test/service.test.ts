/**
 * SaeServiceCore without a network: Train on a planted-dictionary store under the root, Get and
 * List, Encode against the stored weights computed by hand, Explain with the labels the store's
 * context carried, and every bad request refused with its code and field.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Rng } from '@rlmesh/core';
import { MeshError } from '@rlmesh/mesh';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSaeLens, plantedDictionary, SaeServiceCore, sampleActivations, topCodes, writeActivationStore } from '../src';

const D_IN = 16;
const rmDir = (p: string) => rm(p, { recursive: true, force: true });
const ROWS = 3000;

/** Each row's context labels the planted direction with the largest coefficient (what an SAE feature should track). */
function plantedStore(seed: number) {
  const rng = new Rng(seed);
  const dict = plantedDictionary(rng, D_IN, 12, 1);
  const acts = sampleActivations(dict, rng, ROWS, { p: 2 / 12 });
  const context = Array.from({ length: ROWS }, (_, r) => ({ row: r, labels: { parity: r % 2 } }));
  return { acts, context };
}

async function refused(p: Promise<unknown>, code: status, field: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (err) => err,
  );
  expect(e, 'expected a refusal').toBeInstanceOf(MeshError);
  expect((e as MeshError).code).toBe(code);
  expect((e as MeshError).message).toMatch(field);
}

describe('SaeServiceCore', () => {
  let root: string;
  let core: SaeServiceCore;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'rlmesh-sae-'));
    const { acts, context } = plantedStore(3);
    await writeActivationStore(join(root, 'acts', 'planted'), { ...acts, d: D_IN }, { hook: 'synthetic' }, context);
    core = new SaeServiceCore(root);
  });

  afterAll(async () => {
    await core.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('trains a TopK SAE on a stored set, measures it on held-out rows, and keeps it under its id', async () => {
    const progress: number[] = [];
    const sae = await core.train({
      activations: 'acts/planted',
      config: JSON.stringify({ architecture: 'topk', d_sae: 32, k: 3, lr: 3e-3 }),
      steps: 300,
      batch_size: 256,
      id: 'planted-topk',
      onProgress: (s) => progress.push(s),
    });
    expect(progress.at(-1)).toBe(300);
    expect(sae).toMatchObject({ id: 'planted-topk', d_in: D_IN, d_sae: 32, architecture: 'topk', hook: 'synthetic', analysed: true });
    expect(sae.metrics.rows).toBe(300);
    expect(sae.metrics.l0).toBeGreaterThan(2.5);
    expect(sae.metrics.l0).toBeLessThanOrEqual(3);
    expect(sae.metrics.explained_variance).toBeGreaterThan(0.6);
    // Every latent is in exactly one density bin.
    expect(sae.metrics.density.reduce((a, b) => a + b.count, 0)).toBe(32);
    expect((await core.get('planted-topk')).metrics).toEqual(sae.metrics);
    expect((await core.list()).map((s) => s.id)).toEqual(['planted-topk']);
    await refused(core.train({ activations: 'acts/planted', config: '{}', id: 'planted-topk' }), status.ALREADY_EXISTS, /^id: /);
  });

  it('encodes rows into their largest codes, as the stored weights give them', async () => {
    const w = await loadSaeLens(join(root, 'saes', 'planted-topk'));
    const { acts } = plantedStore(3);
    const rows = { data: acts.data.slice(0, 4 * D_IN), shape: [4, D_IN] };
    const { codes, relative_error } = await core.encode('planted-topk', rows, 3);
    const [Wenc, benc, bdec] = ['W_enc', 'b_enc', 'b_dec'].map((n) => w.params.get(n) as Float32Array);
    for (let r = 0; r < 4; r++) {
      // TopK on the pre-activations of x - b_dec (apply_b_dec_to_input), then ReLU.
      const pre = Array.from({ length: 32 }, (_, j) => {
        let s = benc[j];
        for (let i = 0; i < D_IN; i++) s += (rows.data[r * D_IN + i] - bdec[i]) * Wenc[i * 32 + j];
        return s;
      });
      const keep = [...pre.keys()].sort((a, b) => pre[b] - pre[a]).slice(0, 3);
      const want = topCodes(
        pre.map((v, j) => (keep.includes(j) ? Math.max(v, 0) : 0)),
        3,
      );
      expect(codes[r].indices).toEqual(want.indices);
      for (let i = 0; i < want.values.length; i++) expect(codes[r].values[i]).toBeCloseTo(want.values[i], 4);
      expect(relative_error[r]).toBeLessThan(0.5);
    }
  });

  it('explains a row by its top features with their labels and top examples', async () => {
    const { acts } = plantedStore(3);
    const rows = await core.explain('planted-topk', { data: acts.data.slice(0, D_IN), shape: [1, D_IN] }, 2);
    expect(rows).toHaveLength(1);
    expect(rows[0].length).toBeGreaterThan(0);
    for (const f of rows[0]) {
      expect(f.label).toMatch(/^parity=[01]$/);
      expect(f.top_examples.length).toBeGreaterThan(0);
      expect(f.top_examples[0].context).toHaveProperty('labels');
      expect(f.density).toBeGreaterThan(0);
    }
  });

  it('refuses bad requests with the field named and stays usable', async () => {
    const ok = { data: new Float32Array(D_IN), shape: [1, D_IN] };
    await refused(
      core.encode('planted-topk', { data: new Float32Array(8), shape: [1, 8] }, 3),
      status.INVALID_ARGUMENT,
      /^activations: d_in must be 16/,
    );
    await refused(
      core.encode('planted-topk', { data: new Float32Array(0), shape: [0, D_IN] }, 3),
      status.INVALID_ARGUMENT,
      /^activations: is empty/,
    );
    const nan = new Float32Array(2 * D_IN);
    nan[D_IN + 5] = Number.NaN;
    await refused(
      core.encode('planted-topk', { data: nan, shape: [2, D_IN] }, 3),
      status.INVALID_ARGUMENT,
      /^activations: row 1 holds NaN at column 5/,
    );
    await refused(core.encode('planted-topk', ok, 33), status.INVALID_ARGUMENT, /^top_k: must be at most d_sae \(32\)/);
    await refused(core.encode('no-such-sae', ok, 3), status.NOT_FOUND, /^sae_id: no SAE "no-such-sae"/);
    await refused(core.explain('../etc', ok, 3), status.INVALID_ARGUMENT, /^id|^sae_id: must match/);
    await refused(core.get('nope'), status.NOT_FOUND, /^id: no SAE/);
    await refused(
      core.train({ activations: 'acts/missing', config: '{}' }),
      status.NOT_FOUND,
      /^activations: "acts\/missing" does not exist/,
    );
    await refused(core.train({ activations: '/etc', config: '{}' }), status.INVALID_ARGUMENT, /^activations: must be relative/);
    symlinkSync(tmpdir(), join(root, 'escape'));
    await refused(core.train({ activations: 'escape', config: '{}' }), status.INVALID_ARGUMENT, /^activations: "escape" leads outside/);
    mkdirSync(join(root, 'acts', 'empty-dir'), { recursive: true });
    await refused(
      core.train({ activations: 'acts/empty-dir', config: '{}' }),
      status.INVALID_ARGUMENT,
      /^activations: .*holds no activations\.safetensors/,
    );
    await refused(
      core.train({ activations: 'acts/planted', config: '{"d_sae": 8, "d_in": 4}' }),
      status.INVALID_ARGUMENT,
      /^config_json\.d_in: must match the activations' width 16/,
    );
    await refused(core.train({ activations: 'acts/planted', config: '{"d_sae": 0}' }), status.INVALID_ARGUMENT, /^config_json\.d_sae: /);
    await refused(
      core.train({ activations: 'acts/planted', config: '{"architecture": "topk", "d_sae": 8, "k": 9}' }),
      status.INVALID_ARGUMENT,
      /^config_json\.k: must be <= d_sae/,
    );
    await refused(core.train({ activations: 'acts/planted', config: 'not json' }), status.INVALID_ARGUMENT, /^config_json: is not JSON/);
    const bad = new Float32Array(4 * D_IN);
    bad[7] = Number.POSITIVE_INFINITY;
    await writeActivationStore(join(root, 'acts', 'inf'), { data: bad, rows: 4, d: D_IN }, {}, null);
    await refused(
      core.train({ activations: 'acts/inf', config: '{"d_sae": 8}' }),
      status.INVALID_ARGUMENT,
      /^activations: .*row 0 holds Infinity at column 7/,
    );
    expect((await core.encode('planted-topk', ok, 3)).codes).toHaveLength(1);
    // Two trainings under one id at once: the second is refused before it starts.
    const cfg = { activations: 'acts/planted', config: '{"d_sae": 8}', steps: 5, batch_size: 16, id: 'twice' };
    const [a, b] = await Promise.allSettled([core.train(cfg), core.train(cfg)]);
    expect(a.status).toBe('fulfilled');
    expect(b.status === 'rejected' && (b.reason as MeshError).code).toBe(status.ALREADY_EXISTS);
    await rmDir(join(root, 'saes', 'twice'));
    // Nothing was left behind by the refused trainings.
    expect((await core.list()).map((s) => s.id)).toEqual(['planted-topk']);
  });
});
