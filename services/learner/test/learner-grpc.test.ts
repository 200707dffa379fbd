/**
 * LearnerService over real gRPC on loopback (bus in memory): runs start, report and stop; bad
 * requests get INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS naming the field, and the service stays up.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { createLogger, decodeAnnouncement, keys, MemoryBus, objects, parsePolicyPointer } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLearnerServer } from '../src/mesh/grpc';

describe('LearnerService over gRPC', () => {
  const bus = new MemoryBus();
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-learner-'));
  let server: Awaited<ReturnType<typeof startLearnerServer>>;
  let client: LearnerServiceClient;
  const call = <Req, Res>(method: (r: Req, cb: (e: ServiceError | null, r: Res) => void) => unknown, req: Req) =>
    new Promise<Res>((resolve, reject) => method.call(client, req, (e, r) => (e ? reject(e) : resolve(r))));
  const start = (config: string, runId = '') => call<{ config: string; runId: string }, Run>(client.startRun, { config, runId });
  const expectStatus = async (p: Promise<unknown>, code: status, field: string) => {
    const err = (await p.then(
      () => null,
      (e) => e,
    )) as ServiceError | null;
    expect(err, `expected ${status[code]}`).not.toBeNull();
    expect(err!.code).toBe(code);
    expect(err!.details).toContain(field);
  };

  beforeAll(async () => {
    server = await startLearnerServer({ bus, port: 0, outDir: dir, logger: createLogger('learner', 'error') });
    client = new LearnerServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts a run: announces it, publishes policy version 1, and lists it', async () => {
    const config = [
      'env: { id: PatternEcho, num_envs: 64, num_steps: 1, options: { max_episode_steps: 1 } }',
      'model: { id: baby }',
      'algo: { name: reinforce }',
      'train: { total_env_steps: 640 }',
    ].join('\n');
    const run = await start(config, 'echo-1');
    expect(run).toMatchObject({ runId: 'echo-1', state: RunState.RUN_STATE_RUNNING, totalUpdates: 10, policyVersion: 1 });
    const announced = decodeAnnouncement((await bus.kv.get(keys.run('echo-1')))!);
    expect(announced).toMatchObject({ runId: 'echo-1', state: 'running', envId: 'PatternEcho', numEnvs: 64, numSteps: 1 });
    const pointer = parsePolicyPointer((await bus.kv.get(keys.policy('echo-1')))!);
    expect(pointer.version).toBe(1);
    expect(pointer.distribution).toBe('categorical');
    expect(pointer.spec?.numParameters).toBe(116_625);
    expect((await bus.objects.get(pointer.params))!.byteLength).toBe(4 * pointer.spec!.numParameters);
    const list = await call<object, { runs: Run[] }>(client.listRuns, {});
    expect(list.runs.map((r) => r.runId)).toContain('echo-1');
  });

  it('stops a run and announces the end to the actors', async () => {
    const stopped = await call<{ runId: string }, Run>(client.stopRun, { runId: 'echo-1' });
    expect(stopped.state).toBe(RunState.RUN_STATE_STOPPED);
    expect(decodeAnnouncement((await bus.kv.get(keys.run('echo-1')))!).state).toBe('stopped');
    const checkpoint = await bus.objects.get(objects.checkpoint('echo-1', stopped.updates));
    expect(checkpoint?.byteLength).toBeGreaterThan(4 * 116_625);
  });

  it("writes only under its own run root, whatever a config's run.out_dir says", async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'rlmesh-escape-'));
    try {
      const config = `run: { out_dir: ${JSON.stringify(join(elsewhere, '..', '..'))} }\nenv: { id: PatternEcho, num_envs: 4, num_steps: 1 }\ntrain: { total_env_steps: 8 }`;
      await start(config, 'contained');
      await call<{ runId: string }, Run>(client.stopRun, { runId: 'contained' }).catch(() => undefined);
      expect(existsSync(join(dir, 'contained', 'config.json'))).toBe(true);
      expect(JSON.parse(readFileSync(join(dir, 'contained', 'config.json'), 'utf8')).run.out_dir).toBe(dir);
      expect(existsSync(join(elsewhere, '..', '..', 'contained'))).toBe(false);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('answers bad requests with a status naming the field, and stays up', async () => {
    await expectStatus(start('algo: { lr: fast }'), status.INVALID_ARGUMENT, 'algo.lr');
    await expectStatus(start('algo: { name: sarsa }'), status.INVALID_ARGUMENT, 'algo.name');
    await expectStatus(start('algo: { name: ppo, bogus: 1 }'), status.INVALID_ARGUMENT, 'algo.bogus');
    await expectStatus(start('env: { id: CartPole-v1, options: { gravity: 3 } }'), status.INVALID_ARGUMENT, 'env.options.gravity');
    await expectStatus(start('model: { id: nope }'), status.INVALID_ARGUMENT, 'model.id');
    await expectStatus(start('env: { id: Chess }'), status.INVALID_ARGUMENT, 'env.id');
    await expectStatus(start('env: [unclosed'), status.INVALID_ARGUMENT, 'config');
    await expectStatus(start(''), status.INVALID_ARGUMENT, 'config');
    // Runs that could never train are refused up front: a model far beyond memory, and more rows per
    // Act call than the policy service takes.
    await expectStatus(
      start('env: { id: CartPole-v1 }\nmodel: { id: mlp_actor_critic, hidden_dim: 65536, num_layers: 16 }'),
      status.INVALID_ARGUMENT,
      'model: mlp_actor_critic with these options has',
    );
    await expectStatus(
      start('env: { id: CartPole-v1, num_envs: 5000 }\nmesh: { inference: central }'),
      status.INVALID_ARGUMENT,
      'env.num_envs',
    );
    await expectStatus(start(`# ${'x'.repeat(300_000)}\nenv: { id: PatternEcho }`), status.INVALID_ARGUMENT, 'config');
    await expectStatus(start('{}', 'bad run id!'), status.INVALID_ARGUMENT, 'run_id');
    await expectStatus(start('{}', '../escape'), status.INVALID_ARGUMENT, 'run_id');
    await expectStatus(start('{}', 'echo-1'), status.ALREADY_EXISTS, 'run_id');
    await expectStatus(call(client.getRun, { runId: 'nope' }), status.NOT_FOUND, 'run_id');
    await expectStatus(call(client.stopRun, { runId: 'nope' }), status.NOT_FOUND, 'run_id');
    const list = await call<object, { runs: Run[] }>(client.listRuns, {});
    expect(list.runs.map((r) => r.runId).sort()).toEqual(['contained', 'echo-1']);
  });
});
