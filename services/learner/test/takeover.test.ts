/**
 * A learner that goes away mid-run hands its run over; the next learner on the bus takes it over from
 * the last checkpoint and finishes it, with policy versions still moving forward. The env actors and
 * the policy service (real cores, in-memory bus) never notice more than a pause.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { createLogger, keys, MemoryBus, parsePolicyPointer } from '@rlmesh/mesh';
import { PolicyCore } from '@rlmesh/policy';
import { type Run, RunState } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { LearnerCore } from '../src/mesh/learner-core';

describe('run take-over', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-takeover-'));
  const bus = new MemoryBus();
  const logger = createLogger('test', 'error');
  const policyCore = new PolicyCore({ bus, logger, seed: 1 });
  const policy: PolicyClient = {
    act: (runId, obs, rows, seed, minVersion) => policyCore.act(runId, obs, rows, false, minVersion, seed),
  };
  const replica = new EnvReplica({ replicaId: 'r', bus, policy, logger });
  afterAll(async () => {
    await replica.stop();
    await policyCore.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('continues a handed-over run from its last checkpoint to completion', async () => {
    await replica.start();
    const shipped = parseYaml(readFileSync(join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
    const config = JSON.stringify({ ...shipped, train: { ...shipped.train, total_env_steps: 4096, checkpoint_every: 8 } });
    const first = new LearnerCore({ bus, logger, outDir: dir });
    const run = await first.startRun(config, 'takeover');
    let before: Run = run;
    await new Promise<void>((resolve) => {
      void first.watchRun(run.runId, (r) => {
        before = r;
        if (r.updates >= 20) resolve();
      });
    });
    await first.close({ handOver: true });
    const versionBefore = parsePolicyPointer((await bus.kv.get(keys.policy('takeover')))!).version;

    const second = new LearnerCore({ bus, logger, outDir: dir });
    expect(await second.recover()).toEqual(['takeover']);
    const resumed = second.getRun('takeover');
    // The last checkpoint before the hand-over (every 8 updates); later updates are redone.
    const from = resumed.resumedFromUpdate;
    expect(from % 8).toBe(0);
    expect(from).toBeGreaterThanOrEqual(16);
    expect(from).toBeLessThanOrEqual(before.updates);
    expect(resumed.updates).toBeGreaterThanOrEqual(from);
    expect(resumed.policyVersion).toBeGreaterThan(versionBefore);
    let last: Run = resumed;
    await second.watchRun('takeover', (r) => (last = r));
    expect(before.updates).toBeGreaterThanOrEqual(20);
    expect(before.resumedFromUpdate).toBe(0);
    expect(last.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(last.updates).toBe(64);
    expect(last.success).toBeGreaterThanOrEqual(0.9);
    expect(last.resumedFromUpdate).toBe(from);
    await second.close();
  });
});
