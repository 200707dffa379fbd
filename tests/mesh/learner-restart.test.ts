/**
 * Losing the learner: a real nats-server, learner, policy and env replica as processes; a run started
 * with `rlmesh train --mesh` and followed by `rlmesh watch`; the learner SIGKILLed mid-run (no
 * hand-over: its lease is left to expire) and a new learner started on the same port and run root.
 * The new learner waits out the dead one's lease, takes the run over from its last checkpoint, and
 * the run completes with every update logged once (metrics.jsonl: 1..N), policy versions strictly
 * increasing, and both CLIs following it to the end through the gap. Then the CLIs' failure lines:
 * a run that does not exist, and a learner that never returns.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { keys, NatsBus, type NatsServer, parsePolicyPointer, type Subscription, startNatsServer } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnService } from '../../packages/cli/src/up';
import { missingParts, ROOT, stopChild, until } from './helpers';

const missing = missingParts();
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'rlmesh.js');
const RUN = 'restart-kill';

/** A CLI command as a process: its exit code and what it printed. */
function cli(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  return { child, done: new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr }))) };
}

describe.skipIf(missing !== null)('losing the learner: SIGKILL mid-run, a new learner takes the run over', () => {
  let nats: NatsServer;
  let dir: string;
  let bus: NatsBus;
  let pointerWatch: Subscription | undefined;
  const children: Record<string, ChildProcess> = {};
  const clis: ChildProcess[] = [];
  let learnerPort = 0;
  let client: LearnerServiceClient;
  const env = { ...process.env, RLMESH_LOG_LEVEL: 'warn' };
  const common = () => ['--nats', nats.url];
  const startLearner = async (port: number) => {
    const l = await spawnService('learner', ['learner', '--port', String(port), ...common(), '--out-dir', join(dir, 'runs')], env);
    children.learner = l.child;
    return l.ready.port;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-restart-'));
    bus = await NatsBus.connect({ servers: nats.url, name: 'learner-restart-test' });
    learnerPort = await startLearner(0);
    client = new LearnerServiceClient(`127.0.0.1:${learnerPort}`, credentials.createInsecure());
    const p = await spawnService('policy', ['policy', '--port', '0', ...common(), '--seed', '1'], env);
    children.policy = p.child;
    const e = await spawnService(
      'env-0',
      ['env', '--port', '0', ...common(), '--policy', `127.0.0.1:${p.ready.port}`, '--replica-id', 'env-0'],
      env,
    );
    children.env = e.child;
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await pointerWatch?.stop();
    for (const c of clis) await stopChild(c, 'SIGKILL');
    await Promise.all(Object.values(children).map((c) => stopChild(c)));
    await bus?.close();
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const getRun = () => new Promise<Run>((resolve, reject) => client.getRun({ runId: RUN }, (err, r) => (err ? reject(err) : resolve(r))));

  it('completes with no lost or doubled update, versions moving forward, and both CLIs following it to the end', async () => {
    const versions: number[] = [];
    pointerWatch = await bus.kv.watch(keys.policy(RUN), (_k, v) => {
      if (v) versions.push(parsePolicyPointer(v).version);
    });
    const learnerAt = `127.0.0.1:${learnerPort}`;
    const config = join(ROOT, 'configs', 'wmil-pattern-echo.yaml');
    // 128 updates of 64 episodes: long enough to kill the learner well before the end.
    const train = cli([
      'train',
      '--mesh',
      config,
      '--run-id',
      RUN,
      '--learner',
      learnerAt,
      '--reconnect-timeout',
      '45',
      '--train.total_env_steps',
      '8192',
      '--train.checkpoint_every',
      '8',
    ]);
    clis.push(train.child);
    await until(() => getRun().catch(() => undefined), 30_000, 'the run to start');
    const watch = cli(['watch', RUN, '--learner', learnerAt, '--reconnect-timeout', '45']);
    clis.push(watch.child);

    const before = await until(
      async () => {
        const r = await getRun();
        return r.updates >= 24 ? r : undefined;
      },
      30_000,
      '24 updates',
    );
    expect(before.updates).toBeLessThan(before.totalUpdates);
    await stopChild(children.learner, 'SIGKILL');
    const killedAt = Date.now();
    await startLearner(learnerPort);

    const resumed = await until(() => getRun().catch(() => undefined), 30_000, 'the new learner to take the run over');
    const tookOverMs = Date.now() - killedAt;
    // It waited for the dead learner's lease (10 s from its last renewal) to expire.
    expect(Date.now() - killedAt).toBeGreaterThan(5_000);
    expect(resumed.resumedFromUpdate % 8).toBe(0);
    expect(resumed.resumedFromUpdate).toBeGreaterThanOrEqual(16);

    const [t, w] = await Promise.all([train.done, watch.done]);
    expect(t.code, t.stderr).toBe(0);
    expect(w.code, w.stderr).toBe(0);
    for (const out of [t, w]) {
      // One line about the gap, and no stack trace.
      expect(out.stderr.split('\n').filter((l) => l.includes('reconnecting'))).toHaveLength(1);
      expect(out.stderr).not.toMatch(/\n\s+at /);
      expect(out.stdout).toMatch(/RUN_STATE_COMPLETED: 128 updates/);
    }

    const final = await getRun();
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(final.updates).toBe(128);
    const updates = readFileSync(join(dir, 'runs', RUN, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { update: number; env_steps: number });
    expect(updates.map((u) => u.update)).toEqual(Array.from({ length: 128 }, (_, i) => i + 1));
    // The counters came back with the checkpoint: env steps never restart from zero.
    expect(updates.every((u) => u.env_steps === u.update * 64)).toBe(true);
    expect(versions.length).toBeGreaterThan(2);
    for (let k = 1; k < versions.length; k++) expect(versions[k]).toBeGreaterThan(versions[k - 1]);
    console.log(
      JSON.stringify({
        fault: 'learner SIGKILL',
        updatesBeforeKill: before.updates,
        tookOverMs,
        resumedFromUpdate: resumed.resumedFromUpdate,
        // Trained again after the take-over (they were past the last checkpoint), logged once.
        updatesRedone: before.updates - resumed.resumedFromUpdate,
        versionsSeen: versions.length,
      }),
    );
  }, 90_000);

  it('rlmesh watch: one line and exit 1 for a run the learner does not have, and for a learner that never comes back', async () => {
    const learnerAt = `127.0.0.1:${learnerPort}`;
    const unknown = await cli(['watch', 'no-such-run', '--learner', learnerAt]).done;
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim().split('\n')).toEqual([`rlmesh watch: the learner at ${learnerAt} has no run "no-such-run"`]);

    await stopChild(children.learner, 'SIGKILL');
    const t0 = Date.now();
    const gone = await cli(['watch', RUN, '--learner', learnerAt, '--reconnect-timeout', '2']).done;
    expect(gone.code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(15_000);
    const lines = gone.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/reconnecting for up to 2 s/);
    expect(lines[1]).toMatch(/did not answer for 2 s/);
    expect(lines).toHaveLength(2);

    const usage = await cli(['watch', RUN, '--reconnect-timeout', 'soon']).done;
    expect(usage.code).toBe(2);
    expect(usage.stderr.trim()).toBe('rlmesh: --reconnect-timeout: must be a positive number of seconds, got "soon"');
  }, 30_000);
});
