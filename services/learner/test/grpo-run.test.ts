/**
 * The embedded GRPO run end to end on a tiny GPT-2 and a tiny text task (tiny-letters.ts: reward 1
 * when the completion starts with a lower-case letter, about 1 in 10 for an untrained model):
 * the mean reward rises clearly over a few updates (seeded), a run resumed from its checkpoint logs
 * the same metrics as the uninterrupted run, the checkpoint is a Hugging Face GPT-2 directory, and
 * bad configs name their key.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@rlmesh/core';
import { afterAll, describe, expect, it } from 'vitest';
import type { UpdateRecord } from '../src/registry';
import { parseSequenceRunConfig } from '../src/run/sequence-config';
import { trainSequences } from '../src/run/sequence-run';
import { registerLettersEnv, tinyGpt2Dir } from './tiny-letters';

registerLettersEnv('TinyLetters');

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-grpo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const init = tinyGpt2Dir(dir);

async function config(name: string, over: Record<string, unknown> = {}, train: Record<string, unknown> = {}) {
  return parseSequenceRunConfig({
    run: { name, seed: 3, out_dir: join(dir, 'runs') },
    env: { id: 'TinyLetters' },
    init_from: await init,
    algo: {
      name: 'grpo',
      num_generations: 8,
      prompts_per_update: 4,
      micro_batch_size: 16,
      max_completion_length: 2,
      learning_rate: 1e-2,
      beta: 0.02,
      loss_type: 'dapo',
      ...over,
    },
    train: { total_updates: 24, threads: 1, ...train },
  });
}

const lines = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as UpdateRecord);

describe('grpo: embedded run', () => {
  it('raises the mean reward over a few updates, logging every loss term', async () => {
    const s = await trainSequences(await config('rise'));
    const rows = lines(s.run_dir);
    expect(rows).toHaveLength(24);
    const mean = (xs: UpdateRecord[]) => xs.reduce((a, r) => a + r.metrics.reward_mean, 0) / xs.length;
    const first = mean(rows.slice(0, 4));
    const last = mean(rows.slice(-4));
    expect(first).toBeLessThan(0.35);
    expect(last).toBeGreaterThan(0.6);
    expect(last).toBeGreaterThan(first + 0.4);
    for (const k of [
      'loss',
      'policy_loss',
      'kl',
      'clip_ratio_low',
      'clip_ratio_high',
      'ratio_mean',
      'entropy',
      'completion_length_mean',
      'reward_std',
      'frac_reward_zero_std',
      'grad_norm',
    ])
      expect(Number.isFinite(rows[5].metrics[k]), k).toBe(true);
    // One optimizer step per update at num_iterations 1: the ratio is 1 up to float noise.
    expect(rows[5].metrics.ratio_mean).toBeCloseTo(1, 3);
    expect(rows.at(-1)?.metrics.kl).toBeGreaterThan(0);
    // The checkpoint is a Hugging Face GPT-2 directory with its tokenizer and what resuming needs.
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'optimizer.safetensors', 'trainer_state.json', 'rl_state.json'])
      expect(existsSync(join(s.final_checkpoint, f)), f).toBe(true);
  }, 120_000);

  it('a run resumed from its checkpoint logs what the uninterrupted run logs, update for update', async () => {
    const over = { num_iterations: 2, loss_type: 'grpo' };
    const whole = await trainSequences(await config('whole', over, { total_updates: 6 }));
    const cut = await config('cut', over, { total_updates: 6 });
    await trainSequences(cut, { maxUpdates: 3 });
    const resumed = await trainSequences(cut, { resumeFrom: join(dir, 'runs', 'cut', 'checkpoints', 'update_3') });
    expect(resumed.updates).toBe(6);
    // Wall-clock timings aside, every field of every line.
    const timeless = (rows: UpdateRecord[]) =>
      rows.map((r) => ({ ...r, metrics: Object.fromEntries(Object.entries(r.metrics).filter(([k]) => !k.endsWith('_s'))) }));
    const a = timeless(lines(whole.run_dir));
    const b = timeless(lines(resumed.run_dir));
    expect(b).toHaveLength(6);
    expect(b).toEqual(a);
    // Without a KL term the starting directory is not needed to resume; with one it is, and the error names it.
    const gone = join(dir, 'gone');
    const noKl = await config('nokl', { ...over, beta: 0 }, { total_updates: 2 });
    await trainSequences(noKl, { maxUpdates: 1 });
    await expect(
      trainSequences({ ...noKl, init_from: gone }, { resumeFrom: join(dir, 'runs', 'nokl', 'checkpoints', 'update_1') }),
    ).resolves.toMatchObject({ updates: 2 });
    await expect(
      trainSequences({ ...cut, init_from: gone }, { resumeFrom: join(dir, 'runs', 'cut', 'checkpoints', 'update_3') }),
    ).rejects.toThrow(/init_from: .*gone/);
  }, 120_000);

  it('bad configs name their key', async () => {
    await expect(config('bad', { num_generations: 1 })).rejects.toThrow(/algo\.num_generations/);
    await expect(config('bad', { micro_batch_size: 5 })).rejects.toThrow(/algo\.micro_batch_size: must divide/);
    await expect(config('bad', { loss_type: 'ppo' })).rejects.toThrow(/algo\.loss_type/);
    await expect(config('bad', { name: 'ppo' })).rejects.toThrow(/algo\.name: unknown algorithm "ppo" for a text env/);
    await expect(trainSequences(await config('long', { max_completion_length: 30 }))).rejects.toThrow(ConfigError);
    await expect(trainSequences(await config('long', { max_completion_length: 30 }))).rejects.toThrow(
      /algo\.max_completion_length: a prompt of \d+ tokens with 30 new ones exceeds the model context n_positions 32/,
    );
    expect(() => parseSequenceRunConfig({ env: { id: 'TinyLetters' }, algo: { name: 'grpo' } })).toThrow(/init_from/);
  });
});
