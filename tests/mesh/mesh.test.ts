/**
 * The mesh end to end: a real nats-server and learner, policy and two env replicas, each its own
 * process, talking gRPC on loopback and JetStream. PatternEcho trains to >= 90% success through the
 * mesh; both replicas contribute chunks; one replica is killed (SIGKILL) mid-run and the run still
 * completes. Every process writes its spans to one JSONL file, and one trace crosses env, policy
 * and learner.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { type NatsServer, startNatsServer } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { spawnService } from '../../packages/cli/src/up';
import { missingParts, ROOT, stopChild, until } from './helpers';

const missing = missingParts();

describe.skipIf(missing !== null)('mesh: learner, policy and 2 env replicas as processes', () => {
  let nats: NatsServer;
  let dir: string;
  const children: Record<string, ChildProcess> = {};
  let learner: LearnerServiceClient;
  let startLearner: () => Promise<void>;

  beforeAll(async () => {
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-mesh-'));
    const env = { ...process.env, RLMESH_TRACE_FILE: join(dir, 'spans.jsonl'), RLMESH_LOG_LEVEL: 'warn' };
    const common = ['--port', '0', '--nats', nats.url];
    startLearner = async () => {
      const l = await spawnService('learner', ['learner', ...common, '--out-dir', join(dir, 'runs')], env);
      children.learner = l.child;
      learner?.close();
      learner = new LearnerServiceClient(`127.0.0.1:${l.ready.port}`, credentials.createInsecure());
    };
    await startLearner();
    const p = await spawnService('policy', ['policy', ...common, '--seed', '1'], env);
    children.policy = p.child;
    for (const id of ['env-0', 'env-1']) {
      const e = await spawnService(id, ['env', ...common, '--policy', `127.0.0.1:${p.ready.port}`, '--replica-id', id], env);
      children[id] = e.child;
    }
  });

  afterAll(async () => {
    learner?.close();
    await Promise.all(Object.values(children).map((c) => stopChild(c)));
    await nats?.stop();
    if (dir && !process.env.KEEP_MESH_DIR) rmSync(dir, { recursive: true, force: true });
  });

  const getRun = (runId: string) =>
    new Promise<Run>((resolve, reject) => learner.getRun({ runId }, (err, r) => (err ? reject(err) : resolve(r))));
  const ended = (runId: string) =>
    until(
      async () => {
        const r = await getRun(runId);
        return r.state === RunState.RUN_STATE_RUNNING ? undefined : r;
      },
      180_000,
      `run ${runId} to end`,
    );

  it('trains PatternEcho to >= 90% with both replicas contributing, and survives killing one', async () => {
    const config = readFileSync(join(ROOT, 'configs', 'wmil-pattern-echo.yaml'), 'utf8');
    const started = await new Promise<Run>((resolve, reject) =>
      learner.startRun({ config, runId: 'mesh-echo' }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    expect(started.state).toBe(RunState.RUN_STATE_RUNNING);

    // Both replicas contribute before one of them dies.
    const before = await until(
      async () => {
        const r = await getRun('mesh-echo');
        const by = r.chunksByActor;
        return (by['env-0-a0'] ?? 0) >= 3 && (by['env-1-a0'] ?? 0) >= 3 ? r : undefined;
      },
      60_000,
      'chunks from both replicas',
    );
    expect(before.updates).toBeLessThan(before.totalUpdates);
    await stopChild(children['env-1'], 'SIGKILL');
    const killedAt = (await getRun('mesh-echo')).chunksByActor['env-1-a0'];

    const final = await ended('mesh-echo');
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(final.updates).toBe(final.totalUpdates);
    expect(final.success).toBeGreaterThanOrEqual(0.9);
    // After the kill only env-0 fed the run (a chunk or two may have been in flight).
    expect(final.chunksByActor['env-1-a0']).toBeLessThanOrEqual(killedAt + 2);
    expect(final.chunksByActor['env-0-a0']).toBeGreaterThan(before.chunksByActor['env-0-a0'] + 10);
    // Flow control (one chunk in flight per actor, played with the newest version) keeps chunks about a
    // version late while two actors run, and on time once one is left.
    expect(final.policyLagMean).toBeLessThan(1);
    // Every update logged once through the kill.
    const logged = readFileSync(join(dir, 'runs', 'mesh-echo', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { update: number }).update);
    expect(logged).toEqual(Array.from({ length: final.totalUpdates }, (_, k) => k + 1));
    console.log(
      JSON.stringify({
        fault: 'env replica SIGKILL',
        updatesAtKill: before.updates,
        chunksFromKilledAfterKill: final.chunksByActor['env-1-a0'] - killedAt,
        updates: final.updates,
        success: final.success,
        policyLagMean: final.policyLagMean,
      }),
    );
  });

  it('continues a run on a new learner process after the learner is stopped mid-run', async () => {
    const shipped = parseYaml(readFileSync(join(ROOT, 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
    const config = JSON.stringify({ ...shipped, train: { ...shipped.train, checkpoint_every: 8 } });
    await new Promise<Run>((resolve, reject) =>
      learner.startRun({ config, runId: 'mesh-restart' }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    await until(async () => ((await getRun('mesh-restart')).updates >= 12 ? true : undefined), 60_000, '12 updates');
    await stopChild(children.learner, 'SIGTERM'); // hands the run over
    await startLearner(); // takes it over from its last checkpoint
    const resumed = await getRun('mesh-restart');
    expect(resumed.state).toBe(RunState.RUN_STATE_RUNNING);
    // The update the new learner resumed from, not its live counter (it trains on at once).
    expect(resumed.resumedFromUpdate % 8).toBe(0);
    expect(resumed.resumedFromUpdate).toBeGreaterThanOrEqual(8);
    const final = await ended('mesh-restart');
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(final.updates).toBe(final.totalUpdates);
    expect(final.success).toBeGreaterThanOrEqual(0.9);
  });

  it('wrote one trace that crosses env, policy and learner', async () => {
    // Its own short run: the spans checked here do not depend on the tests above.
    const shipped = parseYaml(readFileSync(join(ROOT, 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
    const config = JSON.stringify({ ...shipped, train: { ...shipped.train, total_env_steps: 256 } });
    await new Promise<Run>((resolve, reject) =>
      learner.startRun({ config, runId: 'mesh-trace' }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    expect((await ended('mesh-trace')).state).toBe(RunState.RUN_STATE_COMPLETED);
    // Span processors flush in batches; give the services a moment to write theirs.
    await new Promise((r) => setTimeout(r, 1500));
    const spans = readFileSync(join(dir, 'spans.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { trace_id: string; service: string; name: string });
    const services = new Map<string, Set<string>>();
    for (const s of spans) {
      if (!services.has(s.trace_id)) services.set(s.trace_id, new Set());
      services.get(s.trace_id)!.add(s.service);
    }
    const crossing = [...services.values()].filter((set) => set.has('rlmesh-env') && set.has('rlmesh-policy') && set.has('rlmesh-learner'));
    expect(crossing.length).toBeGreaterThan(0);
  });
});
