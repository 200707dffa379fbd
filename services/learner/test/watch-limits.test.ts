/**
 * WatchRun under many watchers: each stream gets at most one state per WATCH_INTERVAL_MS and always
 * the final one, and a learner streams at most MAX_WATCHERS at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import { createLogger, MemoryBus } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_WATCHERS, startLearnerServer, WATCH_INTERVAL_MS } from '../src/mesh/grpc';

describe('WatchRun limits', () => {
  const bus = new MemoryBus();
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-watch-'));
  const logger = createLogger('test', 'error');
  const unusedPolicy: PolicyClient = { act: () => Promise.reject(new Error('these runs use local inference')) };
  const replica = new EnvReplica({ replicaId: 'r', bus, policy: unusedPolicy, logger });
  let server: Awaited<ReturnType<typeof startLearnerServer>>;
  let client: LearnerServiceClient;
  afterAll(async () => {
    client?.close();
    await server?.shutdown();
    await replica.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('throttles each watcher, sends the final state, and refuses watchers past the cap', async () => {
    await replica.start();
    server = await startLearnerServer({ bus, port: 0, outDir: dir, logger });
    client = new LearnerServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    const config = [
      'env: { id: PatternEcho, num_envs: 16, num_steps: 1 }',
      'model: { id: baby }',
      'algo: { name: reinforce }',
      'train: { total_env_steps: 6400 }',
      'mesh: { inference: local }',
    ].join('\n');
    await new Promise<Run>((resolve, reject) => client.startRun({ config, runId: 'watched' }, (e, r) => (e ? reject(e) : resolve(r))));
    const t0 = Date.now();
    const streams = Array.from({ length: MAX_WATCHERS }, () => {
      const states: Run[] = [];
      const call = client.watchRun({ runId: 'watched' });
      call.on('data', (r: Run) => states.push(r));
      return { states, ended: new Promise<void>((resolve, reject) => call.on('end', resolve).on('error', reject)) };
    });
    await new Promise((r) => setTimeout(r, 300));
    const refused = await new Promise<ServiceError>((resolve) => {
      const call = client.watchRun({ runId: 'watched' });
      call.on('data', () => undefined);
      call.on('error', resolve);
    });
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/^run_id: this learner already streams 64 watchers/);
    await Promise.all(streams.map((s) => s.ended));
    const seconds = (Date.now() - t0) / 1000;
    for (const { states } of streams) {
      expect(states.at(-1)?.state).toBe(RunState.RUN_STATE_COMPLETED);
      expect(states.at(-1)?.updates).toBe(400);
      // At most one state per interval, plus the first and the last.
      expect(states.length).toBeLessThanOrEqual(Math.ceil((seconds * 1000) / WATCH_INTERVAL_MS) + 2);
    }
  });
});
