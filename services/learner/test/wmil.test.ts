import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseWmilConfig, runWmil, type UpdateMetrics } from '../src';

const tmp = () => mkdtempSync(join(tmpdir(), 'rlmesh-wmil-'));
const base = (outDir: string, extra: Record<string, unknown> = {}) =>
  parseWmilConfig({ run: { name: 'test', seed: 3, out_dir: outDir }, algo: { lr: 2e-3 }, ...extra });

describe('WMIL embedded run', () => {
  it('learns PatternEcho to >= 90% success (mean of 10 batches) within 4,096 episodes', async () => {
    const summary = await runWmil(base(tmp(), { train: { total_episodes: 4096 } }));
    expect(summary.final_success).toBeGreaterThanOrEqual(0.9);
    expect(summary.mvp.pass).toBe(true);
    expect(summary.parameters).toBe(116_625);
    const lines = readFileSync(join(summary.run_dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(64);
    const first = JSON.parse(lines[0]);
    for (const k of ['loss/policy', 'loss/world_model', 'entropy', 'baseline', 'reward/goal', 'reward/pred', 'grad_norm'])
      expect(first.metrics).toHaveProperty(k);
  });

  it('resuming from a checkpoint gives the same next updates as the uninterrupted run', async () => {
    const dirA = tmp();
    const a: UpdateMetrics[] = [];
    await runWmil(base(dirA, { train: { total_episodes: 6 * 64, checkpoint_every: 3 } }), { onUpdate: (m) => a.push(m) });
    const b: UpdateMetrics[] = [];
    await runWmil(base(tmp(), { train: { total_episodes: 6 * 64, checkpoint_every: 3 } }), {
      resumeFrom: join(dirA, 'test', 'checkpoints', 'update-000003.safetensors'),
      onUpdate: (m) => b.push(m),
    });
    expect(b.map((m) => m.update)).toEqual([4, 5, 6]);
    expect(b.map((m) => m.metrics)).toEqual(a.slice(3).map((m) => m.metrics));
  });

  it('advances the curriculum when success holds at the threshold', async () => {
    const summary = await runWmil(
      parseWmilConfig({
        run: { name: 'cond', seed: 1, out_dir: tmp() },
        env: { id: 'Conditional', advance_at: 0.8, advance_window: 5 },
        algo: { lr: 2e-3 },
        train: { total_episodes: 64 * 120 },
      }),
    );
    expect(summary.level).toBeGreaterThanOrEqual(1);
  });
});

describe('WMIL config', () => {
  it('names the key and the rule', () => {
    expect(() => parseWmilConfig({ algo: { lr: -1 } })).toThrow('algo.lr: must be a number > 0, got -1');
    expect(() => parseWmilConfig({ env: { id: 'Pong' } })).toThrow(
      'env.id: must be one of PatternEcho, SequenceNext, Conditional, got "Pong"',
    );
    expect(() => parseWmilConfig({ model: { hidden_dim: 64, num_heads: 5 } })).toThrow(
      'model.num_heads: must divide model.hidden_dim (64), got 5',
    );
    expect(() => parseWmilConfig({ train: { total_episode: 5 } })).toThrow(/^train\.total_episode: unknown key/);
  });
});
