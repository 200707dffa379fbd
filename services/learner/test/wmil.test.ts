import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildModel, type EmbeddedHooks, envShape, parseRunConfig, type RunConfig, trainEmbedded, type UpdateRecord } from '../src';

const tmp = () => mkdtempSync(join(tmpdir(), 'rlmesh-wmil-'));
const shipped = (name: string) => parseYaml(readFileSync(join(__dirname, '..', '..', '..', 'configs', `${name}.yaml`), 'utf8'));
/** A shipped config with sections merged over (one level deep). */
const config = (name: string, over: Record<string, Record<string, unknown>>) => {
  const raw = shipped(name);
  for (const [k, v] of Object.entries(over)) raw[k] = { ...raw[k], ...v };
  return parseRunConfig(raw);
};
/** trainEmbedded, keeping the records it logs. */
async function train(cfg: RunConfig, hooks: EmbeddedHooks = {}) {
  const rows: UpdateRecord[] = [];
  const onUpdate: EmbeddedHooks['onUpdate'] = (r, run) => {
    rows.push(r);
    hooks.onUpdate?.(r, run);
  };
  const summary = await trainEmbedded(cfg, { ...hooks, onUpdate });
  return { summary, rows };
}
const base = (outDir: string, train: Record<string, unknown> = {}) =>
  config('wmil-pattern-echo', { run: { name: 'test', seed: 3, out_dir: outDir }, algo: { lr: 2e-3 }, train });

describe('WMIL embedded run', () => {
  it('learns PatternEcho to >= 90% success (mean of 10 batches) within 4,096 episodes', async () => {
    const { summary, rows } = await train(base(tmp(), { total_env_steps: 4096 }));
    expect(rows).toHaveLength(64);
    expect(summary.final_success).toBeGreaterThanOrEqual(0.9);
    expect(summary.criteria.length).toBeGreaterThan(0);
    expect(summary.pass).toBe(true);
    expect(summary.parameters).toBe(116_625);
    const lines = readFileSync(join(summary.run_dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(64);
    const first = JSON.parse(lines[0]);
    for (const k of ['loss/policy', 'loss/world_model', 'entropy', 'baseline', 'reward/goal', 'reward/pred', 'grad_norm'])
      expect(first.metrics).toHaveProperty(k);
  });

  it('resuming from a checkpoint gives the same next updates as the uninterrupted run', async () => {
    const cut = { total_env_steps: 6 * 64, checkpoint_every: 3 };
    // uninterrupted
    const dirA = tmp();
    const { rows: a } = await train(base(dirA, cut));
    expect(a.map((m) => m.update)).toEqual([1, 2, 3, 4, 5, 6]);
    // cut in two: 3 updates, then resume from the checkpoint they wrote
    const dirB = tmp();
    const first = await train(base(dirB, cut), { maxUpdates: 3 });
    expect(first.summary.updates).toBe(3);
    const ckpt = join(dirB, 'test', 'checkpoints', 'update-000003.safetensors');
    const { rows: b } = await train(base(dirB, cut), { resumeFrom: ckpt });
    expect(b.map((m) => m.update)).toEqual([4, 5, 6]);
    expect(b.map((m) => m.metrics)).toEqual(a.slice(3).map((m) => m.metrics));
    // metrics.jsonl of the resumed run holds every update once, as the uninterrupted one
    const read = (d: string) =>
      readFileSync(join(d, 'test', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n');
    expect(read(dirB)).toEqual(read(dirA));
  });

  it('advances the curriculum when success holds at the threshold', async () => {
    const { summary } = await train(
      config('wmil-conditional', {
        run: { name: 'cond', seed: 1, out_dir: tmp() },
        curriculum: { advance_at: 0.8, advance_window: 5 },
        train: { total_env_steps: 64 * 120 },
      }),
    );
    expect(summary.level).toBeGreaterThanOrEqual(1);
  });
});

describe('run config', () => {
  it('names the key and the rule', () => {
    expect(() => parseRunConfig({ algo: { name: 'reinforce', lr: -1 } })).toThrow(/^algo\.lr: must be a number > 0, got -1/);
    expect(() => parseRunConfig({ env: { id: 'Pong' } })).toThrow(/^env\.id: .*"Pong"/);
    // cross-field model checks run when the model is built for the env
    const heads = parseRunConfig({
      env: { id: 'PatternEcho' },
      model: { id: 'baby', hidden_dim: 64, num_heads: 5 },
      algo: { name: 'reinforce' },
    });
    expect(() => buildModel(heads, envShape(heads))).toThrow('model.num_heads: must divide model.hidden_dim (64), got 5');
    expect(() => parseRunConfig({ train: { total_episode: 5 } })).toThrow(/^train\.total_episode: unknown key/);
  });
});

describe('trainEmbedded without hooks', () => {
  // Last in the file: a hang here must not hold up the others. Every other test passes onUpdate; this one guards the plain call (`rlmesh train` always passes one).
  it('trains and returns', { timeout: 15_000 }, async () => {
    const summary = await trainEmbedded(base(tmp(), { total_env_steps: 2 * 64 }));
    expect(summary.updates).toBe(2);
  });
});
