/**
 * What a taking-over learner keeps of the run it takes: metrics.jsonl cut back to the checkpoint it
 * resumes from (the updates after it are redone, so each is logged once, even when the old learner
 * died halfway through writing a line) and the run's counters from that checkpoint. Real cores on an
 * in-memory bus; the process-level version with SIGKILL is tests/mesh/learner-restart.test.ts.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { createLogger, decodeJson, keys, MemoryBus } from '@rlmesh/mesh';
import { PolicyCore } from '@rlmesh/policy';
import { type Run, RunState } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { LearnerCore } from '../src/mesh/learner-core';
import type { LeaseRecord } from '../src/mesh/lease';

interface Line {
  update: number;
  env_steps: number;
  episodes: number;
}

describe('take-over bookkeeping', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-lease-takeover-'));
  const bus = new MemoryBus();
  const logger = createLogger('test', 'error');
  const policyCore = new PolicyCore({ bus, logger, seed: 1 });
  const policy: PolicyClient = { act: (id, obs, rows, seed, minVersion) => policyCore.act(id, obs, rows, false, minVersion, seed) };
  const replica = new EnvReplica({ replicaId: 'r', bus, policy, logger });
  afterAll(async () => {
    await replica.stop();
    await policyCore.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const lines = () =>
    readFileSync(join(dir, 'bookkeeping', 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);

  it('cuts metrics.jsonl back to the checkpoint (a torn last line included) and restores the counters', async () => {
    await replica.start();
    const shipped = parseYaml(readFileSync(join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
    const config = JSON.stringify({ ...shipped, train: { ...shipped.train, total_env_steps: 64 * 32, checkpoint_every: 8, threads: 1 } });
    const first = new LearnerCore({ bus, logger, outDir: dir, owner: 'first' });
    await first.startRun(config, 'bookkeeping');
    await new Promise<void>((resolve) => {
      void first.watchRun('bookkeeping', (r) => {
        if (r.updates >= 11) resolve();
      });
    });
    await first.close({ handOver: true });
    // The hand-over released the lease: the next learner need not wait for it to expire.
    expect(decodeJson<LeaseRecord>((await bus.kv.get(keys.lease('bookkeeping')))!).expires_at).toBe(0);
    const logged = lines().length;
    expect(logged).toBeGreaterThanOrEqual(11);
    // A learner killed while appending leaves half a line.
    appendFileSync(join(dir, 'bookkeeping', 'metrics.jsonl'), '{"update": 99, "env_st');

    const second = new LearnerCore({ bus, logger, outDir: dir, owner: 'second' });
    expect(await second.recover()).toEqual(['bookkeeping']);
    const resumed = second.getRun('bookkeeping');
    const from = resumed.resumedFromUpdate;
    expect(from).toBe(8 * Math.floor(logged / 8));
    // Counters are the checkpoint's, not zero and not the old learner's last ones.
    expect(resumed.envSteps).toBeGreaterThanOrEqual(from * 64);
    let last: Run = resumed;
    await second.watchRun('bookkeeping', (r) => (last = r));
    expect(last.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(last.updates).toBe(32);
    expect(last.envSteps).toBe(32 * 64);
    expect(last.episodes).toBe(32 * 64);
    const log = lines();
    expect(log.map((l) => l.update)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    expect(log.every((l) => l.env_steps === l.update * 64 && l.episodes === l.update * 64)).toBe(true);
    await second.close();
  }, 60_000);
});
