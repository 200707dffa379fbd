/**
 * Activations captured during a mesh run and an SAE trained from the stream while the run goes on:
 * a real nats-server; the learner core and an env replica (local inference) on one NATS connection,
 * the SAE service core following rlmesh.activations.<run>.<hook> on another. PatternEcho with
 * mesh.capture_hooks publishes a sampled batch per update; the follower trains a TopK SAE from it and
 * stores it. Without nats-server the test is skipped, under CI=true it fails.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { LearnerCore } from '@rlmesh/learner';
import { createLogger, decodeActivationBatch, findNatsServer, NatsBus, type NatsServer, startNatsServer, subjects } from '@rlmesh/mesh';
import { type Run, RunState } from '@rlmesh/proto';
import { SaeServiceCore } from '@rlmesh/sae';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';

const natsMissing = !findNatsServer() && process.env.CI !== 'true';
const HOOK = 'blocks.1.hook_resid_post';

function config(extra: Record<string, unknown>): string {
  const raw = parseYaml(readFileSync(join(__dirname, '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >;
  return stringify({
    ...raw,
    mesh: { inference: 'local', capture_hooks: HOOK, capture_rows: 48, ...extra },
    train: { ...raw.train, total_env_steps: 64 * 48 },
  });
}

describe.skipIf(natsMissing)('activations captured during a mesh run, an SAE trained from the stream', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-sae-stream-'));
  const logger = createLogger('test', 'error');
  let nats: NatsServer;
  let bus: NatsBus;
  let saeBus: NatsBus;
  let replica: EnvReplica;
  let learner: LearnerCore;

  beforeAll(async () => {
    nats = await startNatsServer();
    bus = await NatsBus.connect({ servers: nats.url, name: 'test-mesh', logger });
    saeBus = await NatsBus.connect({ servers: nats.url, name: 'test-sae', logger });
    const policy: PolicyClient = {
      act: () => Promise.reject(new Error('local inference: the policy service is not called')),
    };
    replica = new EnvReplica({ replicaId: 'r0', bus, policy, logger });
    await replica.start();
    learner = new LearnerCore({ bus, logger, outDir: join(dir, 'runs') });
  }, 30_000);

  afterAll(async () => {
    await replica?.stop();
    await learner?.close();
    await bus?.close();
    await saeBus?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the learner publishes a batch per update; the follower trains and stores an SAE from them', async () => {
    const core = new SaeServiceCore(dir);
    const batches: { version: number; rows: number; d: number }[] = [];
    const peek = await saeBus.consume({ subject: subjects.activations('echo-acts', HOOK), durable: 'test-peek' }, async (m) => {
      const b = decodeActivationBatch(m.data, m.headers);
      batches.push({ version: b.version, rows: b.rows, d: b.d });
      m.ack();
    });
    const following = core.follow(saeBus, {
      run: 'echo-acts',
      hook: HOOK,
      id: 'echo-resid1',
      config: { architecture: 'topk', k: 8, d_sae: 128, lr: 1e-3 },
      steps: 300,
      batchSize: 256,
      warmupRows: 960,
      idleTimeoutMs: 60_000,
    });
    const run = await learner.startRun(config({}), 'echo-acts');
    let last: Run = run;
    await learner.watchRun(run.runId, (r) => (last = r));
    expect(last.state).toBe(RunState.RUN_STATE_COMPLETED);
    const sae = await following;
    await peek.stop();
    await core.close();

    // One batch of 48 rows of width 64 per update, each tagged with the version whose weights computed it.
    expect(batches.length).toBe(last.updates);
    expect(batches.every((b) => b.rows === 48 && b.d === 64)).toBe(true);
    expect(batches.map((b) => b.version)).toEqual(Array.from({ length: last.updates }, (_, i) => i + 1));
    expect(sae.activations).toBe(`nats:${subjects.activations('echo-acts', HOOK)}`);
    expect(sae.d_in).toBe(64);
    expect(sae.d_sae).toBe(128);
    // A seeded tenth of the rows that had arrived when training ended (at most the run's 3,072).
    expect(sae.metrics.rows).toBeGreaterThan(60);
    expect(sae.metrics.rows).toBeLessThan(390);
    expect(sae.metrics.l0).toBeCloseTo(8, 5);
    expect(sae.metrics.explained_variance).toBeGreaterThan(0.8);
    expect((await new SaeServiceCore(dir).list()).map((s) => s.id)).toEqual(['echo-resid1']);
  }, 60_000);

  it('refuses a hook the model lacks, naming the key', async () => {
    await expect(learner.startRun(config({ capture_hooks: 'blocks.9.hook_resid_post' }), 'echo-bad')).rejects.toThrow(
      /mesh\.capture_hooks: .*blocks\.9\.hook_resid_post/,
    );
  });
});
