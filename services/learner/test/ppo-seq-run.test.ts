/**
 * The embedded ppo_seq run end to end on a tiny GPT-2 (started without a value head, as an SFT
 * checkpoint is) and a tiny text task (tiny-letters.ts: reward 1 when the completion starts with a
 * lower-case letter): the mean reward rises over a few updates (seeded) with every loss term logged,
 * the value head is created fresh and saved as value_head.safetensors beside an LM-only
 * model.safetensors and read back, a resumed run logs what the uninterrupted run logs, and bad
 * configs name their key.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng as GraphRng, initParameters, loadSafetensors } from '@rlmesh/graph';
import { afterAll, describe, expect, it } from 'vitest';
import { Gpt2ValueHead } from '../src/models/gpt2';
import { loadGpt2Directory, VALUE_HEAD_WEIGHTS } from '../src/models/hf-gpt2';
import type { UpdateRecord } from '../src/registry';
import { parseSequenceRunConfig } from '../src/run/sequence-config';
import { trainSequences } from '../src/run/sequence-run';
import { registerLettersEnv, tinyGpt2Dir } from './tiny-letters';

registerLettersEnv('PpoLetters');

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-ppo-seq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const init = tinyGpt2Dir(dir);

async function config(name: string, over: Record<string, unknown> = {}, train: Record<string, unknown> = {}) {
  return parseSequenceRunConfig({
    run: { name, seed: 3, out_dir: join(dir, 'runs') },
    env: { id: 'PpoLetters' },
    init_from: await init,
    algo: {
      name: 'ppo_seq',
      batch_size: 32,
      num_mini_batches: 2,
      micro_batch_size: 8,
      num_ppo_epochs: 2,
      response_length: 2,
      learning_rate: 1e-2,
      kl_coef: 0.02,
      kl_estimator: 'k3',
      vf_coef: 0.1,
      gamma: 1,
      lam: 0.95,
      reward_weights: { correct: 1 },
      ...over,
    },
    train: { total_updates: 16, threads: 1, ...train },
  });
}

const lines = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as UpdateRecord);

describe('ppo_seq: embedded run', () => {
  it('raises the mean reward over a few updates, logging every loss term, and saves the value head beside the LM', async () => {
    const s = await trainSequences(await config('rise'));
    const rows = lines(s.run_dir);
    expect(rows).toHaveLength(16);
    const mean = (xs: UpdateRecord[]) => xs.reduce((a, r) => a + r.metrics.reward_mean, 0) / xs.length;
    const first = mean(rows.slice(0, 3));
    const last = mean(rows.slice(-3));
    expect(first).toBeLessThan(0.35);
    expect(last).toBeGreaterThan(0.5);
    expect(last).toBeGreaterThan(first + 0.3);
    for (const k of [
      'loss',
      'policy_loss',
      'value_loss',
      'clipfrac',
      'vf_clipfrac',
      'approx_kl',
      'ratio_mean',
      'entropy',
      'kl',
      'non_score_reward',
      'rlhf_reward',
      'score_mean',
      'value_mean',
      'eos_frac',
      'grad_norm',
    ])
      expect(Number.isFinite(rows[5].metrics[k]), k).toBe(true);
    expect(rows.at(-1)?.metrics.kl).toBeGreaterThan(0);
    expect(rows.at(-1)?.metrics.non_score_reward).toBeLessThan(0);
    // Two minibatches x two epochs: the later steps move away from the behaviour policy.
    expect(rows[5].metrics.approx_kl).toBeGreaterThan(0);
    // The value head learns the reward: its mean moves from ~0 toward the rising reward.
    expect(Math.abs((rows.at(-1)?.metrics.value_mean ?? 0) - last)).toBeLessThan(Math.abs(rows[0].metrics.value_mean - last));
    // The checkpoint: model.safetensors holds the LM alone (transformers' GPT2LMHeadModel loads it), the head sits beside it.
    const ck = s.final_checkpoint;
    for (const f of ['config.json', 'model.safetensors', VALUE_HEAD_WEIGHTS, 'tokenizer.json', 'optimizer.safetensors', 'rl_state.json'])
      expect(existsSync(join(ck, f)), f).toBe(true);
    const lm = await loadSafetensors(join(ck, 'model.safetensors'));
    expect(Object.keys(lm.tensors).some((k) => k.startsWith('v_head.'))).toBe(false);
    const head = await loadSafetensors(join(ck, VALUE_HEAD_WEIGHTS));
    expect(Object.keys(head.tensors).sort()).toEqual(['v_head.summary.bias', 'v_head.summary.weight']);
    const back = await loadGpt2Directory(ck);
    expect(back.config.value_head).toBe(true);
    expect([...(back.params.get('v_head.summary.weight') ?? [])]).toEqual([
      ...(head.tensors['v_head.summary.weight'].data as Float32Array),
    ]);
    // A head trained away from its fresh start.
    // The head the run drew (from run.seed, the init directory having none), and how far training moved it.
    const fresh = initParameters(new Gpt2ValueHead(32), new GraphRng(3)).get('summary.weight') as Float32Array;
    const trained = back.params.get('v_head.summary.weight') as Float32Array;
    expect(trained.length).toBe(fresh.length);
    expect(trained.some((v, i) => Math.abs(v - fresh[i]) > 1e-3)).toBe(true);
    // The checkpoint with its head starts a new ppo_seq run as it is (no fresh head drawn).
    const again = await trainSequences({ ...(await config('from-ppo', {}, { total_updates: 1 })), init_from: ck });
    expect(existsSync(join(again.final_checkpoint, VALUE_HEAD_WEIGHTS))).toBe(true);
  }, 120_000);

  it('a run resumed from its checkpoint logs what the uninterrupted run logs, update for update', async () => {
    const whole = await trainSequences(await config('whole', {}, { total_updates: 4 }));
    const cut = await config('cut', {}, { total_updates: 4 });
    await trainSequences(cut, { maxUpdates: 2 });
    const resumed = await trainSequences(cut, { resumeFrom: join(dir, 'runs', 'cut', 'checkpoints', 'update_2') });
    expect(resumed.updates).toBe(4);
    const timeless = (rows: UpdateRecord[]) =>
      rows.map((r) => ({ ...r, metrics: Object.fromEntries(Object.entries(r.metrics).filter(([k]) => !k.endsWith('_s'))) }));
    const a = timeless(lines(whole.run_dir));
    const b = timeless(lines(resumed.run_dir));
    expect(b).toHaveLength(4);
    expect(b).toEqual(a);
  }, 120_000);

  it('bad configs name their key', async () => {
    await expect(config('bad', { num_mini_batches: 3 })).rejects.toThrow(/algo\.num_mini_batches: must divide batch_size \(32\)/);
    await expect(config('bad', { micro_batch_size: 5 })).rejects.toThrow(/algo\.micro_batch_size: must divide a minibatch/);
    await expect(config('bad', { kl_estimator: 'k2' })).rejects.toThrow(/algo\.kl_estimator/);
    await expect(config('bad', { cliprange: 0 })).rejects.toThrow(/algo\.cliprange/);
    await expect(config('bad', { num_generations: 4 })).rejects.toThrow(/algo\.num_generations/);
    await expect(config('bad', { reward_weights: { correct: 1, speed: 1 } })).resolves.toBeDefined();
    await expect(trainSequences(await config('bad-weights', { reward_weights: { correct: 1, speed: 1 } }))).rejects.toThrow(
      /algo\.reward_weights\.speed: PpoLetters has no reward component speed/,
    );
    await expect(trainSequences(await config('long', { response_length: 30 }))).rejects.toThrow(/exceeds the model context n_positions 32/);
  });
});
