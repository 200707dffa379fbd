import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-cli-'));
const cfgFile = (body: string) => {
  const p = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(p, body);
  return p;
};

function capture() {
  const err: string[] = [];
  const out: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((...a) => {
    err.push(a.join(' '));
  });
  vi.spyOn(console, 'log').mockImplementation((...a) => {
    out.push(a.join(' '));
  });
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  return { err, out };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('rlmesh train', () => {
  it('prints one line naming the key and exits 2 on a bad config', async () => {
    const io = capture();
    expect(await main(['train', cfgFile('algo:\n  lr: fast\n')])).toBe(2);
    expect(io.err).toEqual(['rlmesh: config error: algo.lr: must be a number > 0, got "fast"']);
  });

  it('checks --key overrides the same way', async () => {
    const io = capture();
    expect(await main(['train', cfgFile('env:\n  id: PatternEcho\n'), '--env.num_envs', '0'])).toBe(2);
    expect(io.err).toEqual(['rlmesh: config error: env.num_envs: must be an integer >= 1 and <= 65536, got 0']);
  });

  it('exits 2 with one line on a missing file, bad YAML or unknown command', async () => {
    const io = capture();
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

  it('trains, reports the MVP criteria, and the checkpoint answers `policy act`', async () => {
    const io = capture();
    const cfg = cfgFile(`run: { name: cli, out_dir: ${JSON.stringify(dir)} }\nalgo: { lr: 2e-3 }\ntrain: { total_episodes: 4096 }\n`);
    expect(await main(['train', cfg])).toBe(0);
    expect(io.out.some((l) => l.startsWith('MVP PASSED'))).toBe(true);
    io.out.length = 0;
    const obs = JSON.stringify([
      [0, 0, 0, 1, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 1, 0],
    ]);
    expect(await main(['policy', 'act', '--checkpoint', join(dir, 'cli', 'model.safetensors'), '--obs', obs])).toBe(0);
    const rows = JSON.parse(io.out.join('\n')) as Array<{
      action: number;
      action_probs: number[];
      predicted_next_state: number[];
      value: number;
    }>;
    expect(rows.map((r) => r.action)).toEqual([3, 6]);
    expect(rows[0].action_probs[3]).toBeGreaterThan(0.5);
    expect(rows[0].predicted_next_state).toHaveLength(8);
    expect(await main(['policy', 'act', '--checkpoint', join(dir, 'cli', 'model.safetensors'), '--obs', '[[1,2]]'])).toBe(2);
    expect(io.err.at(-1)).toMatch(/^rlmesh: --obs does not fit the checkpoint/);
  });
});

describe('rlmesh mesh commands: bad input', () => {
  it('train --mesh checks the config before sending it', async () => {
    const io = capture();
    expect(await main(['train', '--mesh', cfgFile('algo:\n  lr: fast\n'), '--learner', '127.0.0.1:1'])).toBe(2);
    expect(io.err).toEqual(['rlmesh: config error: algo.lr: must be a number > 0, got "fast"']);
  });

  it('train --mesh with no learner listening prints one line and exits 2', async () => {
    const io = capture();
    expect(await main(['train', '--mesh', cfgFile('env:\n  id: PatternEcho\n'), '--learner', '127.0.0.1:1'])).toBe(2);
    expect(io.err).toEqual(['rlmesh: train --mesh: no learner answers at 127.0.0.1:1 (start the mesh with rlmesh up)']);
  });

  it('serve and up reject unknown services and options', async () => {
    const io = capture();
    expect(await main(['serve', 'evaluator'])).toBe(2);
    expect(await main(['serve', 'env', '--nats', 'nats://127.0.0.1:1', '--bogus', '1'])).toBe(2);
    expect(await main(['up', '--env-replicas', '0'])).toBe(2);
    expect(io.err[0]).toMatch(/^rlmesh: serve needs one of env, policy, learner/);
    expect(io.err[1]).toBe('rlmesh: serve: unknown option --bogus');
    expect(io.err[2]).toBe('rlmesh: --env-replicas: must be an integer in 1..32, got 0');
  });
});

describe('rlmesh train --in-process-mesh', () => {
  it('trains PatternEcho through the mesh cores in this process', async () => {
    const io = capture();
    const config = join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml');
    expect(await main(['train', '--in-process-mesh', config, '--run.out_dir', dir])).toBe(0);
    const done = io.out.find((l) => l.startsWith('RUN_STATE_COMPLETED'));
    expect(done, io.out.join('\n')).toBeDefined();
    expect(Number(/success ([\d.]+)%/.exec(done!)![1])).toBeGreaterThanOrEqual(90);
    expect(done).toContain('chunks by actor {local-a0: 64}');
  });
});
