/**
 * `rlmesh experiment` with `pipeline: affine` end to end at toy sizes: demonstrations of a
 * single-turn and a multi-turn env, the initial Llama, its baseline evaluation, SFT, eval, PPO on the
 * multi-turn env, eval; results.json agrees with the evaluations' own files and with the evaluator's
 * Pareto rules, report.html carries the table, a re-run skips every stage. Config mistakes are one
 * line naming the key, exit 2.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beats, dominates } from '@rlmesh/evaluator';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-affine-pipeline-'));
const out = join(dir, 'exp');

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
  run: { name: 'ignored', seed: 0 },
  data: { max_eval_examples: 4 },
  train: { max_steps: 4, micro_batch_size: 8, lr: 3e-3, log_every: 1, checkpoint_every: 2, threads: 1, max_new_tokens: 4 },
});
const rlConfig = write('ppo.json', {
  run: { name: 'ignored', seed: 1 },
  env: { id: 'TextCraft' },
  algo: { name: 'ppo_seq', batch_size: 4, micro_batch_size: 4, num_ppo_epochs: 1, learning_rate: 1e-4 },
  train: { total_updates: 5, threads: 1, success_window: 2 },
});
const experiment = {
  pipeline: 'affine',
  out_dir: out,
  seed: 2,
  envs: {
    AffineSAT: { options: { n_min: 4, n_max: 4, k_min: 3, k_max: 3 }, demonstrations: 6, max_new_tokens: 6, group: 'affine' },
    ShopSearch: { options: { max_episode_steps: 6 }, demonstrations: 4, max_new_tokens: 4, rl_updates: 2, weight: 3, group: 'agentgym' },
  },
  model: {
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 2048,
  },
  tokenizer: { vocab_size: 300 },
  sft: { config: sftConfig, overrides: { train: { lr: 2e-3 } } },
  rl: { config: rlConfig, overrides: { 'algo.kl_coef': 0.02 } },
  eval: { episodes: 4, seed: 1000 },
};
const config = write('affine.json', experiment);

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
const ran = (log: string[]) =>
  log.filter((l) => /^rlmesh experiment: \w+: (running|inputs changed)/.test(l)).map((l) => l.split(':')[1].trim());
const skipped = (log: string[]) => log.filter((l) => /: done already .* skipped$/.test(l)).map((l) => l.split(':')[1].trim());

describe('rlmesh experiment (pipeline: affine)', () => {
  it('runs data -> init -> eval -> SFT -> eval -> PPO -> eval and writes the table, results and report', async () => {
    let c = captureConsole();
    expect(await main(['experiment', config])).toBe(0);
    expect(ran(c.out)).toEqual(['data', 'init', 'eval_baseline', 'sft', 'eval_sft', 'rl_0', 'eval_rl']);

    // Demonstrations: every line an expert action the env scores; each env's last episode is val.
    const train = lines(join(out, 'data', 'train.jsonl'));
    const val = lines(join(out, 'data', 'val.jsonl'));
    expect(new Set(val.map((r) => `${r.env}:${r.seed}`))).toEqual(new Set(['AffineSAT:7', 'ShopSearch:5']));
    expect(train.every((r) => !(r.env === 'AffineSAT' ? r.seed === 7 : r.seed === 5))).toBe(true);
    expect(train.filter((r) => r.env === 'AffineSAT')).toHaveLength(5);
    expect(readJson(join(out, 'data', 'AffineSAT.manifest.json')).options).toEqual(experiment.envs.AffineSAT.options);

    // The initial model is a Llama directory; SFT starts from it and RL from SFT's final checkpoint.
    const initConfig = readJson(join(out, 'init', 'config.json'));
    expect(initConfig).toMatchObject({ model_type: 'llama', hidden_size: 16, num_key_value_heads: 1 });
    expect(readJson(join(out, 'sft', 'config.json'))).toMatchObject({ init_from: join(out, 'init'), train: { lr: 2e-3 } });
    const results = readJson(join(out, 'results.json'));
    const rlRun = readJson(join(out, 'rl_ShopSearch', 'config.json'));
    expect(rlRun.init_from).toBe(results.checkpoints.sft);
    expect(rlRun.env).toMatchObject({ id: 'ShopSearch', options: { max_episode_steps: 6 } });
    expect(rlRun.algo).toMatchObject({
      name: 'ppo_seq',
      kl_coef: 0.02,
      response_length: 4,
      reward_weights: { goal: 1, progress: 1, invalid: 1 },
    });
    expect(rlRun.train.total_updates).toBe(2);
    expect(results.checkpoints.rl.ShopSearch).toBe(join(out, 'rl_ShopSearch', 'checkpoints', 'update_2'));

    // results.json restates each evaluation file and the evaluator's own comparison rules.
    const evals = Object.fromEntries(['baseline', 'sft', 'rl'].map((w) => [w, readJson(join(out, 'eval', `${w}.json`))]));
    for (const who of ['baseline', 'sft', 'rl']) {
      const ev = evals[who];
      const s = results.stages[who];
      expect(s.envs.map((e: { env: string }) => e.env)).toEqual(['AffineSAT', 'ShopSearch']);
      for (const [i, e] of ev.environments.entries()) {
        expect(s.envs[i]).toMatchObject({ n: 4, successes: e.successes, accuracy: e.success_rate, interval: e.interval });
        expect(s.envs[i].reward).toEqual({ mean: e.returns.mean, median: e.returns.median, std: e.returns.std });
        expect(e.seeds).toEqual([1000, 1001, 1002, 1003]);
      }
      expect(s.envs[0].interval).toMatchObject({ level: 0.8, method: 'jeffreys' });
      expect(s.weighted.accuracy).toBe(ev.aggregate.all.success_rate);
      // ShopSearch weighs 3 of 4.
      const [sat, shop] = ev.environments;
      expect(s.weighted.reward_mean).toBeCloseTo(0.25 * sat.returns.mean + 0.75 * shop.returns.mean, 10);
      expect(s.by_group).toEqual({
        affine: { accuracy: sat.success_rate, reward_mean: sat.returns.mean },
        agentgym: { accuracy: shop.success_rate, reward_mean: shop.returns.mean },
      });
    }
    expect(evals.baseline.policy.label).toBe('initial (untrained) Llama');
    for (const p of results.pareto) {
      const [a, b] = [evals[p.stage], evals[p.against]];
      expect(p.dominates).toBe(dominates(a, b));
      expect(p.dominated).toBe(dominates(b, a));
      expect(p.better_on).toEqual(
        a.environments.filter((e: never, i: number) => beats(e, b.environments[i])).map((e: { name: string }) => e.name),
      );
    }
    expect(results.pareto.map((p: { stage: string; against: string }) => `${p.stage} vs ${p.against}`)).toEqual([
      'sft vs baseline',
      'rl vs baseline',
      'rl vs sft',
    ]);
    expect(results.training.sft.updates).toBe(4);
    expect(results.training.rl.ShopSearch.updates).toBe(2);

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const data = JSON.parse(html.match(/<script id="rlmesh-data" type="application\/json">(.*?)<\/script>/s)?.[1] ?? 'null');
    expect(data.summary.rows.map((r: string[]) => r[0])).toEqual([
      'AffineSAT',
      'ShopSearch',
      'weighted affine',
      'weighted agentgym',
      'weighted',
    ]);
    expect(data.evaluations.evaluations.map((e: { label: string }) => e.label)).toEqual([
      'initial (untrained) Llama',
      'after SFT',
      'after SFT + RL',
    ]);
    const samples: { v: Record<string, number> }[] = data.runs[0].samples;
    expect(samples.filter((s) => 'sft.train' in s.v)).toHaveLength(4);
    expect(samples.filter((s) => 'rl.ShopSearch.reward' in s.v)).toHaveLength(2);

    // A re-run with nothing changed skips every stage; a changed RL setting re-runs RL and its eval.
    c = captureConsole();
    expect(await main(['experiment', config])).toBe(0);
    expect(skipped(c.out)).toEqual(['data', 'init', 'eval_baseline', 'sft', 'eval_sft', 'rl_0', 'eval_rl']);
    c = captureConsole();
    expect(await main(['experiment', config, '--envs.ShopSearch.rl_updates', '3'])).toBe(0);
    expect(ran(c.out)).toEqual(['rl_0', 'eval_rl']);
  }, 400_000);

  it('refuses a bad config in one line naming the key, exit 2', async () => {
    let n = 0;
    const bad = (patch: Record<string, unknown>) => write(`bad-${n++}.json`, { ...experiment, out_dir: join(dir, 'bad'), ...patch });
    const shop = experiment.envs.ShopSearch;
    const cases: [string[], RegExp][] = [
      [[bad({ env: {} })], /^rlmesh: config error: env: unknown key/],
      [[bad({ envs: {} })], /^rlmesh: config error: envs: must name at least one env/],
      [[bad({ envs: { Nope: {} } })], /^rlmesh: config error: envs\.Nope: unknown text env "Nope"/],
      [
        [bad({ envs: { ShopSearch: { ...shop, options: { max_episode_steps: 0 } } } })],
        /^rlmesh: config error: envs\.ShopSearch\.options\.max_episode_steps: /,
      ],
      [
        [bad({ envs: { ShopSearch: { ...shop, demonstration: 3 } } })],
        /^rlmesh: config error: envs\.ShopSearch\.demonstration: unknown key/,
      ],
      [
        [bad({ envs: { ShopSearch: { ...shop, reward_weights: { correct: 1 } } } })],
        /^rlmesh: config error: envs\.ShopSearch\.reward_weights\.correct: is not a reward component/,
      ],
      [[bad({ eval: { episodes: 4, seed: 3 } })], /^rlmesh: config error: eval\.seed: must leave out the demonstrations' seeds 2\.\.7/],
      [
        [bad({ model: { ...experiment.model, num_key_value_heads: 3 } })],
        /^rlmesh: config error: model \(.*\): model\.num_key_value_heads/,
      ],
      [[bad({ model: { hidden: 3 } })], /^rlmesh: config error: model \(.*\): model\.hidden: unknown key/],
      [
        [bad({ sft: { config: sftConfig, overrides: { init_from: '/tmp' } } })],
        /^rlmesh: config error: sft\.overrides\.init_from: is set by the experiment/,
      ],
      [
        [bad({ sft: { config: sftConfig, overrides: { 'train.lr': 'fast' } } })],
        /^rlmesh: config error: sft \(.*sft\.json\): train\.lr: must be a number/,
      ],
      [
        [bad({ rl: { config: rlConfig, overrides: { env: { id: 'AffineSAT' } } } })],
        /^rlmesh: config error: rl\.overrides\.env\.id: is set by the experiment/,
      ],
      [
        [bad({ rl: { config: rlConfig, overrides: { 'algo.name': 'ppo' } } })],
        /^rlmesh: config error: rl\.config \(.*ppo\.json\): algo\.name: must be ppo_seq or grpo, got ppo/,
      ],
      [
        [bad({ rl: { config: rlConfig, overrides: { 'algo.num_mini_batches': 3 } } })],
        /^rlmesh: config error: rl \(.*ppo\.json\): algo\.num_mini_batches/,
      ],
      [[bad({ pipeline: 'affine', out_dir: undefined })], /^rlmesh: config error: out_dir: is required/],
      [[config, '--force', 'eval'], /^rlmesh: --force: unknown stage "eval"/],
    ];
    for (const [args, expected] of cases) {
      const c = captureConsole();
      expect(await main(['experiment', ...args]), args.join(' ')).toBe(2);
      expect(c.err, args.join(' ')).toHaveLength(1);
      expect(c.err[0]).toMatch(expected);
      vi.restoreAllMocks();
    }
  }, 60_000);
});
