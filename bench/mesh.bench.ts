/**
 * The mesh against the embedded trainer, in the same run: PatternEcho episodes/s and PPO CartPole env
 * steps/s trained through the full mesh (nats-server, learner, policy and env as processes, gRPC on
 * loopback) and through the same cores in one process on the in-memory bus; and the trajectory-chunk
 * latency from publish to the consumer's handler on JetStream against the in-memory bus.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { EnvReplica, GrpcPolicyClient } from '@rlmesh/env';
import { LearnerCore, parseRunConfig, trainEmbedded } from '@rlmesh/learner';
import { type Bus, createLogger, encodeRollout, MemoryBus, NatsBus, startNatsServer } from '@rlmesh/mesh';
import { startPolicyServer } from '@rlmesh/policy';
import { LearnerServiceClient, type Run, RunState, TrajectoryChunk } from '@rlmesh/proto';
import { parse as parseYaml } from 'yaml';
import { trainInProcessMesh } from '../packages/cli/src/in-process';
import { spawnService } from '../packages/cli/src/up';
import { stopChild } from '../tests/mesh/helpers';
import { type BenchResult, type BenchSettings, median } from './harness';

const EPISODES = 64 * 256;
/** The shipped PatternEcho config, made longer so that start-up costs do not dominate. */
const SHIPPED = parseYaml(readFileSync(join(__dirname, '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8')) as Record<string, object>;
const CONFIG = { ...SHIPPED, train: { ...SHIPPED.train, total_env_steps: EPISODES, checkpoint_every: 0 } };

async function embedded(dir: string, threads: number): Promise<number> {
  const cfg = parseRunConfig({ ...CONFIG, run: { name: 'embedded', out_dir: dir }, train: { ...CONFIG.train, threads } });
  // One-step episodes: env steps/s = episodes/s.
  return (await trainEmbedded(cfg)).env_steps_per_s;
}

function waitRun(client: LearnerServiceClient, runId: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    let last: Run | undefined;
    const s = client.watchRun({ runId });
    s.on('data', (r: Run) => (last = r));
    s.on('end', () => (last ? resolve(last) : reject(new Error('no run state'))));
    s.on('error', reject);
  });
}

async function meshProcesses(dir: string, actors = 1, config: Record<string, unknown> = CONFIG): Promise<Run> {
  const nats = await startNatsServer();
  const children: ChildProcess[] = [];
  try {
    const env = { ...process.env, RLMESH_LOG_LEVEL: 'error' };
    const common = ['--port', '0', '--nats', nats.url];
    const l = await spawnService('learner', ['learner', ...common, '--out-dir', dir], env);
    children.push(l.child);
    const p = await spawnService('policy', ['policy', ...common], env);
    children.push(p.child);
    children.push(
      (await spawnService('env', ['env', ...common, '--policy', `127.0.0.1:${p.ready.port}`, '--replica-id', 'env-0'], env)).child,
    );
    const client = new LearnerServiceClient(`127.0.0.1:${l.ready.port}`, credentials.createInsecure());
    const run = await new Promise<Run>((resolve, reject) =>
      client.startRun(
        { config: JSON.stringify({ ...config, mesh: { ...(config.mesh as object), actors_per_replica: actors } }), runId: 'bench-mesh' },
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
    const final = await waitRun(client, run.runId);
    client.close();
    return final;
  } finally {
    await Promise.all(children.map((c) => stopChild(c)));
    await nats.stop();
  }
}

async function meshInProcess(dir: string): Promise<Run> {
  const bus = new MemoryBus();
  const logger = createLogger('bench', 'error');
  const policy = await startPolicyServer({ bus, port: 0, logger });
  const client = new GrpcPolicyClient(`127.0.0.1:${policy.port}`);
  const replica = new EnvReplica({ replicaId: 'r0', bus, policy: client, logger });
  await replica.start();
  const learner = new LearnerCore({ bus, logger, outDir: dir });
  const run = await learner.startRun(JSON.stringify(CONFIG), 'bench-cores');
  let last = run;
  await learner.watchRun(run.runId, (r) => (last = r));
  await replica.stop();
  client.close();
  await learner.close();
  await policy.shutdown();
  return last;
}

/** A PatternEcho rollout of 64 one-step episodes as a trajectory chunk, encoded. */
function latencyChunk(): Uint8Array {
  const T = 1;
  const N = 64;
  const S = 8;
  return TrajectoryChunk.encode(
    encodeRollout('lat', {
      actorId: 'a',
      sequence: 0,
      policyVersion: 1,
      level: 0,
      numSteps: T,
      numEnvs: N,
      obsDim: S,
      actionWidth: 1,
      obs: new Float32Array(T * N * S),
      actions: new Int32Array(T * N),
      logProbs: new Float32Array(T * N),
      rewards: { goal: new Float32Array(T * N) },
      terminated: new Uint8Array(T * N),
      truncated: new Uint8Array(T * N).fill(1),
      success: new Uint8Array(T * N),
      nextObs: new Float32Array(T * N * S),
      episodes: [],
    }),
  ).finish();
}

/** Publish one chunk, wait until the consumer's handler has it; repeat. Returns latencies in ms. */
async function chunkLatency(bus: Bus, chunk: Uint8Array, n: number): Promise<number[]> {
  const latencies: number[] = [];
  let arrived: (() => void) | undefined;
  const sub = await bus.consume({ subject: 'rlmesh.traj.lat', durable: 'lat' }, async (m) => {
    m.ack();
    arrived?.();
  });
  for (let i = 0; i < n; i++) {
    const got = new Promise<void>((r) => (arrived = r));
    const t0 = performance.now();
    await bus.publish('rlmesh.traj.lat', chunk);
    await got;
    latencies.push(performance.now() - t0);
  }
  await sub.stop();
  return latencies;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

/** PPO CartPole with the shipped config: the full mesh against the embedded trainer, same seed and length. */
const PPO = parseYaml(readFileSync(join(__dirname, '..', 'configs', 'ppo-cartpole.yaml'), 'utf8')) as Record<string, object>;
const SOLVED = 475;

/** First env_steps at which a run's logged return_mean reached SOLVED, or null. */
function solvedAt(runDir: string): number | null {
  for (const line of readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n')) {
    const r = JSON.parse(line) as { env_steps: number; return_mean: number };
    if (r.return_mean >= SOLVED) return r.env_steps;
  }
  return null;
}

interface PpoVariant {
  name: string;
  mesh: object;
  what: string;
  /** Runs of this variant, each interleaved with an embedded run (median reported). */
  reps: number;
  steps?: number;
}

const PPO_VARIANTS: PpoVariant[] = [
  { name: 'local', mesh: { inference: 'local' }, what: 'local inference, one rollout in flight (lag 0)', reps: 3 },
  {
    name: 'local_2_in_flight',
    mesh: { inference: 'local', max_chunks_in_flight: 2 },
    what: 'local inference, two rollouts in flight (lag 1, V-trace)',
    reps: 3,
  },
  // Latency-bound (an Act round trip per step of 4 rows): one run of 100k steps keeps it to about two minutes.
  {
    name: 'central',
    mesh: { inference: 'central' },
    what: 'central inference (one Act call per step), lag 0, 100k steps',
    reps: 1,
    steps: 102400,
  },
];

/**
 * PPO CartPole through the full mesh, each variant against embedded runs interleaved with it in the
 * same invocation. Both run the shipped config as it is, train.threads (1) included: a multi-threaded
 * train step in the learner process competes with the actor and nats-server for the same cores.
 */
async function ppoMesh(dir: string, maxReps: number): Promise<BenchResult[]> {
  const cfg = { ...PPO, train: { ...PPO.train, checkpoint_every: 0 } };
  const results: BenchResult[] = [];
  let k = 0;
  for (const v of PPO_VARIANTS) {
    const emb: { rate: number; solved: number | null }[] = [];
    const mesh: { run: Run; solved: number | null }[] = [];
    for (let r = 0; r < Math.min(v.reps, maxReps); r++, k++) {
      const e = await trainEmbedded(parseRunConfig({ ...cfg, run: { ...PPO.run, name: `embedded-${k}`, out_dir: dir } }));
      emb.push({ rate: e.env_steps_per_s, solved: solvedAt(join(dir, `embedded-${k}`)) });
      const runDir = join(dir, `mesh-${k}`);
      const train = { ...cfg.train, ...(v.steps ? { total_env_steps: v.steps } : {}) };
      const run = await meshProcesses(runDir, 1, { ...cfg, train, mesh: v.mesh });
      if (run.state !== RunState.RUN_STATE_COMPLETED) throw new Error(`PPO mesh run ended ${RunState[run.state]}: ${run.error}`);
      mesh.push({ run, solved: solvedAt(join(runDir, 'bench-mesh')) });
    }
    const value = median(mesh.map((m) => m.run.episodesPerS));
    const base = median(emb.map((e) => e.rate));
    results.push({
      name: `mesh.ppo_cartpole_${v.name}.env_steps_per_s`,
      metric: `PPO CartPole-v1 (shipped config, ${mesh[0].run.envSteps} env steps) through the full mesh: nats-server + learner, policy, 1 env replica as processes; ${v.what}`,
      value,
      unit: 'env steps/s',
      baseline: { name: 'embedded trainer (rlmesh train), same config and seed, 500k env steps', value: base },
      ratio: value / base,
      notes:
        `median of ${mesh.length} run(s) interleaved with the baseline; mesh runs ${mesh.map((m) => m.run.episodesPerS.toFixed(0)).join('/')} env steps/s, ` +
        `final return_mean ${mesh.map((m) => m.run.returnMean.toFixed(1)).join('/')}, first >= ${SOLVED} at ${mesh.map((m) => m.solved ?? 'never').join('/')} env steps, ` +
        `policy lag mean ${mesh.map((m) => m.run.policyLagMean.toFixed(2)).join('/')}, chunks dropped ${mesh.map((m) => m.run.chunksDropped).join('/')}; ` +
        `embedded runs ${emb.map((e) => e.rate.toFixed(0)).join('/')} env steps/s, first >= ${SOLVED} at ${emb.map((e) => e.solved ?? 'never').join('/')}. ratio = mesh / embedded.`,
    });
  }
  return results;
}

export async function runMeshBenchmarks(s: BenchSettings): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-bench-mesh-'));
  const results: BenchResult[] = [];
  try {
    // Interleaved repeats, as timePair does for calls: embedded, mesh, embedded, ...
    const reps = Math.max(1, Math.min(3, s.repeats));
    const emb: number[] = [];
    const mesh: Run[] = [];
    const mesh4: Run[] = [];
    const cores: Run[] = [];
    const direct: Run[] = [];
    for (let r = 0; r < reps; r++) {
      emb.push(await embedded(join(dir, `e${r}`), s.threads));
      mesh.push(await meshProcesses(join(dir, `m${r}`)));
      mesh4.push(await meshProcesses(join(dir, `q${r}`), 4));
      cores.push(await meshInProcess(join(dir, `c${r}`)));
      direct.push(await trainInProcessMesh(JSON.stringify(CONFIG), { outDir: join(dir, `d${r}`) }));
    }
    for (const m of [...mesh, ...mesh4, ...cores, ...direct])
      if (m.state !== RunState.RUN_STATE_COMPLETED) throw new Error(`mesh run ended ${RunState[m.state]}: ${m.error}`);
    const embeddedEps = median(emb);
    const describe = (runs: Run[]) =>
      `runs ${runs.map((r) => r.episodesPerS.toFixed(0)).join('/')} episodes/s; success ${runs.map((r) => (100 * r.success).toFixed(1)).join('/')}%, policy lag mean ${runs.map((r) => r.policyLagMean.toFixed(2)).join('/')}, chunks dropped ${runs.map((r) => r.chunksDropped).join('/')}`;
    for (const [name, runs, what] of [
      ['mesh.processes.episodes_per_s', mesh, 'nats-server + learner, policy, 1 env replica (1 actor) as processes, gRPC on loopback'],
      ['mesh.processes_4_actors.episodes_per_s', mesh4, 'as above with 4 actors in the replica (up to 4 chunks in flight, so lag up to 3)'],
      ['mesh.in_process.episodes_per_s', cores, 'the same cores in one process: in-memory bus, policy over gRPC on loopback'],
      [
        'mesh.in_process_direct.episodes_per_s',
        direct,
        'rlmesh train --in-process-mesh: the same cores, in-memory bus, direct calls (no gRPC)',
      ],
    ] as const) {
      const value = median(runs.map((r) => r.episodesPerS));
      results.push({
        name,
        metric: `PatternEcho episodes/s trained (${EPISODES} episodes, 1-step episodes, so env steps/s = episodes/s), ${what}`,
        value,
        unit: 'episodes/s',
        baseline: { name: 'embedded loop (rlmesh train), same config', value: embeddedEps },
        ratio: value / embeddedEps,
        notes: `median of ${reps} runs interleaved with the baseline (embedded runs ${emb.map((e) => e.toFixed(0)).join('/')}); ${describe(runs)}. ratio = mesh / embedded.`,
      });
    }
    results.push(...(await ppoMesh(join(dir, 'ppo'), reps)));
    const chunk = latencyChunk();
    const memory = await chunkLatency(new MemoryBus(), chunk, 1000);
    const nats = await startNatsServer();
    try {
      const bus = await NatsBus.connect({ servers: nats.url });
      const js = await chunkLatency(bus, chunk, 1000);
      await bus.close();
      results.push({
        name: 'mesh.chunk_latency.p50',
        metric: `trajectory chunk (PatternEcho, 64 episodes, ${(chunk.length / 1000).toFixed(1)} kB) publish -> durable consumer handler, JetStream file store, one in flight`,
        value: median(js),
        unit: 'ms',
        baseline: { name: 'in-memory bus, same loop', value: median(memory) },
        ratio: median(js) / median(memory),
        notes: `1000 chunks; p99 ${pct(js, 99).toFixed(3)} ms (in-memory p99 ${pct(memory, 99).toFixed(3)} ms). ratio = JetStream / in-memory.`,
      });
    } finally {
      await nats.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
