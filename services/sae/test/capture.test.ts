/**
 * Offline capture from a policy file: rows are the hook's values on the observations the episodes
 * (or the data file) gave, each with its context line, and bad input is refused by name.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Discrete, Rng, TokenSequence } from '@rlmesh/core';
import { buildCardsDatasets, exampleRecord } from '@rlmesh/envs';
import { initParameters, Session, saveWeights } from '@rlmesh/graph';
import { buildCaptureProgram, buildModel, envShape, gpt2Model, loadSftCheckpoint, parseRunConfig } from '@rlmesh/learner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyGpt2Dir } from '../../evaluator/test/gpt2-fixture';
import { captureActivations, gpt2DirectoryHooks, readActivationStore } from '../src';

describe('captureActivations', () => {
  let dir: string;
  let checkpoint: string;
  const cfg = parseRunConfig({
    run: { name: 'capture-test', seed: 0 },
    env: { id: 'SequenceNext', num_envs: 4, num_steps: 1, options: { num_symbols: 8, max_episode_steps: 3 } },
    model: { id: 'baby', hidden_dim: 16, num_layers: 2, num_heads: 2, ff_dim: 32 },
    algo: { name: 'reinforce' },
    train: { total_env_steps: 64 },
  });
  const model = buildModel(cfg, envShape(cfg));
  const params = initParameters(model.module, new Rng(1));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-capture-'));
    checkpoint = join(dir, 'model.safetensors');
    await saveWeights(checkpoint, model.module, params, { config: JSON.stringify(cfg), model: model.name });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The hook on obs rows, from the capture program directly. */
  async function reference(obs: Float32Array, rows: number, hook: string): Promise<Float32Array> {
    const p = buildCaptureProgram(model, [hook]);
    const s = await Session.create(p.onnx, { intraOpThreads: 1 });
    const flat = p.layout.pack(params);
    const out = await s.run({ params: { data: flat, shape: [flat.length] }, obs: { data: obs, shape: [rows, model.obsDim] } });
    await s.release();
    return out[hook].data as Float32Array;
  }

  it('plays episodes of the policy’s env and keeps one row per step with its context', async () => {
    const r = await captureActivations(
      checkpoint,
      'blocks.1.hook_resid_post',
      { env: { episodes: 5, seed: 4, level: 2 } },
      join(dir, 'env'),
    );
    // max_episode_steps 3: every episode ends on its time limit.
    expect(r).toMatchObject({ rows: 15, d: 16 });
    const store = await readActivationStore(join(dir, 'env'));
    expect(store.metadata).toMatchObject({ hook: 'blocks.1.hook_resid_post', model: 'BabyModel', source: 'env:SequenceNext' });
    expect(store.context?.map((c) => [c.episode, c.step])).toEqual([0, 1, 2, 3, 4].flatMap((e) => [0, 1, 2].map((s) => [e, s])));
    expect(store.context?.every((c) => c.level === 2 && Number.isInteger(c.action))).toBe(true);
  });

  it('captures the hook on every observation of a data file, labels kept, views flattened', async () => {
    const rng = new Rng(2);
    const obs = Float32Array.from({ length: 3 * model.obsDim }, () => (rng.uniform() < 0.2 ? 1 : 0));
    const lines = [0, 1, 2].map((r) => JSON.stringify({ obs: Array.from(obs.subarray(r * 24, (r + 1) * 24)), labels: { rule: r } }));
    writeFileSync(join(dir, 'data.jsonl'), `${lines.join('\n')}\n`);
    const r = await captureActivations(checkpoint, 'blocks.0.attn.hook_z', { data: join(dir, 'data.jsonl') }, join(dir, 'data'));
    expect(r).toMatchObject({ rows: 3, d: 16 });
    const store = await readActivationStore(join(dir, 'data'));
    // Captured one observation at a time, the reference in one batch of 3: equal up to float rounding.
    const want = await reference(obs, 3, 'blocks.0.attn.hook_z');
    expect(store.data.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(store.data[i]).toBeCloseTo(want[i], 5);
    expect(store.context?.map((c) => c.labels)).toEqual([{ rule: 0 }, { rule: 1 }, { rule: 2 }]);
  });

  it('refuses an unknown hook, a malformed data line, and an env whose observations do not fit', async () => {
    await expect(captureActivations(checkpoint, 'blocks.5.hook_z', { env: { episodes: 1 } }, join(dir, 'x'))).rejects.toThrow(
      /unknown hook "blocks\.5\.hook_z".*blocks\.0\.hook_resid_pre/,
    );
    writeFileSync(join(dir, 'bad.jsonl'), '{"obs": [1, 2]}\n');
    await expect(captureActivations(checkpoint, 'hook_embed', { data: join(dir, 'bad.jsonl') }, join(dir, 'x'))).rejects.toThrow(
      /bad\.jsonl:1: obs must be an array of 24 finite numbers/,
    );
    await expect(captureActivations(checkpoint, 'hook_embed', { env: { id: 'PatternEcho', episodes: 1 } }, join(dir, 'x'))).rejects.toThrow(
      /observations have \d+ values, the policy reads 24/,
    );
  });
});

describe('captureActivations from a GPT-2 directory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-capture-gpt2-'));
    await tinyGpt2Dir(join(dir, 'gpt2'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("tokenizes each line's prompt and keeps one row per token, labelled, as the unpadded sequence gives it", async () => {
    const examples = buildCardsDatasets({ seed: 1, nTrain: 0, nVal: 0, nTest: 3 })[0].examples.slice(0, 3);
    writeFileSync(join(dir, 'cards.jsonl'), examples.map((e) => `${JSON.stringify(exampleRecord(e))}\n`).join(''));
    const r = await captureActivations(
      join(dir, 'gpt2'),
      'blocks.0.hook_resid_post',
      { data: join(dir, 'cards.jsonl') },
      join(dir, 'acts'),
    );
    const { config, params, tokenizer } = await loadSftCheckpoint(join(dir, 'gpt2'), false);
    const lengths = examples.map((e) => tokenizer.encode(e.prompt).length);
    expect(r).toMatchObject({ rows: lengths.reduce((a, b) => a + b, 0), d: 32 });
    const store = await readActivationStore(join(dir, 'acts'));
    // Each row keeps its whole sequence: the first line's ids, right-padded to the longest line.
    const width = Math.max(...lengths);
    expect(store.observations?.d).toBe(width);
    expect(Array.from(store.observations?.data.subarray(0, lengths[0]) ?? [])).toEqual(tokenizer.encode(examples[0].prompt));
    const ctx = store.context ?? [];
    expect(ctx[0]).toMatchObject({ line: 1, position: 0, labels: exampleRecord(examples[0]).labels });
    expect(ctx[lengths[0] - 1]).toMatchObject({ line: 1, position: lengths[0] - 1, last: true });
    expect(ctx[lengths[0]]).toMatchObject({ line: 2, position: 0 });
    // The first line alone, unpadded: the same rows (attention is causal, so padding after it changes nothing).
    const ids = tokenizer.encode(examples[0].prompt);
    const model = gpt2Model.build(config, {
      observationSpace: new TokenSequence(config.vocab_size, ids.length, 0),
      actionSpace: new Discrete(config.vocab_size),
      distribution: { kind: 'categorical', n: config.vocab_size },
    } as never);
    const p = buildCaptureProgram(model, ['blocks.0.hook_resid_post']);
    const s = await Session.create(p.onnx, { intraOpThreads: 1 });
    const flat = p.layout.pack(params);
    const out = await s.run({
      params: { data: flat, shape: [flat.length] },
      obs: { data: Float32Array.from(ids), shape: [1, ids.length] },
    });
    await s.release();
    const want = out['blocks.0.hook_resid_post'].data as Float32Array;
    for (let i = 0; i < want.length; i++) expect(store.data[i]).toBeCloseTo(want[i], 4);
  });

  it("lists the directory's hooks at its full n_positions", async () => {
    const hooks = Object.fromEntries((await gpt2DirectoryHooks(join(dir, 'gpt2'))).map((h) => [h.name, h.shape]));
    expect(hooks['blocks.0.hook_resid_post']).toEqual(['batch', 256, 32]);
    expect(hooks['blocks.0.attn.hook_pattern']).toEqual(['batch', 2, 256, 256]);
    expect(hooks['ln_final.hook_normalized']).toEqual(['batch', 256, 32]);
  });

  it('refuses env episodes and lines without text', async () => {
    await expect(captureActivations(join(dir, 'gpt2'), 'hook_embed', { env: { episodes: 1 } }, join(dir, 'x'))).rejects.toThrow(
      /is a GPT-2 directory, which captures over a data file/,
    );
    writeFileSync(join(dir, 'bad.jsonl'), '{"labels": {}}\n');
    await expect(captureActivations(join(dir, 'gpt2'), 'hook_embed', { data: join(dir, 'bad.jsonl') }, join(dir, 'x'))).rejects.toThrow(
      /bad\.jsonl:1: needs a non-empty "prompt" or "text" string/,
    );
  });
});
