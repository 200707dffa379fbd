/**
 * `rlmesh dashboard --learner`: the dashboard follows a mesh run through a real LearnerService on
 * loopback gRPC (ListRuns, then WatchRun), with a policy core and an env replica on the in-memory
 * bus training it. The run's samples grow while its state is RUNNING, one per new update, and the
 * run ends COMPLETED at its last update.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { startLearnerServer } from '@rlmesh/learner';
import { createLogger, MemoryBus } from '@rlmesh/mesh';
import { PolicyCore } from '@rlmesh/policy';
import { DashboardHub } from '@rlmesh/report';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchLearner } from '../../packages/cli/src/dashboard';

// Long enough that the run spans many 100 ms watch intervals even on a fast host (40 updates took about 300 ms).
const UPDATES = 400;

describe('dashboard of a mesh run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-mesh-dashboard-'));
  const logger = createLogger('test', 'error');
  const bus = new MemoryBus();
  const policyCore = new PolicyCore({ bus, logger });
  const policy: PolicyClient = { act: (runId, obs, rows, seed, minVersion) => policyCore.act(runId, obs, rows, false, minVersion, seed) };
  const replica = new EnvReplica({ replicaId: 'r0', bus, policy, logger });
  let learner: Awaited<ReturnType<typeof startLearnerServer>>;

  beforeAll(async () => {
    await replica.start();
    learner = await startLearnerServer({ bus, port: 0, outDir: dir, logger });
  });
  afterAll(async () => {
    await replica.stop();
    await learner?.shutdown();
    await policyCore.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('follows the run over WatchRun while it trains', async () => {
    const hub = new DashboardHub();
    const seen: { samples: number; state?: string; last?: number }[] = [];
    hub.subscribe(() => {
      const run = hub.snapshot().runs.find((r) => r.name === 'mesh:echo-live');
      if (run) seen.push({ samples: run.samples.length, state: run.state, last: run.samples.at(-1)?.x });
    });
    const watch = await watchLearner(`127.0.0.1:${learner.port}`, hub, undefined, 100);
    try {
      const config = JSON.stringify({
        env: { id: 'PatternEcho', num_envs: 64, num_steps: 1, options: { max_episode_steps: 1 } },
        model: { id: 'baby' },
        algo: { name: 'reinforce' },
        train: { total_env_steps: 64 * UPDATES },
      });
      await learner.core.startRun(config, 'echo-live');
      const deadline = Date.now() + 60_000;
      while (seen.at(-1)?.state !== 'RUN_STATE_COMPLETED' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      watch.stop();
    }
    const running = seen.filter((s) => s.state === 'RUN_STATE_RUNNING' && s.samples > 0);
    expect(new Set(running.map((s) => s.samples)).size, JSON.stringify(seen)).toBeGreaterThanOrEqual(3);
    const final = hub.snapshot().runs.find((r) => r.name === 'mesh:echo-live');
    expect(final?.state).toBe('RUN_STATE_COMPLETED');
    expect(final?.source).toBe('mesh');
    // One sample per update the stream reported, in order, ending at the last update.
    const xs = final?.samples.map((s) => s.x) ?? [];
    expect(xs.at(-1)).toBe(64 * UPDATES);
    for (let i = 1; i < xs.length; i++) expect(xs[i]).toBeGreaterThan(xs[i - 1]);
    expect(final?.layout.map((g) => g.title)).toEqual(expect.arrayContaining(['return_mean', 'success_mean', 'entropy', 'loss']));
  });
});
