/** `rlmesh eval`, run in process through the CLI's main() on checkpoints trained here. */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@rlmesh/cli';
import type { EvaluationResult } from '@rlmesh/core';
import { parseRunConfig, trainEmbedded } from '@rlmesh/learner';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';

const SUITES = join(__dirname, '..', '..', '..', 'configs', 'suites');
const out = mkdtempSync(join(tmpdir(), 'rlmesh-eval-cli-'));
const file = (name: string, body: string) => {
  const p = join(out, name);
  writeFileSync(p, body);
  return p;
};

afterEach(() => {
  vi.restoreAllMocks();
});

async function trainTiny(name: string, env: string, updates: number) {
  await trainEmbedded(
    parseRunConfig({
      run: { name, seed: 4, out_dir: out },
      env: { id: env, num_envs: 32, num_steps: env === 'PatternEcho' ? 1 : 16 },
      model: { id: 'mlp_actor_critic', hidden_dim: 16 },
      algo: { name: 'ppo', lr: 3e-3 },
      train: { total_env_steps: 32 * (env === 'PatternEcho' ? 1 : 16) * updates, checkpoint_every: 2, threads: 1 },
    }),
  );
  return join(out, name);
}

let echoRun: string;
let cartRun: string;

beforeAll(async () => {
  echoRun = await trainTiny('echo', 'PatternEcho', 4);
  cartRun = await trainTiny('cart', 'CartPole-v1', 1);
});

describe('rlmesh eval', () => {
  it('prints a row per entry with its interval and writes the result into the run directory', async () => {
    const io = captureConsole();
    const ckpt = join(echoRun, 'checkpoints', 'update-000002.safetensors');
    expect(await main(['eval', join(SUITES, 'pattern-echo.yaml'), '--checkpoint', ckpt])).toBe(0);
    expect(io.err).toEqual([]);
    expect(io.out[0]).toMatch(/^rlmesh eval: echo update 2 on suite pattern-echo \(greedy\)/);
    expect(io.out[1]).toMatch(/^entry\s+split\s+env\s+episodes\s+success \[80\.0% interval\]\s+return mean\s+components$/);
    expect(io.out[2]).toMatch(/^single-step\s+ID\s+PatternEcho\s+200\s+\d+\.\d% \[\d+\.\d%, \d+\.\d%\]\s+\d\.\d\d\s+goal \d\.\d\d/);
    expect(io.out[3]).toMatch(/^eight-steps\s+ID\s+PatternEcho\s+100\s+/);
    expect(io.out[4]).toMatch(/^weighted: all \d+\.\d% \(return \d+\.\d\d\); ID /);
    const written = readdirSync(join(echoRun, 'evaluations'));
    expect(written).toHaveLength(1);
    expect(io.out[5]).toBe(`wrote ${join(echoRun, 'evaluations', written[0])}`);
    const r = JSON.parse(readFileSync(join(echoRun, 'evaluations', written[0]), 'utf8')) as EvaluationResult;
    expect(r.suite).toBe('pattern-echo');
    expect(r.policy).toEqual({ checkpoint: ckpt, version: 3, label: 'echo update 2' });
    expect(r.environments.map((e) => [e.name, e.episodes])).toEqual([
      ['single-step', 200],
      ['eight-steps', 100],
    ]);
    const e = r.environments[0];
    expect(e.interval.low).toBeLessThanOrEqual(e.success_rate);
    expect(e.interval.high).toBeGreaterThanOrEqual(e.success_rate);
  });

  it('--out, --sampled and --label; the same command gives the same numbers', async () => {
    captureConsole();
    const ckpt = join(echoRun, 'model.safetensors');
    const args = (f: string) => [
      'eval',
      join(SUITES, 'pattern-echo.yaml'),
      '--checkpoint',
      ckpt,
      '--sampled',
      '--label',
      'final',
      '--out',
      f,
    ];
    expect(await main(args(join(out, 'a', 'r.json')))).toBe(0);
    expect(await main(args(join(out, 'b.json')))).toBe(0);
    const a = JSON.parse(readFileSync(join(out, 'a', 'r.json'), 'utf8')) as EvaluationResult;
    const b = JSON.parse(readFileSync(join(out, 'b.json'), 'utf8')) as EvaluationResult;
    expect(a.mode).toBe('sampled');
    expect(a.policy.label).toBe('final');
    expect(a.id).not.toBe(b.id);
    expect(b.environments).toEqual(a.environments);
  });

  it('--help prints the usage', async () => {
    const io = captureConsole();
    expect(await main(['eval', '--help'])).toBe(0);
    expect(io.out.join('\n')).toMatch(/rlmesh eval <suite.yaml> --checkpoint <path>/);
  });

  const suite = join(SUITES, 'pattern-echo.yaml');
  it.each([
    ['no suite', () => ['eval', '--checkpoint', join(echoRun, 'model.safetensors')], /^rlmesh: eval needs exactly one suite file$/],
    ['no checkpoint', () => ['eval', suite], /^rlmesh: eval needs --checkpoint <path>$/],
    [
      'a missing checkpoint',
      () => ['eval', suite, '--checkpoint', join(out, 'none.safetensors')],
      /^rlmesh: --checkpoint: no file or directory at .*none\.safetensors$/,
    ],
    [
      'a file that is no checkpoint',
      () => ['eval', suite, '--checkpoint', suite],
      /^rlmesh: --checkpoint: cannot load .*pattern-echo\.yaml as a policy: /,
    ],
    [
      'a checkpoint of another environment',
      () => ['eval', suite, '--checkpoint', join(cartRun, 'model.safetensors')],
      /^rlmesh: --checkpoint: entry "single-step" \(PatternEcho\): the policy cannot act: /,
    ],
    [
      'a missing suite',
      () => ['eval', join(out, 'none.yaml'), '--checkpoint', join(echoRun, 'model.safetensors')],
      /^rlmesh: cannot read suite .*none\.yaml: ENOENT$/,
    ],
    [
      'zero episodes',
      () => [
        'eval',
        file('zero.yaml', 'name: z\nentries:\n  - { name: a, env: { id: PatternEcho }, episodes: 0 }\n'),
        '--checkpoint',
        join(echoRun, 'model.safetensors'),
      ],
      /^rlmesh: suite .*zero\.yaml: entries\[0\]\.episodes: must be an integer >= 1/,
    ],
    [
      'an unknown env',
      () => [
        'eval',
        file('unknown.yaml', 'name: u\nentries:\n  - { name: a, env: { id: Chess }, episodes: 3 }\n'),
        '--checkpoint',
        join(echoRun, 'model.safetensors'),
      ],
      /^rlmesh: suite .*unknown\.yaml: entries\[0\]\.env\.id: unknown env "Chess"/,
    ],
    [
      'both modes',
      () => ['eval', suite, '--checkpoint', join(echoRun, 'model.safetensors'), '--greedy', '--sampled'],
      /^rlmesh: eval: --greedy and --sampled exclude each other$/,
    ],
    ['an unknown option', () => ['eval', suite, '--episodes', '3'], /^rlmesh: eval: unknown option --episodes/],
  ])('%s: one line, exit 2', async (_what, argv, message) => {
    const io = captureConsole();
    expect(await main(argv())).toBe(2);
    expect(io.err).toHaveLength(1);
    expect(io.err[0]).toMatch(message);
  });
});
