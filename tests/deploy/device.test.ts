/**
 * `--device cuda` where CUDA cannot run: the service refuses at start with one line saying why and
 * exit code 2, before it connects to anything; it never serves on the CPU instead. The same holds
 * for a run config's train.device in the embedded trainer. On a machine with CUDA these checks do
 * not apply (the GPU run is recorded in deploy/README.md instead).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { deviceUnavailable } from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'rlmesh.js');
const built = existsSync(join(ROOT, 'packages', 'cli', 'dist', 'main.js'));
if (!built && process.env.CI === 'true') throw new Error('the device tests need the build (npm run build)');
const noCuda = deviceUnavailable('cuda');

const rlmesh = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NATS_URL: '' } });

describe.skipIf(!built || noCuda === null)('--device cuda without CUDA', () => {
  it.each(['learner', 'policy'])('rlmesh serve %s exits 2 with one line naming the reason', (service) => {
    const r = rlmesh('serve', service, '--device', 'cuda');
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual([`rlmesh: --device cuda: ${noCuda}`]);
    expect(r.stdout).not.toContain('READY');
  });

  it('a run config asking for train.device cuda stops at start, naming the key', () => {
    const r = rlmesh(
      'train',
      join(ROOT, 'configs', 'wmil-pattern-echo.yaml'),
      '--train.device',
      'cuda',
      '--run.out_dir',
      join(ROOT, '.tmp', 'device-test'),
    );
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`rlmesh: config error: train.device: ${noCuda}`);
  });
});

describe.skipIf(!built)('--device values', () => {
  it('refuses an unknown device and a device for a service that runs no model', () => {
    const tpu = rlmesh('serve', 'policy', '--device', 'tpu');
    expect(tpu.status).toBe(2);
    expect(tpu.stderr.trim()).toBe('rlmesh: --device: must be one of cpu, cuda, got "tpu"');
    const env = rlmesh('serve', 'env', '--device', 'cpu');
    expect(env.status).toBe(2);
    expect(env.stderr.trim()).toBe('rlmesh: --device: only policy and learner run models, not env');
  });

  it('reports the CPU as always available', () => {
    expect(deviceUnavailable('cpu')).toBeNull();
  });
});
