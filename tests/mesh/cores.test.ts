/**
 * The mesh's cores in one process: LearnerCore, an EnvReplica with its actors, and the policy
 * service over real gRPC on loopback, joined by the in-memory bus. PatternEcho trains through them
 * as it does through the NATS mesh, and an in-memory span exporter collects one trace that follows
 * a chunk from the env actor through the policy service to the learner.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { EnvReplica, GrpcPolicyClient } from '@rlmesh/env';
import { LearnerCore } from '@rlmesh/learner';
import { createLogger, MemoryBus, startTelemetry, type Telemetry } from '@rlmesh/mesh';
import { startPolicyServer } from '@rlmesh/policy';
import { type Run, RunState } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

describe('mesh cores on the in-memory bus', () => {
  const exporter = new InMemorySpanExporter();
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-cores-'));
  const logger = createLogger('test', 'error');
  let telemetry: Telemetry;
  const bus = new MemoryBus();
  let policy: Awaited<ReturnType<typeof startPolicyServer>>;
  let client: GrpcPolicyClient;
  let replica: EnvReplica;
  let learner: LearnerCore;

  beforeAll(async () => {
    telemetry = startTelemetry({ serviceName: 'rlmesh-test', spanExporters: [exporter] });
    // A seeded sampler: with one actor the whole run is reproducible.
    policy = await startPolicyServer({ bus, port: 0, logger, seed: 1 });
    client = new GrpcPolicyClient(`127.0.0.1:${policy.port}`);
    replica = new EnvReplica({ replicaId: 'r0', bus, policy: client, logger });
    await replica.start();
    learner = new LearnerCore({ bus, logger, outDir: dir });
  });

  afterAll(async () => {
    await replica?.stop();
    client?.close();
    await learner?.close();
    await policy?.shutdown();
    await telemetry?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('trains PatternEcho to >= 90% success', async () => {
    const config = readFileSync(join(__dirname, '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8');
    const run = await learner.startRun(config, 'cores-echo');
    let last: Run = run;
    await learner.watchRun(run.runId, (r) => (last = r));
    expect(last.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(last.success).toBeGreaterThanOrEqual(0.9);
    expect(last.chunksByActor['r0-a0']).toBeGreaterThan(0);
  });

  it('plays multi-step episodes and moves the actors up the curriculum the learner announces', async () => {
    const config = [
      'env: { id: SequenceNext, num_envs: 64, num_steps: 2, options: { max_episode_steps: 2 } }',
      'model: { id: baby }',
      'algo: { name: reinforce, lr: 2.0e-3, baseline: value }',
      'train: { total_env_steps: 16384 }',
    ].join('\n');
    const run = await learner.startRun(config, 'cores-sequence');
    let last: Run = run;
    await learner.watchRun(run.runId, (r) => (last = r));
    expect(last.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(last.chunksDropped).toBe(0);
    expect(last.level).toBeGreaterThanOrEqual(1);
    // The chunk levels the learner logged: the actors played the level it announced.
    const levels = readFileSync(join(dir, 'cores-sequence', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { level: number }).level);
    expect(levels[0]).toBe(0);
    expect(levels.at(-1)).toBe(last.level);
  });

  it('collects one trace that crosses env, policy and learner', async () => {
    // Its own short run, so that the spans checked here do not depend on the tests above.
    exporter.reset();
    const shipped = parseYaml(readFileSync(join(__dirname, '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
    const config = JSON.stringify({ ...shipped, train: { ...shipped.train, total_env_steps: 256 } });
    const run = await learner.startRun(config, 'cores-trace');
    await learner.watchRun(run.runId, () => undefined);
    const scopes = new Map<string, Set<string>>();
    for (const s of exporter.getFinishedSpans()) {
      const id = s.spanContext().traceId;
      if (!scopes.has(id)) scopes.set(id, new Set());
      scopes.get(id)!.add(s.instrumentationScope.name);
    }
    const crossing = [...scopes.values()].filter((set) => set.has('rlmesh.env') && set.has('rlmesh.policy') && set.has('rlmesh.learner'));
    expect(crossing.length).toBeGreaterThan(0);
    const names = new Set(exporter.getFinishedSpans().map((s) => s.name));
    for (const name of ['actor.rollout', 'rlmesh.v1.PolicyService/Act', 'learner.train_chunk']) expect(names).toContain(name);
    const server = exporter.getFinishedSpans().find((s) => s.instrumentationScope.name === 'rlmesh.policy');
    expect(server?.name).toBe('rlmesh.v1.PolicyService/Act');
    expect(server?.kind).toBe(SpanKind.SERVER);
  });
});
