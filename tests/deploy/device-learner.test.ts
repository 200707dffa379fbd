/**
 * A learner service's --device decides where every run it is sent trains, whatever the run config's
 * train.device says, and the run's resolved config.json records it; a learner without a device of
 * its own refuses a config asking for CUDA it cannot load with INVALID_ARGUMENT naming the key.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { deviceUnavailable } from '@rlmesh/graph';
import { LearnerCore } from '@rlmesh/learner';
import { createLogger, MemoryBus } from '@rlmesh/mesh';
import { RunState } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';

const CONFIG = [
  'env: { id: PatternEcho, num_envs: 16, num_steps: 1 }',
  'model: { id: baby }',
  'algo: { name: reinforce }',
  'train: { total_env_steps: 32, threads: 1, device: cuda }',
  'mesh: { inference: local }',
].join('\n');

describe('the learner service places runs on its device', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-device-'));
  const bus = new MemoryBus();
  const logger = createLogger('test', 'error');
  const unusedPolicy: PolicyClient = { act: () => Promise.reject(new Error('these runs use local inference')) };
  const replica = new EnvReplica({ replicaId: 'r', bus, policy: unusedPolicy, logger });
  const onCpu = new LearnerCore({ bus, logger, outDir: join(dir, 'cpu'), device: 'cpu' });
  const unplaced = new LearnerCore({ bus, logger, outDir: join(dir, 'unplaced') });
  afterAll(async () => {
    await onCpu.close();
    await unplaced.close();
    await replica.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--device cpu trains a run whose config asks for cuda on the CPU, and says so in config.json', async () => {
    await replica.start();
    const started = await onCpu.startRun(CONFIG, 'placed-cpu');
    const state = await new Promise<RunState>((resolve) => {
      void onCpu.watchRun(started.runId, (r) => r.state !== RunState.RUN_STATE_RUNNING && resolve(r.state));
    });
    expect(state).toBe(RunState.RUN_STATE_COMPLETED);
    const resolved = JSON.parse(readFileSync(join(dir, 'cpu', 'placed-cpu', 'config.json'), 'utf8'));
    expect(resolved.train.device).toBe('cpu');
  });

  it.skipIf(deviceUnavailable('cuda') === null)(
    'without a device of its own, a config asking for missing CUDA is INVALID_ARGUMENT',
    async () => {
      const err = await unplaced.startRun(CONFIG, 'wants-cuda').catch((e) => e);
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.message).toContain(`train.device: ${deviceUnavailable('cuda')}`);
    },
  );
});
