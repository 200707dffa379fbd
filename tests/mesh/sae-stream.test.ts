/**
 * Activations captured during a mesh run and an SAE trained from the stream while the run goes on:
 * a real nats-server; the learner core and an env replica (local inference) on one NATS connection,
 * the SAE service core following rlmesh.activations.<run>.<hook> on another. PatternEcho with
 * mesh.capture_hooks publishes a sampled batch per update; the follower trains a TopK SAE from it and
 * stores it; SaeService/Follow does the same over gRPC. Without nats-server the test is skipped, under
 * CI=true it fails.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { LearnerCore } from '@rlmesh/learner';
import { createLogger, decodeActivationBatch, findNatsServer, NatsBus, type NatsServer, startNatsServer, subjects } from '@rlmesh/mesh';
import { type FollowSaeRequest, type Run, RunState, SaeServiceClient, type TrainSaeResponse } from '@rlmesh/proto';
import { SaeServiceCore, startSaeServer } from '@rlmesh/sae';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { until } from './helpers';

const natsMissing = !findNatsServer() && process.env.CI !== 'true';
const HOOK = 'blocks.1.hook_resid_post';

function runConfig(extra: Record<string, unknown>, updates = 48): string {
  const raw = parseYaml(readFileSync(join(__dirname, '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >;
  return stringify({
    ...raw,
    mesh: { inference: 'local', capture_hooks: HOOK, capture_rows: 48, ...extra },
    train: { ...raw.train, total_env_steps: 64 * updates },
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
    const run = await learner.startRun(runConfig({}), 'echo-acts');
    let last: Run = run;
    await learner.watchRun(run.runId, (r) => (last = r));
    expect(last.state).toBe(RunState.RUN_STATE_COMPLETED);
    const sae = await following;
    // The peeking consumer may still be behind the last batches on a loaded machine.
    await until(() => (batches.length >= last.updates ? true : undefined), 20_000, 'every batch at the peeking consumer');
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
    // TopK: at most k = 8 active, fewer where a row's k-th pre-activation is not positive.
    expect(sae.metrics.l0).toBeLessThanOrEqual(8 + 1e-9);
    expect(sae.metrics.l0).toBeGreaterThan(6);
    expect(sae.metrics.explained_variance).toBeGreaterThan(0.8);
    expect((await new SaeServiceCore(dir).list()).map((s) => s.id)).toEqual(['echo-resid1']);
  }, 60_000);

  it('SaeService/Follow over gRPC streams progress and ends with the stored SAE; bad requests are refused by field', async () => {
    const server = await startSaeServer({ root: dir, port: 0, bus: saeBus, logger });
    const bare = await startSaeServer({ root: dir, port: 0, logger });
    const client = new SaeServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    const bareClient = new SaeServiceClient(`127.0.0.1:${bare.port}`, credentials.createInsecure());
    const follow = (c: SaeServiceClient, req: Partial<FollowSaeRequest>) =>
      new Promise<TrainSaeResponse[]>((resolve, reject) => {
        const out: TrainSaeResponse[] = [];
        const stream = c.follow({ runId: '', hook: '', configJson: '', steps: 0, batchSize: 0, id: '', warmupRows: 0, ...req });
        stream.on('data', (m: TrainSaeResponse) => out.push(m));
        stream.on('error', reject);
        stream.on('end', () => resolve(out));
      });
    try {
      const config = JSON.stringify({ architecture: 'topk', k: 8, d_sae: 64, lr: 1e-3 });
      const following = follow(client, {
        runId: 'echo-grpc',
        hook: HOOK,
        configJson: config,
        steps: 200,
        batchSize: 128,
        id: 'grpc-resid1',
        warmupRows: 512,
      });
      const run = await learner.startRun(runConfig({}, 24), 'echo-grpc');
      await learner.watchRun(run.runId, () => undefined);
      const messages = await following;
      const last = messages.at(-1)?.event;
      expect(last?.$case).toBe('sae');
      const sae = last?.$case === 'sae' ? last.sae : undefined;
      expect(sae).toMatchObject({ id: 'grpc-resid1', dIn: 64, dSae: 64, activations: `nats:${subjects.activations('echo-grpc', HOOK)}` });
      expect(messages.some((m) => m.event?.$case === 'progress')).toBe(true);
      const refused = async (c: SaeServiceClient, req: Partial<FollowSaeRequest>) => {
        const e = (await follow(c, req).catch((x) => x)) as ServiceError;
        return { code: e.code, details: e.details };
      };
      expect(await refused(client, { runId: 'a b', hook: HOOK })).toEqual({
        code: status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^run_id: must match/),
      });
      expect(await refused(client, { runId: 'r', hook: 'x y' })).toEqual({
        code: status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^hook: must be a hook name/),
      });
      expect(await refused(client, { runId: 'r', hook: HOOK, configJson: '[' })).toEqual({
        code: status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^config_json: is not JSON/),
      });
      expect(await refused(client, { runId: 'r', hook: HOOK, id: 'grpc-resid1' })).toEqual({
        code: status.ALREADY_EXISTS,
        details: expect.stringMatching(/^id: /),
      });
      expect(await refused(bareClient, { runId: 'r', hook: HOOK })).toEqual({
        code: status.FAILED_PRECONDITION,
        details: expect.stringMatching(/without a NATS bus/),
      });
    } finally {
      client.close();
      bareClient.close();
      await server.shutdown({ drainMs: 0 });
      await bare.shutdown({ drainMs: 0 });
    }
  }, 60_000);

  it('refuses a hook the model lacks, naming the key', async () => {
    await expect(learner.startRun(runConfig({ capture_hooks: 'blocks.9.hook_resid_post' }), 'echo-bad')).rejects.toThrow(
      /mesh\.capture_hooks: .*blocks\.9\.hook_resid_post/,
    );
  });
});
