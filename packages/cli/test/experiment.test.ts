/**
 * `rlmesh experiment` end to end at toy sizes: data, SFT of a tiny GPT-2, a few GRPO updates, both
 * checkpoints evaluated on a small suite; results.json agrees with the evaluations' own files,
 * report.html carries the verdict and the curves, a re-run skips every stage, a changed RL setting
 * re-runs RL and eval only, --force re-runs one stage. Config mistakes are one line and exit 2.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-experiment-'));
const out = join(dir, 'exp');
const SEED = 3;

afterEach(() => {
  vi.restoreAllMocks();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// YAML is a superset of JSON: every file the test writes is JSON.
function write(name: string, value: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

const sftConfig = write('sft.json', {
  run: { name: 'ignored', seed: 0, out_dir: 'ignored' },
  data: { dir: 'ignored', train: 'train.jsonl', eval: 'val.jsonl,test_id.jsonl', max_eval_examples: 8 },
  tokenizer: { kind: 'bpe', vocab_size: 300, min_frequency: 2 },
  model: { n_positions: 160, n_embd: 16, n_layer: 1, n_head: 2 },
  train: {
    max_steps: 4,
    micro_batch_size: 8,
    lr: 3e-3,
    min_lr: 1e-4,
    warmup_steps: 1,
    log_every: 1,
    checkpoint_every: 2,
    threads: 1,
    max_new_tokens: 4,
  },
});
const rlConfig = write('grpo.json', {
  run: { name: 'ignored', seed: 1 },
  env: { id: 'CardRules', options: { split: 'id' } },
  algo: { name: 'grpo', num_generations: 2, prompts_per_update: 2, micro_batch_size: 4, max_completion_length: 3, learning_rate: 1e-3 },
  train: { total_updates: 2, threads: 1, success_window: 2 },
});
const entry = (name: string, split: string) => ({
  name,
  env: { id: 'CardRules', options: { split: name, test_seed: SEED, test_n: 12 } },
  episodes: 12,
  split,
  max_new_tokens: 4,
});
const suite = write('suite.json', {
  name: 'tiny-cards',
  mode: 'greedy',
  entries: [entry('id', 'ID'), entry('ood_composition', 'OOD'), entry('ood_paraphrase', 'OOD')],
});
const experiment = {
  out_dir: out,
  data: { seed: SEED, n_train: 200, n_val: 12, n_test: 12 },
  sft: { config: sftConfig, overrides: { 'train.lr': 2e-3 } },
  rl: { config: rlConfig, overrides: { algo: { beta: 0.02 } } },
  eval: { suite },
};
const config = write('experiment.json', experiment);

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const skipped = (log: string[]) => log.filter((l) => /: done already .* skipped$/.test(l)).map((l) => l.split(':')[1].trim());
const ran = (log: string[]) =>
  log.filter((l) => /^rlmesh experiment: \w+: (running|inputs changed)/.test(l)).map((l) => l.split(':')[1].trim());

describe('rlmesh experiment', () => {
  it('runs data -> SFT -> GRPO -> eval, writes results and report, and skips finished stages', async () => {
    let c = captureConsole();
    expect(await main(['experiment', config])).toBe(0);
    expect(ran(c.out)).toEqual(['data', 'sft', 'rl', 'eval']);

    const results = readJson(join(out, 'results.json'));
    for (const who of ['sft', 'rl'] as const) {
      const ev = readJson(join(out, 'eval', `${who}.json`));
      expect(results.evaluations[who].entries).toEqual(
        ev.environments.map((e: Record<string, unknown>) => ({
          name: e.name,
          split: e.split,
          n: e.episodes,
          successes: e.successes,
          accuracy: e.success_rate,
          interval: e.interval,
        })),
      );
      expect(results.evaluations[who].entries.map((e: { n: number }) => e.n)).toEqual([12, 12, 12]);
      expect(results.evaluations[who].accuracy_by_split).toEqual({
        ID: ev.aggregate.by_split.ID.success_rate,
        OOD: ev.aggregate.by_split.OOD.success_rate,
      });
      expect(results.evaluations[who].entries[0].interval).toMatchObject({ level: 0.8, method: 'jeffreys' });
    }
    expect(results.checkpoints.sft).toBe(join(out, 'sft', 'checkpoints', 'step_4'));
    expect(results.checkpoints.rl).toBe(join(out, 'rl', 'checkpoints', 'update_2'));
    expect(results.training.sft.updates).toBe(4);
    expect(results.training.rl.updates).toBe(2);
    // The RL stage started from the SFT checkpoint, held out the experiment's test sets and took the overrides.
    const rlRun = readJson(join(out, 'rl', 'config.json'));
    expect(rlRun.init_from).toBe(results.checkpoints.sft);
    expect(rlRun.env.options).toMatchObject({ holdout_seed: SEED, holdout_n_val: 12, holdout_n_test: 12 });
    expect(rlRun.algo.beta).toBe(0.02);
    expect(readJson(join(out, 'sft', 'config.json')).train.lr).toBe(2e-3);

    const v = results.verdict;
    expect(v.id.map((x: { name: string }) => x.name)).toEqual(['id']);
    expect(v.ood.map((x: { name: string }) => x.name)).toEqual(['ood_composition', 'ood_paraphrase']);
    for (const o of v.ood) expect(o.rl_above).toBe(o.rl.interval.low > o.sft.interval.high);
    const idDiff = 100 * (v.id[0].rl.accuracy - v.id[0].sft.accuracy);
    expect(v.id[0].difference_points).toBeCloseTo(idDiff, 10);
    expect(v.id[0].within_tolerance).toBe(Math.abs(idDiff) <= 2);
    expect(v.reproduced).toBe(v.ood.some((o: { rl_above: boolean }) => o.rl_above) && v.id[0].within_tolerance);
    expect(v.sentence).toMatch(/^(Not reproduced|Reproduced): RL's 80% interval lies wholly above SFT's on \d of 2 OOD splits/);

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const data = JSON.parse(html.match(/<script id="rlmesh-data" type="application\/json">(.*?)<\/script>/s)?.[1] ?? 'null');
    expect(html).toContain('<p class="headline">');
    expect(data.summary.headline).toBe(v.sentence);
    expect(data.summary.rows.map((r: string[]) => r[0])).toEqual(['id', 'ood_composition', 'ood_paraphrase']);
    expect(data.evaluations.evaluations.map((e: { label: string }) => e.label)).toEqual(['SFT', 'SFT + GRPO']);
    const samples: { v: Record<string, number> }[] = data.runs[0].samples;
    expect(samples.filter((s) => 'sft.train' in s.v)).toHaveLength(4);
    expect(samples.filter((s) => 'rl.reward' in s.v)).toHaveLength(2);
    expect(html).toMatch(/Chart\.js v4/);

    // A re-run with nothing changed skips every stage and rewrites the same verdict.
    const evalTime = statSync(join(out, 'eval', 'rl.json')).mtimeMs;
    c = captureConsole();
    expect(await main(['experiment', config])).toBe(0);
    expect(skipped(c.out)).toEqual(['data', 'sft', 'rl', 'eval']);
    expect(statSync(join(out, 'eval', 'rl.json')).mtimeMs).toBe(evalTime);
    expect(readJson(join(out, 'results.json')).verdict).toEqual(v);

    // A changed RL setting re-runs RL and the evaluation it feeds, nothing before it.
    c = captureConsole();
    expect(await main(['experiment', config, '--rl.overrides.train.total_updates', '3'])).toBe(0);
    expect(skipped(c.out)).toEqual(['data', 'sft']);
    expect(ran(c.out)).toEqual(['rl', 'eval']);
    expect(readJson(join(out, 'results.json')).checkpoints.rl).toBe(join(out, 'rl', 'checkpoints', 'update_3'));

    // --force eval re-evaluates: greedy evaluation by seed gives the same numbers.
    const before = readJson(join(out, 'results.json')).evaluations;
    c = captureConsole();
    expect(await main(['experiment', config, '--rl.overrides.train.total_updates', '3', '--force', 'eval'])).toBe(0);
    expect(ran(c.out)).toEqual(['eval']);
    const after = readJson(join(out, 'results.json')).evaluations;
    expect(after.sft.entries).toEqual(before.sft.entries);
    expect(after.rl.entries).toEqual(before.rl.entries);

    // SFT stopped after its update-2 checkpoint (as a Ctrl-C leaves it): the re-run resumes it there.
    const state = readJson(join(out, 'experiment.json'));
    writeFileSync(
      join(out, 'experiment.json'),
      JSON.stringify({
        stages: { data: state.stages.data },
        running: { stage: 'sft', hash: state.stages.sft.hash, started_at: Date.parse(state.stages.data.finished_at) },
      }),
    );
    rmSync(join(out, 'sft', 'summary.json'));
    rmSync(join(out, 'sft', 'checkpoints', 'step_4'), { recursive: true });
    c = captureConsole();
    expect(await main(['experiment', config, '--rl.overrides.train.total_updates', '3'])).toBe(0);
    expect(c.out.join('\n')).toMatch(/sft: interrupted, resuming from .*step_2 /);
    expect(c.out.join('\n')).toMatch(/resuming at update 2/);
    expect(skipped(c.out)).toEqual(['data']);
    expect(ran(c.out)).toEqual(['rl', 'eval']);
    const sftLines = readFileSync(join(out, 'sft', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(sftLines.filter((l) => l.kind === 'train').map((l) => l.update)).toEqual([1, 2, 3, 4]);

    // Checkpoints older than the interrupted run's start are an earlier run's: SFT starts over.
    const again = readJson(join(out, 'experiment.json'));
    writeFileSync(
      join(out, 'experiment.json'),
      JSON.stringify({
        stages: { data: again.stages.data },
        running: { stage: 'sft', hash: again.stages.sft.hash, started_at: Date.now() + 1000 },
      }),
    );
    rmSync(join(out, 'sft', 'summary.json'));
    c = captureConsole();
    expect(await main(['experiment', config, '--rl.overrides.train.total_updates', '3'])).toBe(0);
    expect(c.out.join('\n')).toMatch(/sft: running /);
    expect(c.out.join('\n')).not.toMatch(/resuming at update/);
  }, 120_000);

  it('refuses a bad config or option in one line with exit 2', async () => {
    let n = 0;
    const bad = (patch: Record<string, unknown>) => write(`bad-${n++}.json`, { ...experiment, out_dir: join(dir, 'bad'), ...patch });
    const cases: [string[], RegExp][] = [
      [[bad({ dat: {} })], /^rlmesh: config error: dat: unknown key/],
      [[bad({ data: { seed: -1 } })], /^rlmesh: config error: data\.seed: must be an integer >= 0/],
      [
        [bad({ sft: { config: sftConfig, overrides: { 'train.lr': 'fast' } } })],
        /^rlmesh: config error: sft \(.*sft\.json\): train\.lr: must be a number/,
      ],
      [
        [bad({ sft: { config: sftConfig, overrides: { 'data.dir': '/tmp' } } })],
        /^rlmesh: config error: sft\.overrides\.data\.dir: is set by the experiment/,
      ],
      [
        [bad({ rl: { config: rlConfig, overrides: { 'algo.num_generations': 1 } } })],
        /^rlmesh: config error: rl \(.*grpo\.json\): algo\.num_generations/,
      ],
      [[bad({ rl: { config: join(dir, 'nowhere.yaml'), overrides: {} } })], /^rlmesh: config error: rl\.config: cannot read config file/],
      [[bad({ rl: { config: sftConfig, overrides: {} } })], /^rlmesh: config error: rl\.config: .* must train on a text env/],
      [
        [bad({ data: { seed: 4, n_test: 12 } })],
        /^rlmesh: config error: eval\.suite \(.*\): entry id: must set env\.options\.test_seed 4 \(data\.seed\), got 3/,
      ],
      [
        [bad({ data: { seed: SEED, n_test: 6 } })],
        /^rlmesh: config error: eval\.suite \(.*\): entry id: evaluates test examples up to 11, past data\.n_test \(6\)/,
      ],
      [[config, '--force', 'train'], /^rlmesh: --force: unknown stage "train"/],
    ];
    for (const [args, expected] of cases) {
      const c = captureConsole();
      expect(await main(['experiment', ...args]), args.join(' ')).toBe(2);
      expect(c.err, args.join(' ')).toHaveLength(1);
      expect(c.err[0]).toMatch(expected);
      vi.restoreAllMocks();
    }
  }, 30_000);
});
