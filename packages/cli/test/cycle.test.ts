/**
 * `rlmesh cycle` end to end at toy sizes (two cycles after the SFT baseline): every stage's output
 * exists, each RL stage after the first reads the previous analysis's feature sets as rewards (their
 * components appear in GRPO's metrics), results.json agrees with the stages' own files, a re-run
 * skips every stage and --force re-runs one kind. Also `rlmesh data storyworld` and config errors.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildStoryDatasets } from '@rlmesh/envs';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-cycle-'));
const out = join(dir, 'cycle');

afterEach(() => {
  vi.restoreAllMocks();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, value: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const readLines = (file: string) =>
  readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));

const sftConfig = write('sft.json', {
  data: { train: 'train.jsonl', eval: 'val.jsonl', max_eval_examples: 2, overflow: 'truncate' },
  tokenizer: { kind: 'bpe', vocab_size: 300, min_frequency: 2 },
  model: { n_positions: 64, n_embd: 16, n_layer: 1, n_head: 2 },
  train: { max_steps: 3, micro_batch_size: 8, lr: 3e-3, warmup_steps: 1, log_every: 1, threads: 1, max_new_tokens: 2 },
});
const rlConfig = write('grpo.json', {
  run: { seed: 1 },
  env: { id: 'Storyworld' },
  algo: {
    name: 'grpo',
    num_generations: 2,
    prompts_per_update: 2,
    micro_batch_size: 4,
    max_completion_length: 6,
    learning_rate: 1e-3,
    reward_weights: { total: 1 },
  },
  train: { total_updates: 2, threads: 1, success_window: 2 },
});
const experiment = {
  out_dir: out,
  cycles: 2,
  data: { seed: 4, n_train: 40, n_val: 4, n_test: 4 },
  sft: { config: sftConfig, overrides: {} },
  rl: { config: rlConfig, overrides: {} },
  capture: { hook: 'blocks.0.hook_resid_post', prompts: 6, generations: 2, max_new_tokens: 6, seed: 2 },
  sae: { config: { architecture: 'topk', d_sae: 12, k: 3 }, steps: 20, batch_size: 16 },
  // min_abs_r 0 so that even a tiny run's weak correlations pick latents and the RL stages use them.
  features: { target: 'valid_json', top: 2, min_abs_r: 0, weight: 0.2 },
};
const config = write('cycle.json', experiment);
const ran = (log: string[]) => log.filter((l) => /^rlmesh cycle: \w+: (running|inputs changed)/.test(l)).map((l) => l.split(':')[1].trim());

describe('rlmesh cycle', () => {
  it('runs data -> SFT -> (RL -> capture -> SAE -> analysis) x 2, writes results and report, skips finished stages', async () => {
    const log = captureConsole();
    expect(await main(['cycle', config])).toBe(0);
    expect(log.err).toEqual([]);
    const stages = ['data', 'sft', 'capture_0', 'sae_0', 'analysis_0'];
    for (const c of [1, 2]) stages.push(`rl_${c}`, `capture_${c}`, `sae_${c}`, `analysis_${c}`);
    expect(ran(log.out)).toEqual(stages);

    const results = readJson(join(out, 'results.json'));
    expect(results.cycles.map((r: { cycle: number }) => r.cycle)).toEqual([0, 1, 2]);
    for (const [c, row] of results.cycles.entries()) {
      const cap = readJson(join(out, `cycle_${c}`, 'capture', 'capture.json'));
      expect(row.verifier).toEqual(cap.means);
      expect(Object.keys(row.verifier)).toContain('valid_json');
      expect(row.completions).toBe(12);
      const lines = readLines(join(out, `cycle_${c}`, 'capture', 'completions.jsonl'));
      expect(lines).toHaveLength(12);
      const mean = lines.reduce((a: number, l: { rewards: { total: number } }) => a + l.rewards.total, 0) / 12;
      expect(row.verifier.total).toBeCloseTo(mean, 5);
      expect(row.sae.l0).toBeGreaterThan(0);
      expect(row.sae.l0).toBeLessThanOrEqual(3);
      if (c > 0) {
        // The RL stage rewarded the previous cycle's latents: their components are in GRPO's metrics.
        const analysis = readJson(join(out, `cycle_${c - 1}`, 'analysis.json'));
        expect(analysis.sets.length).toBeGreaterThan(0);
        const metrics = readLines(join(out, `cycle_${c}`, 'rl', 'metrics.jsonl'));
        expect(metrics).toHaveLength(2);
        for (const s of analysis.sets) {
          expect(s.sae).toBe(join(out, 'saes', `cycle_${c - 1}`));
          for (const m of metrics) expect(m.metrics[`reward_${s.name}`]).toBeGreaterThanOrEqual(0);
        }
        expect(row.rl.updates).toBe(2);
      } else expect(row.rl).toBeNull();
    }
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('storyworld SAE');
    expect(html).toContain(results.sentence.slice(0, 40));

    const again = captureConsole();
    expect(await main(['cycle', config])).toBe(0);
    expect(ran(again.out)).toEqual([]);

    vi.restoreAllMocks();
    const forced = captureConsole();
    expect(await main(['cycle', config, '--force', 'analysis_1'])).toBe(0);
    // analysis_1 re-ran; its record's hash is unchanged in content but newly recorded, so rl_2 follows.
    expect(ran(forced.out)[0]).toBe('analysis_1');
  });

  it('writes storyworld datasets with rlmesh data storyworld', async () => {
    const log = captureConsole();
    expect(
      await main(['data', 'storyworld', '--out', join(dir, 'sw'), '--seed', '9', '--n-train', '5', '--n-val', '2', '--n-test', '2']),
    ).toBe(0);
    const want = buildStoryDatasets({ seed: 9, nTrain: 5, nVal: 2, nTest: 2 });
    const lines = readLines(join(dir, 'sw', 'train.jsonl'));
    expect(lines.map((l: { prompt: string; completion: string }) => [l.prompt, l.completion])).toEqual(
      want[0].examples.map((e) => [e.prompt, e.completion]),
    );
    expect(readJson(join(dir, 'sw', 'manifest.json'))).toMatchObject({ dataset: 'storyworld', seed: 9 });
    expect(log.err).toEqual([]);
    expect(await main(['data', 'storyworld', '--out', dir])).toBe(2);
    expect(log.err.at(-1)).toMatch(/^rlmesh: data storyworld: --seed: is required$/);
  });

  it('refuses config mistakes in one line naming the key', async () => {
    const cases: [unknown, RegExp][] = [
      [{ ...experiment, cycles: 0 }, /cycles: must be an integer >= 1/],
      [{ ...experiment, rl: { config: rlConfig, overrides: { init_from: 'x' } } }, /rl\.overrides\.init_from: is set by the cycle/],
      [{ ...experiment, sae: { ...experiment.sae, config: { architecture: 'nope' } } }, /sae \(config\): architecture/],
      [{ ...experiment, features: { ...experiment.features, reduce: 'sum' } }, /features\.reduce/],
    ];
    for (const [value, pattern] of cases) {
      const log = captureConsole();
      expect(await main(['cycle', write('bad.json', value)])).toBe(2);
      expect(log.err).toHaveLength(1);
      expect(log.err[0]).toMatch(pattern);
      vi.restoreAllMocks();
    }
  });

  it('refuses feature_rewards that rlmesh train cannot weight, naming the key', async () => {
    const rl = readJson(rlConfig);
    const set = { name: 'f', hook: 'blocks.0.hook_resid_post', sae: join(dir, 'none'), features: [0] };
    const cases: [unknown, RegExp][] = [
      [
        { ...rl, init_from: dir, feature_rewards: [set], algo: { ...rl.algo, reward_weights: undefined } },
        /algo\.reward_weights: must name/,
      ],
      [
        { ...rl, init_from: dir, feature_rewards: [set], algo: { ...rl.algo, reward_weights: { total: 1, f: 1 } } },
        /reward_weights\.f: is a feature set/,
      ],
      [{ ...rl, init_from: dir, feature_rewards: [{ ...set, weight: -1 }] }, /feature_rewards\[0\]\.weight/],
      [{ ...rl, init_from: join(dir, 'missing'), feature_rewards: [set] }, /init_from: .*missing/],
    ];
    for (const [value, pattern] of cases) {
      const log = captureConsole();
      expect(await main(['train', write('bad-train.json', value)])).toBe(2);
      expect(log.err).toHaveLength(1);
      expect(log.err[0]).toMatch(pattern);
      vi.restoreAllMocks();
    }
  });
});
