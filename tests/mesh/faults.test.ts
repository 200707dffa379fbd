/**
 * The mesh under the faults the other mesh tests leave out: a real nats-server, learner, policy
 * service and env replica as processes, with central inference (the actors act through the policy
 * service on every step, so losing it stalls them).
 * (a) The policy service is SIGKILLed mid-run and started again a few seconds later on the same
 *     port. The env replica says once, in one log line, that the policy service is unreachable and
 *     once that it is back; the run stalls meanwhile and completes after.
 * (b) The learner is paused (SIGSTOP) for 20 s mid-run and resumed (SIGCONT). The actors wait for it
 *     with bounded work (a few chunks published, RSS flat) and the run completes.
 * Both runs end with metrics.jsonl holding updates 1..N once each, the policy versions on the bus
 * strictly increasing, and a CLI started before the fault (rlmesh train --mesh, rlmesh watch)
 * following the run to its end and exiting 0.
 * RLMESH_PAUSE_MS shortens the learner pause while working on this test; CI runs the full 20 s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { jetstreamManager } from '@nats-io/jetstream';
import { keys, NatsBus, type NatsServer, parsePolicyPointer, startNatsServer, subjects, TRAJ_STREAM } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnService } from '../../packages/cli/src/up';
import { freeUpBase, missingParts, ROOT, stopChild, until } from './helpers';

const missing = missingParts();
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'rlmesh.js');
const CONFIG = join(ROOT, 'configs', 'wmil-pattern-echo.yaml');
const POLICY_DOWN_MS = 4000;
const PAUSE_MS = Number(process.env.RLMESH_PAUSE_MS ?? 20_000);
/** Updates per run (64 episodes each): long enough to put a fault in the middle, short enough for CI. */
const UPDATES = 48;

/** A CLI command as a process: its exit code and what it printed. */
function cli(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  return { child, done: new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr }))) };
}

/** Resident set size of a process, from /proc (Linux), in MB. */
function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

describe.skipIf(missing !== null)('mesh faults: the policy service killed, the learner paused', () => {
  let nats: NatsServer;
  let dir: string;
  let bus: NatsBus;
  let learner: LearnerServiceClient;
  let learnerAt: string;
  let policyPort: number;
  const children: Record<string, ChildProcess> = {};
  const clis: ChildProcess[] = [];
  /** The env replica's log lines (JSON, one per line). */
  let envLog = '';
  const env = { ...process.env, RLMESH_LOG_LEVEL: 'info' };
  const common = () => ['--nats', nats.url];

  const startPolicy = async () => {
    const p = await spawnService('policy', ['policy', '--port', String(policyPort), ...common(), '--seed', '1'], {
      ...env,
      RLMESH_LOG_LEVEL: 'warn',
    });
    children.policy = p.child;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-faults-'));
    bus = await NatsBus.connect({ servers: nats.url, name: 'faults-test' });
    // Below the ephemeral range: the port must still be free when the policy service comes back on it.
    policyPort = await freeUpBase(1);
    const l = await spawnService('learner', ['learner', '--port', '0', ...common(), '--out-dir', join(dir, 'runs')], {
      ...env,
      RLMESH_LOG_LEVEL: 'warn',
    });
    children.learner = l.child;
    learnerAt = `127.0.0.1:${l.ready.port}`;
    learner = new LearnerServiceClient(learnerAt, credentials.createInsecure());
    await startPolicy();
    const e = await spawnService(
      'env-0',
      ['env', '--port', '0', ...common(), '--policy', `127.0.0.1:${policyPort}`, '--replica-id', 'env-0'],
      env,
      { stderr: 'pipe' },
    );
    e.child.stderr!.on('data', (d) => (envLog += d));
    children.env = e.child;
  }, 60_000);

  afterAll(async () => {
    learner?.close();
    for (const c of clis) await stopChild(c, 'SIGKILL');
    if (children.learner) children.learner.kill('SIGCONT');
    await Promise.all(Object.values(children).map((c) => stopChild(c)));
    await bus?.close();
    await nats?.stop();
    if (dir && !process.env.KEEP_MESH_DIR) rmSync(dir, { recursive: true, force: true });
  });

  const getRun = (runId: string) =>
    new Promise<Run>((resolve, reject) => learner.getRun({ runId }, (err, r) => (err ? reject(err) : resolve(r))));
  const updatesReach = (runId: string, n: number) =>
    until(
      async () => {
        const r = await getRun(runId).catch(() => undefined);
        return r && r.updates >= n ? r : undefined;
      },
      30_000,
      `${n} updates of ${runId}`,
    );
  /** Every policy version published for a run, in the order the bus delivers them. */
  const versionsOf = async (runId: string) => {
    const versions: number[] = [];
    const watch = await bus.kv.watch(keys.policy(runId), (_k, v) => v && versions.push(parsePolicyPointer(v).version));
    return { versions, stop: () => watch.stop() };
  };
  /** When each update count was first seen on a WatchRun stream. */
  const watchTimes = (runId: string) => {
    const seen: { at: number; updates: number }[] = [];
    const stream = learner.watchRun({ runId });
    stream.on('data', (r: Run) => seen.push({ at: Date.now(), updates: r.updates }));
    stream.on('error', () => undefined);
    return seen;
  };
  /** Chunks stored for a run so far. */
  const chunksStored = async (runId: string) => {
    const jsm = await jetstreamManager(bus.nc);
    return (await jsm.streams.getMessage(TRAJ_STREAM, { last_by_subj: subjects.trajectories(runId) }))?.seq ?? 0;
  };
  /** The run completed with every update logged once and versions moving forward only. */
  const expectCleanEnd = (runId: string, final: Run, versions: number[]) => {
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(final.error).toBe('');
    expect(final.updates).toBe(UPDATES);
    const logged = readFileSync(join(dir, 'runs', runId, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { update: number }).update);
    expect(logged).toEqual(Array.from({ length: UPDATES }, (_, k) => k + 1));
    expect(versions.length).toBeGreaterThan(2);
    for (let k = 1; k < versions.length; k++) expect(versions[k]).toBeGreaterThan(versions[k - 1]);
    expect(versions.at(-1)).toBe(final.policyVersion);
  };
  const followedToEnd = (out: { code: number | null; stdout: string; stderr: string }) => {
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`RUN_STATE_COMPLETED: ${UPDATES} updates`));
    expect(out.stderr).not.toMatch(/\n\s+at /);
  };
  const trainArgs = (runId: string) => [
    'train',
    '--mesh',
    CONFIG,
    '--run-id',
    runId,
    '--learner',
    learnerAt,
    '--train.total_env_steps',
    String(64 * UPDATES),
    '--train.checkpoint_every',
    '8',
    '--mesh.inference',
    'central',
  ];

  it('policy service SIGKILLed mid-run: the actors say so once, and the run resumes when it is back', async () => {
    const RUN = 'faults-policy';
    const { versions, stop } = await versionsOf(RUN);
    const train = cli(trainArgs(RUN));
    clis.push(train.child);
    await until(() => getRun(RUN).catch(() => undefined), 30_000, 'the run to start');
    const seen = watchTimes(RUN);
    const before = await updatesReach(RUN, 8);
    expect(before.updates).toBeLessThan(UPDATES);

    const logBefore = envLog.length;
    const killedAt = Date.now();
    await stopChild(children.policy, 'SIGKILL');
    const atKill = (await getRun(RUN)).updates;
    await new Promise((r) => setTimeout(r, killedAt + POLICY_DOWN_MS - Date.now()));
    // Stalled: at most the chunk already published trains while nobody can act.
    const whileDown = (await getRun(RUN)).updates;
    expect(whileDown - atKill).toBeLessThanOrEqual(1);
    const downLog = envLog.slice(logBefore);
    const restartedAt = Date.now();
    await startPolicy();
    const policyReadyMs = Date.now() - restartedAt;

    followedToEnd(await train.done);
    await stop();
    expectCleanEnd(RUN, await getRun(RUN), versions);

    // The replica said it once when the policy service went and once when it came back, one JSON line
    // each, no stack trace.
    const lines = envLog
      .slice(logBefore)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: string; msg: string; address?: string; error?: string });
    const gone = lines.filter((l) => l.msg.startsWith('policy service unreachable'));
    const back = lines.filter((l) => l.msg.startsWith('policy service is back'));
    expect(gone, downLog).toHaveLength(1);
    expect(gone[0].level).toBe('warn');
    expect(gone[0].address).toBe(`127.0.0.1:${policyPort}`);
    expect(downLog).toContain(gone[0].msg);
    expect(back, envLog.slice(logBefore)).toHaveLength(1);
    // Not a warning per failed call: the one line above is the only one.
    expect(lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual(gone);
    expect(envLog).not.toMatch(/\n\s+at /);
    expect(children.env.exitCode).toBeNull();

    const firstAfter = seen.find((s) => s.at > restartedAt && s.updates > whileDown)?.at ?? Number.NaN;
    console.log(
      JSON.stringify({
        fault: 'policy SIGKILL',
        updatesAtKill: atKill,
        downMs: restartedAt - killedAt,
        policyReadyMs,
        firstUpdateAfterRestartMs: firstAfter - restartedAt,
        replicaLogLines: lines.length,
      }),
    );
  }, 60_000);

  it('learner paused 20 s with SIGSTOP: the actors wait with bounded work, and the run completes after SIGCONT', async () => {
    const RUN = 'faults-pause';
    const { versions, stop } = await versionsOf(RUN);
    const train = cli(trainArgs(RUN));
    clis.push(train.child);
    await until(() => getRun(RUN).catch(() => undefined), 30_000, 'the run to start');
    const watch = cli(['watch', RUN, '--learner', learnerAt]);
    clis.push(watch.child);
    const seen = watchTimes(RUN);
    await updatesReach(RUN, 8);

    const envPid = children.env.pid!;
    const rssBefore = rssMb(envPid);
    const chunksAtPause = await chunksStored(RUN);
    const atPause = (await getRun(RUN)).updates;
    const pausedAt = Date.now();
    children.learner.kill('SIGSTOP');
    let rssPeak = rssBefore;
    while (Date.now() - pausedAt < PAUSE_MS) {
      await new Promise((r) => setTimeout(r, 500));
      rssPeak = Math.max(rssPeak, rssMb(envPid));
    }
    const chunksDuringPause = (await chunksStored(RUN)) - chunksAtPause;
    const resumedAt = Date.now();
    children.learner.kill('SIGCONT');

    const [t, w] = await Promise.all([train.done, watch.done]);
    followedToEnd(t);
    followedToEnd(w);
    await stop();
    expectCleanEnd(RUN, await getRun(RUN), versions);

    // With nobody consuming, an actor keeps its one chunk in flight and, after 10 s without a
    // progress report, counts it lost and publishes one more: a few chunks, not a pile.
    expect(chunksDuringPause).toBeLessThanOrEqual(2 + Math.ceil(PAUSE_MS / 10_000));
    expect(children.env.exitCode).toBeNull();
    expect(rssPeak - rssBefore).toBeLessThan(50);
    const firstAfter = seen.find((s) => s.at > resumedAt && s.updates > atPause)?.at ?? Number.NaN;
    console.log(
      JSON.stringify({
        fault: 'learner SIGSTOP',
        updatesAtPause: atPause,
        pausedMs: resumedAt - pausedAt,
        chunksPublishedWhilePaused: chunksDuringPause,
        envRssBeforeMb: Math.round(rssBefore),
        envRssPeakMb: Math.round(rssPeak),
        firstUpdateAfterResumeMs: firstAfter - resumedAt,
      }),
    );
  }, 75_000);
});
