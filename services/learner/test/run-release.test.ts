/**
 * A learner that trains run after run keeps its threads and memory flat: an ended run releases its
 * train-step worker and act session (checked on the process: /proc/self/status Threads and VmRSS).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { createLogger, MemoryBus } from '@rlmesh/mesh';
import { RunState } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { LearnerCore } from '../src/mesh/learner-core';

function procStatus(field: 'Threads' | 'VmRSS'): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number(line?.split(/\s+/)[1]);
}

describe.skipIf(process.platform !== 'linux')('ended runs release their workers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-release-'));
  const bus = new MemoryBus();
  const logger = createLogger('test', 'error');
  const unusedPolicy: PolicyClient = { act: () => Promise.reject(new Error('these runs use local inference')) };
  const replica = new EnvReplica({ replicaId: 'r', bus, policy: unusedPolicy, logger });
  const learner = new LearnerCore({ bus, logger, outDir: dir });
  afterAll(async () => {
    await learner.close();
    await replica.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('20 runs in a row: threads flat, memory bounded', async () => {
    await replica.start();
    const config = [
      'env: { id: PatternEcho, num_envs: 16, num_steps: 1 }',
      'model: { id: baby }',
      'algo: { name: reinforce }',
      'train: { total_env_steps: 32, threads: 2 }',
      'mesh: { inference: local }',
    ].join('\n');
    const samples: Array<{ threads: number; rssMb: number }> = [];
    for (let i = 0; i < 20; i++) {
      const started = await learner.startRun(config, `release-${i}`);
      const state = await new Promise<RunState>((resolve) => {
        void learner.watchRun(started.runId, (r) => r.state !== RunState.RUN_STATE_RUNNING && resolve(r.state));
      });
      expect(state).toBe(RunState.RUN_STATE_COMPLETED);
      // Worker threads exit asynchronously after terminate().
      await new Promise((r) => setTimeout(r, 200));
      samples.push({ threads: procStatus('Threads'), rssMb: procStatus('VmRSS') / 1024 });
    }
    const [warm, last] = [samples[4], samples[19]];
    expect(last.threads - warm.threads, JSON.stringify(samples)).toBeLessThanOrEqual(2);
    expect(last.rssMb - warm.rssMb, JSON.stringify(samples)).toBeLessThan(100);
  });
});
