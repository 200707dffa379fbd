/**
 * The mesh through a NATS outage: a real nats-server (fixed port, its own store directory), learner,
 * policy and an env replica as processes. A run is started, nats-server is stopped for 60 s mid-run
 * and started again on the same port and store (its JetStream state survives). The run pauses while
 * NATS is down, goes on when it is back and completes: metrics.jsonl holds every update exactly once,
 * the policy versions published are strictly increasing, a WatchRun stream opened before the outage
 * ends with the final state, and the actors stop publishing once the run is over. A second run,
 * stopped while NATS is down, ends for its watchers at once and is announced stopped (its actors
 * stop) once NATS is back.
 * RLMESH_OUTAGE_MS shortens the outage while working on this test; CI runs the full 60 s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { jetstreamManager } from '@nats-io/jetstream';
import { decodeAnnouncement, findNatsServer, keys, NatsBus, parsePolicyPointer, subjects, TRAJ_STREAM } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { spawnService } from '../../packages/cli/src/up';
import { freeUpBase, missingParts, ROOT, stopChild, until } from './helpers';

const missing = missingParts();
const OUTAGE_MS = Number(process.env.RLMESH_OUTAGE_MS ?? 60_000);
const RUN = 'outage';
/** Stopped while NATS is down. */
const STOPPED = 'outage-stopped';

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = new Socket();
    const settle = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => settle(true));
    s.once('error', () => settle(false));
    s.connect(port, '127.0.0.1');
  });

describe.skipIf(missing !== null)('mesh: a 60 s NATS outage mid-run', () => {
  let dir: string;
  let storeDir: string;
  let port: number;
  let nats: ChildProcess | undefined;
  let bus: NatsBus | undefined;
  /** Gives up after 1 s of retries: a bus call does not wait for NATS forever. */
  let impatient: NatsBus | undefined;
  let learner: LearnerServiceClient;
  const children: ChildProcess[] = [];

  /** nats-server on the same port and store every time: a restart keeps streams, consumers and KV. */
  const startNats = async () => {
    const child = spawn(findNatsServer()!, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
    nats = child;
    await until(
      async () =>
        child.exitCode !== null ? Promise.reject(new Error(`nats-server exited: ${stderr}`)) : (await listening(port)) || undefined,
      10_000,
      'nats-server to listen',
    );
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-outage-'));
    storeDir = join(dir, 'nats');
    // Below the ephemeral range: the port must still be free when NATS restarts on it a minute later.
    port = await freeUpBase(1);
    await startNats();
    const url = `nats://127.0.0.1:${port}`;
    const env = { ...process.env, RLMESH_LOG_LEVEL: process.env.RLMESH_LOG_LEVEL ?? 'info' };
    const common = ['--port', '0', '--nats', url];
    const l = await spawnService('learner', ['learner', ...common, '--out-dir', join(dir, 'runs')], env);
    const p = await spawnService('policy', ['policy', ...common, '--seed', '1'], env);
    const e = await spawnService('env-0', ['env', ...common, '--policy', `127.0.0.1:${p.ready.port}`, '--replica-id', 'env-0'], env);
    children.push(l.child, p.child, e.child);
    learner = new LearnerServiceClient(`127.0.0.1:${l.ready.port}`, credentials.createInsecure());
    bus = await NatsBus.connect({ servers: url, name: 'outage-test' });
    impatient = await NatsBus.connect({ servers: url, name: 'outage-test-impatient', retryForMs: 1000 });
  }, 90_000);

  afterAll(async () => {
    learner?.close();
    await bus?.close();
    await impatient?.close();
    await Promise.all(children.map((c) => stopChild(c)));
    if (nats) await stopChild(nats);
    if (dir && !process.env.KEEP_MESH_DIR) rmSync(dir, { recursive: true, force: true });
  });

  const getRun = (runId = RUN) =>
    new Promise<Run>((resolve, reject) => learner.getRun({ runId }, (err, r) => (err ? reject(err) : resolve(r))));
  const startRun = (runId: string, config: string) =>
    new Promise<Run>((resolve, reject) => learner.startRun({ config, runId }, (err, r) => (err ? reject(err) : resolve(r))));
  /** Every Run a WatchRun stream sends, with when, and when the stream ends. */
  const watch = (runId: string) => {
    const seen: { at: number; run: Run }[] = [];
    const stream = learner.watchRun({ runId });
    stream.on('data', (run: Run) => seen.push({ at: Date.now(), run }));
    const ended = new Promise<number>((resolve, reject) => {
      stream.on('end', () => resolve(Date.now()));
      stream.on('error', reject);
    });
    return { seen, ended };
  };
  /** Sequence of the newest trajectory chunk stored for a run. */
  const lastChunk = async (runId: string) => {
    const jsm = await jetstreamManager(bus!.nc);
    return (await jsm.streams.getMessage(TRAJ_STREAM, { last_by_subj: subjects.trajectories(runId) }))?.seq ?? 0;
  };
  /** True once no chunk of the run has been published for 3 s. */
  const quiet = async (runId: string) => {
    const before = await lastChunk(runId);
    await new Promise((r) => setTimeout(r, 3000));
    return (await lastChunk(runId)) === before;
  };

  it('pauses the run while NATS is down and completes it after, with no update lost or repeated', async () => {
    const shipped = parseYaml(readFileSync(join(ROOT, 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
    const config = JSON.stringify({ ...shipped, train: { ...shipped.train, total_env_steps: 2048, checkpoint_every: 8 } });
    await startRun(RUN, config);
    // What a client and a policy replica see: the run's states, and the policy versions on the bus.
    const { seen: watched, ended: streamEnded } = watch(RUN);
    const versions: number[] = [];
    const policyWatch = await bus!.kv.watch(keys.policy(RUN), (_k, v) => v && versions.push(parsePolicyPointer(v).version));
    // Long enough never to complete here: it is stopped during the outage.
    await startRun(STOPPED, JSON.stringify({ ...shipped, train: { ...shipped.train, total_env_steps: 64 * 100_000 } }));
    const stoppedWatch = watch(STOPPED);

    await until(
      async () => ((await getRun()).updates >= 8 && (await getRun(STOPPED)).updates >= 2 ? true : undefined),
      60_000,
      'both runs training',
    );
    const stoppedAt = Date.now();
    await stopChild(nats!);
    const atStop = (await getRun()).updates;
    // A bus call made while NATS is down waits for it; one that retries no longer than retryForMs fails.
    const waitingPut = bus!.kv.put('outage.marker', new TextEncoder().encode('written during the outage'));
    const t0 = Date.now();
    await expect(impatient!.kv.get('outage.marker')).rejects.toThrow();
    // One request timeout (5 s) plus the 1 s of retries.
    expect(Date.now() - t0).toBeLessThan(8000);
    await new Promise((r) => setTimeout(r, stoppedAt + Math.min(2000, OUTAGE_MS / 4) - Date.now()));
    const stopRequestedAt = Date.now();
    const stopping = new Promise<Run>((resolve, reject) =>
      learner.stopRun({ runId: STOPPED }, (err, r) => (err ? reject(err) : resolve(r))),
    );
    // Its watchers are told while NATS is still down.
    const stoppedStreamEnd = await stoppedWatch.ended;
    expect(stoppedWatch.seen.at(-1)?.run.state).toBe(RunState.RUN_STATE_STOPPED);
    await new Promise((r) => setTimeout(r, stoppedAt + OUTAGE_MS - Date.now()));
    const beforeRestart = await getRun();
    // Paused, not failed: the learner trains at most the chunks it already held, then waits for the bus.
    expect(beforeRestart.state).toBe(RunState.RUN_STATE_RUNNING);
    expect(beforeRestart.updates - atStop).toBeLessThanOrEqual(2);
    const restartedAt = Date.now();
    expect(stoppedStreamEnd).toBeLessThan(restartedAt);
    await startNats();

    // The stopped run's end reaches the bus once NATS is back, and its actors stop.
    expect((await stopping).state).toBe(RunState.RUN_STATE_STOPPED);
    await waitingPut;
    expect(new TextDecoder().decode((await bus!.kv.get('outage.marker')) ?? new Uint8Array())).toBe('written during the outage');
    const announced = await bus!.kv.get(keys.run(STOPPED));
    expect(announced && decodeAnnouncement(announced).state).toBe('stopped');

    const final = await until(
      async () => {
        const r = await getRun();
        return r.state === RunState.RUN_STATE_RUNNING ? undefined : r;
      },
      60_000,
      'the run to end after NATS came back',
    );
    await streamEnded;
    await policyWatch.stop();
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(final.error).toBe('');
    expect(final.updates).toBe(final.totalUpdates);
    // Every chunk trained on once: a redelivery of one whose ack the outage lost is not trained again.
    expect(final.chunksConsumed).toBe(final.updates);

    // metrics.jsonl: updates 1..total, each exactly once.
    const logged = readFileSync(join(dir, 'runs', RUN, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { update: number }).update);
    expect(logged).toEqual(Array.from({ length: final.totalUpdates }, (_, k) => k + 1));

    // Policy versions seen on the bus across the outage: strictly increasing, up to the final one.
    expect(versions.length).toBeGreaterThan(2);
    for (let k = 1; k < versions.length; k++) expect(versions[k]).toBeGreaterThan(versions[k - 1]);
    expect(versions.at(-1)).toBe(final.policyVersion);

    // The watcher was told the end: its stream ended with the final state.
    expect(watched.at(-1)?.run.state).toBe(RunState.RUN_STATE_COMPLETED);

    // The actors stopped playing both runs once they were over: no chunk is published after the end settles.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await Promise.all([quiet(RUN), quiet(STOPPED)])).toEqual([true, true]);

    const resumedAt = watched.find((w) => w.at > restartedAt && w.run.updates > beforeRestart.updates)?.at ?? Number.NaN;
    console.log(
      JSON.stringify({
        outageMs: restartedAt - stoppedAt,
        stopRunToWatchEndMs: stoppedStreamEnd - stopRequestedAt,
        updatesAtStop: atStop,
        updatesDuringOutage: beforeRestart.updates - atStop,
        firstUpdateAfterRestartMs: resumedAt - restartedAt,
        pausedMs: resumedAt - stoppedAt,
        endedAfterRestartMs: (watched.at(-1)?.at ?? Number.NaN) - restartedAt,
        versionsSeen: versions.length,
        finalVersion: final.policyVersion,
      }),
    );
  }, 240_000);
});
