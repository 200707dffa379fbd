/**
 * RL on conversations end to end, embedded, on a tiny GPT-2: a multi-turn task (two good steps, a
 * completion starting with a lower-case letter each, within four turns) is played by the
 * conversation collector that trainSequences picks for it. GRPO and ppo_seq train on every turn
 * with finite named losses; GRPO raises the success rate and the return over a few dozen seeded
 * updates; env.max_turns caps the turns and is refused for a single-turn env; each turn's return-to-go
 * is what ppo_seq scores it by.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type MultiTurnTextTask, registerTextEnv, type SequenceRollout, TextEnv, type TextProblem } from '@rlmesh/core';
import { afterAll, describe, expect, it } from 'vitest';
import { ADVANTAGE_EPS, episodeAdvantages } from '../src/algorithms/grpo';
import { turnReturnsToGo } from '../src/algorithms/ppo-seq';
import type { UpdateRecord } from '../src/registry';
import { parseSequenceRunConfig } from '../src/run/sequence-config';
import { trainSequences } from '../src/run/sequence-run';
import { registerLettersEnv, tinyGpt2Dir } from './tiny-letters';

interface Walk extends TextProblem {
  steps: number;
}

const START = 'Walk two steps:';
const OK = ' ok\nNext:';
const NO = ' no\nNext:';

/** Each turn: a completion starting with a-z is a step (progress 0.25); the second step ends it (goal 1). */
const walk: MultiTurnTextTask<Walk> = {
  name: 'TinyWalk',
  rewardComponents: ['goal', 'progress'],
  numLevels: 1,
  draw: () => ({ prompt: START, steps: 0 }),
  act(p, action) {
    const ok = /^[a-z]/.test(action);
    if (ok) p.steps++;
    const done = p.steps >= 2;
    return {
      reward: { goal: done ? 1 : 0, progress: ok ? 0.25 : 0 },
      success: done,
      parsed: action.slice(0, 1),
      observation: done ? ' done' : ok ? OK : NO,
      done,
    };
  },
};
registerTextEnv({ id: 'TinyWalk', description: 'two lower-case steps in four turns', options: {}, make: () => new TextEnv(walk, 4) });
registerLettersEnv('TinyLettersMt');

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-mt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const init = tinyGpt2Dir(dir, [START, OK, NO, ' done']);

async function config(name: string, algo: Record<string, unknown>, over: { env?: Record<string, unknown>; updates?: number } = {}) {
  return parseSequenceRunConfig({
    run: { name, seed: 5, out_dir: join(dir, 'runs') },
    env: { id: 'TinyWalk', ...over.env },
    init_from: await init,
    algo,
    train: { total_updates: over.updates ?? 3, threads: 1 },
  });
}

const GRPO = {
  name: 'grpo',
  num_generations: 8,
  prompts_per_update: 2,
  micro_batch_size: 16,
  max_completion_length: 2,
  learning_rate: 1e-2,
  loss_type: 'dapo',
  reward_weights: { goal: 1, progress: 1 },
};

const lines = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as UpdateRecord);

const finite = (r: UpdateRecord, keys: string[]) => {
  for (const k of keys) expect(Number.isFinite(r.metrics[k]), k).toBe(true);
};

describe('multi-turn RL: embedded', () => {
  it('GRPO trains on every turn of every conversation with finite named losses', async () => {
    const s = await trainSequences(await config('grpo', { ...GRPO, beta: 0.02 }));
    const rows = lines(s.run_dir);
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      finite(r, ['loss', 'policy_loss', 'kl', 'entropy', 'ratio_mean', 'reward_mean', 'reward_std', 'grad_norm']);
      // Conversations of 2-4 turns: more trained rows than episodes.
      expect(r.metrics.episode_turns_mean).toBeGreaterThanOrEqual(2);
      expect(r.metrics.episode_turns_mean).toBeLessThanOrEqual(4);
    }
    expect(s.episodes).toBe(3 * 16);
    expect(s.env_steps).toBeGreaterThan(2 * s.episodes);
  }, 120_000);

  it('ppo_seq trains on every turn with a value head and finite named losses', async () => {
    const s = await trainSequences(
      await config('ppo', {
        name: 'ppo_seq',
        batch_size: 4,
        num_mini_batches: 2,
        micro_batch_size: 2,
        num_ppo_epochs: 2,
        response_length: 2,
        learning_rate: 1e-3,
        kl_coef: 0.05,
        reward_weights: { goal: 1, progress: 1 },
      }),
    );
    const rows = lines(s.run_dir);
    expect(rows).toHaveLength(3);
    for (const r of rows)
      finite(r, ['loss', 'policy_loss', 'value_loss', 'kl', 'approx_kl', 'clipfrac', 'entropy', 'value_mean', 'grad_norm']);
    expect(s.env_steps).toBeGreaterThan(2 * s.episodes);
  }, 120_000);

  it('GRPO raises the success rate and the return of the conversations over 50 updates (seeded)', async () => {
    const s = await trainSequences(await config('learn', GRPO, { updates: 50 }));
    const rows = lines(s.run_dir);
    const mean = (xs: UpdateRecord[], f: (r: UpdateRecord) => number) => xs.reduce((a, r) => a + f(r), 0) / xs.length;
    const first = rows.slice(0, 5);
    const last = rows.slice(-5);
    expect(mean(first, (r) => r.success)).toBeLessThan(0.3);
    expect(mean(last, (r) => r.success)).toBeGreaterThan(0.9);
    // The return is 1.5 at most (two steps and the goal).
    expect(mean(last, (r) => r.return_mean)).toBeGreaterThan(mean(first, (r) => r.return_mean) + 1);
    // A learnt walk takes the two turns it needs.
    expect(mean(first, (r) => r.metrics.episode_turns_mean)).toBeGreaterThan(3);
    expect(mean(last, (r) => r.metrics.episode_turns_mean)).toBeLessThan(2.3);
  }, 300_000);

  it('env.max_turns caps the conversations and is refused for a single-turn env', async () => {
    const s = await trainSequences(await config('capped', GRPO, { env: { max_turns: 1 }, updates: 1 }));
    const [r] = lines(s.run_dir);
    expect(r.metrics.episode_turns_mean).toBe(1);
    expect(r.metrics.episode_truncated_frac).toBe(1);
    expect(s.env_steps).toBe(16);
    await expect(config('bad', GRPO, { env: { id: 'TinyLettersMt', max_turns: 3 } })).rejects.toThrow(
      /env\.max_turns: is for multi-turn text envs; TinyLettersMt scores one completion per episode/,
    );
    await expect(config('bad', GRPO, { env: { max_turns: -1 } })).rejects.toThrow(/env\.max_turns/);
  }, 120_000);

  it('a multi-turn run resumed from its checkpoint logs what the uninterrupted run logs, update for update', async () => {
    const timeless = (rows: UpdateRecord[]) =>
      rows.map((r) => ({ ...r, metrics: Object.fromEntries(Object.entries(r.metrics).filter(([k]) => !k.endsWith('_s'))) }));
    const whole = await trainSequences(await config('whole', GRPO, { updates: 4 }));
    const cut = await config('cut', GRPO, { updates: 4 });
    await trainSequences(cut, { maxUpdates: 2 });
    const resumed = await trainSequences(cut, { resumeFrom: join(dir, 'runs', 'cut', 'checkpoints', 'update_2') });
    expect(timeless(lines(resumed.run_dir))).toEqual(timeless(lines(whole.run_dir)));
  }, 120_000);

  it('GRPO: the episode return (its turns summed) is normalised among the G episodes of a problem and given to every turn', () => {
    // P 2 x G 2 episodes of 2, 1, 3 and 1 turns.
    const episodeIds = Int32Array.from([0, 0, 1, 2, 2, 2, 3]);
    const r = {
      numPrompts: 2,
      groupSize: 2,
      groupIds: Int32Array.from([0, 0, 0, 1, 1, 1, 1]),
      episodeIds,
      rewards: { goal: Float32Array.from([0, 1, 0, 0, 0, 1, 0]), progress: Float32Array.from([0.5, 0.5, 0, 0.5, 0, 0.5, 0.5]) },
    } as unknown as SequenceRollout;
    const { advantages, returns } = episodeAdvantages(r, { goal: 1, progress: 0.5 }, 'group');
    expect(Array.from(returns)).toEqual([1.5, 0, 1.5, 0.25]);
    // Two episodes per group: (r - mean) / (Bessel std + eps), std = |r1 - r2| / sqrt(2).
    const a = (x: number, y: number) => (x - (x + y) / 2) / (Math.abs(x - y) / Math.SQRT2 + ADVANTAGE_EPS);
    const want = [a(1.5, 0), a(0, 1.5), a(1.5, 0.25), a(0.25, 1.5)];
    Array.from(advantages).forEach((v, i) => {
      expect(v).toBeCloseTo(want[episodeIds[i]], 6);
    });
  });

  it('ppo_seq scores each turn by its discounted return-to-go within its episode', () => {
    const r = turnReturnsToGo([1, 0, 2, 5, 1], [0, 0, 0, 1, 1], 0.5);
    expect(Array.from(r)).toEqual([1 + 0.5 * (0 + 0.5 * 2), 0 + 0.5 * 2, 2, 5 + 0.5 * 1, 1]);
  });
});
