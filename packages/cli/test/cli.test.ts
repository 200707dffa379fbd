import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-cli-'));
const cfgFile = (body: string) => {
  const p = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(p, body);
  return p;
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('rlmesh train', () => {
  it('prints one line naming the key and exits 2 on a bad config', async () => {
    const io = captureConsole();
    expect(await main(['train', cfgFile('algo:\n  lr: fast\n')])).toBe(2);
    expect(io.err).toEqual(['rlmesh: config error: algo.lr: must be a number > 0, got "fast"']);
  });

  it('checks --key overrides the same way', async () => {
    const io = captureConsole();
    expect(await main(['train', cfgFile('env:\n  id: PatternEcho\n'), '--env.num_envs', '0'])).toBe(2);
    expect(io.err).toEqual(['rlmesh: config error: env.num_envs: must be an integer >= 1 and <= 65536, got 0']);
  });

  it('exits 2 with one line on a missing file, bad YAML or unknown command', async () => {
    const io = captureConsole();
    expect(await main(['train', join(dir, 'missing.yaml')])).toBe(2);
    expect(await main(['train', cfgFile('algo: [1, 2\n')])).toBe(2);
    expect(await main(['fly'])).toBe(2);
    expect(await main(['train', cfgFile('run: { name: x }\n'), '--resume', join(dir, 'nope.safetensors')])).toBe(2);
    expect(io.err).toHaveLength(4);
    expect(io.err[3]).toMatch(/^rlmesh: --resume: no checkpoint at /);
    expect(io.err[0]).toMatch(/^rlmesh: cannot read config file /);
    expect(io.err[1]).toMatch(/is not valid YAML/);
    expect(io.err[2]).toMatch(/^rlmesh: unknown command "fly"/);
  });

  it('trains, reports the criteria, and the model answers `policy act`', async () => {
    const io = captureConsole();
    const echo = join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml');
    expect(await main(['train', echo, '--run.name', 'cli', '--run.out_dir', dir, '--run.seed', '3'])).toBe(0);
    expect(
      io.out.some((l) => l.startsWith('criteria PASSED')),
      io.out.join('\n'),
    ).toBe(true);
    io.out.length = 0;
    const obs = JSON.stringify([
      [0, 0, 0, 1, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 1, 0],
    ]);
    const model = join(dir, 'cli', 'model.safetensors');
    expect(await main(['policy', 'act', '--checkpoint', model, '--obs', obs, '--greedy'])).toBe(0);
    const rows = io.out.map((l) => JSON.parse(l)) as Array<{ action: number; log_prob: number; probs: number[]; value: unknown }>;
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.action)).toEqual([3, 6]);
    expect(rows[0].probs).toHaveLength(8);
    expect(rows[0].probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    expect(rows[0].probs[3]).toBeGreaterThan(0.5);
    expect(rows[0].log_prob).toBeCloseTo(Math.log(rows[0].probs[3]), 4);
    // value: V(s) of the row (printed today as a one-element list, see policy-act.ts)
    const value = [rows[0].value].flat()[0];
    expect(Number.isFinite(value)).toBe(true);
    expect(await main(['policy', 'act', '--checkpoint', model, '--obs', '[[1,2]]'])).toBe(2);
    expect(io.err.at(-1)).toBe('rlmesh: --obs: every row needs 8 values for PatternEcho');
    expect(await main(['policy', 'act', '--checkpoint', join(dir, 'nope.safetensors'), '--obs', obs])).toBe(2);
    expect(io.err.at(-1)).toMatch(/^rlmesh: --checkpoint: cannot read \S+nope.safetensors: ENOENT/);
  });

  it('resumes from a checkpoint with --resume', async () => {
    const io = captureConsole();
    const echo = join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml');
    const args = ['--run.name', 'res', '--run.out_dir', dir, '--train.total_env_steps', String(6 * 64), '--train.checkpoint_every', '3'];
    expect(await main(['train', echo, ...args])).toBe(0);
    const ckpt = join(dir, 'res', 'checkpoints', 'update-000003.safetensors');
    expect(await main(['train', echo, ...args, '--resume', ckpt])).toBe(0);
    expect(io.out.some((l) => l.startsWith('done: 6 updates'))).toBe(true);
  });
});

describe('rlmesh --help', () => {
  it('prints the usage of each command and exits 0', async () => {
    const io = captureConsole();
    for (const cmd of ['train', 'up', 'serve', 'policy']) {
      io.out.length = 0;
      expect(await main([cmd, '--help'])).toBe(0);
      expect(io.out.join('\n')).toMatch(new RegExp(`^usage:\\n  rlmesh ${cmd}`));
    }
    expect(io.err).toEqual([]);
    io.out.length = 0;
    expect(await main(['help'])).toBe(0);
    expect(io.out.join('\n')).toMatch(/^usage:/);
  });
});

describe('rlmesh mesh commands: bad input', () => {
  it('train --mesh checks the config before sending it', async () => {
    const io = captureConsole();
    expect(await main(['train', '--mesh', cfgFile('algo:\n  lr: fast\n'), '--learner', '127.0.0.1:1'])).toBe(2);
    expect(io.err).toEqual(['rlmesh: config error: algo.lr: must be a number > 0, got "fast"']);
  });

  it('train --mesh with no learner listening prints one line and exits 2', async () => {
    const io = captureConsole();
    expect(await main(['train', '--mesh', cfgFile('env:\n  id: PatternEcho\n'), '--learner', '127.0.0.1:1'])).toBe(2);
    expect(io.err).toEqual([
      'rlmesh: train --mesh: no learner answers at 127.0.0.1:1: nothing listens there (start the mesh with rlmesh up)',
    ]);
  });

  it('serve and up reject unknown services and options', async () => {
    const io = captureConsole();
    expect(await main(['serve', 'bogus'])).toBe(2);
    expect(await main(['serve', 'env', '--nats', 'nats://127.0.0.1:1', '--bogus', '1'])).toBe(2);
    expect(await main(['up', '--env-replicas', '0'])).toBe(2);
    expect(io.err[0]).toMatch(/^rlmesh: serve needs one of env, policy, learner, evaluator, sae/);
    expect(io.err[1]).toBe('rlmesh: serve: unknown option --bogus');
    expect(io.err[2]).toBe('rlmesh: --env-replicas: must be an integer in 1..32, got 0');
    expect(await main(['up', '--openai-port', '70000'])).toBe(2);
    expect(io.err[3]).toBe('rlmesh: --openai-port: must be an integer in 0..65535 (0: off), got 70000');
  });
});

describe('rlmesh train --in-process-mesh', () => {
  it('trains PatternEcho through the mesh cores in this process', async () => {
    const io = captureConsole();
    const config = join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml');
    expect(await main(['train', '--in-process-mesh', config, '--run.out_dir', dir])).toBe(0);
    const done = io.out.find((l) => l.startsWith('RUN_STATE_COMPLETED'));
    expect(done, io.out.join('\n')).toBeDefined();
    expect(Number(/success ([\d.]+)%/.exec(done!)![1])).toBeGreaterThanOrEqual(90);
    expect(done).toContain('chunks by actor {local-a0: 64}');
  });
});
