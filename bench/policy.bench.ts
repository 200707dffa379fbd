/**
 * The policy service: Act throughput and latency through the gRPC server on loopback, with several
 * callers at once (what rollout actors do), against the same forward program run in-process by a
 * Session as the baseline. The ratios say what serving costs: transport, queueing for a batch, the
 * worker hop and sampling, against the bare forward pass.
 *
 * Callers run free (each sends its next request when the last one returns) for BENCH_REPEAT_MS per
 * repeat; subject and baseline repeats alternate as in harness.ts.
 */
import { credentials } from '@grpc/grpc-js';
import { Box, Discrete, Rng } from '@rlmesh/core';
import { buildForwardProgram, initParameters, Linear, logSoftmax, MLP, Module, Session, squeeze, type Value } from '@rlmesh/graph';
import { MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { startPolicyServer } from '@rlmesh/policy';
import { type ActResponse, encodeTensor, PolicyServiceClient } from '@rlmesh/proto';
import { type BenchResult, type BenchSettings, median } from './harness';

const OBS_DIM = 8;
const NUM_ACTIONS = 8;
const CALLERS = 8;
const BATCH = 64;
/** The service default (0); BENCH_MAX_WAIT_MS measures another. */
const MAX_WAIT_MS = Number(process.env.BENCH_MAX_WAIT_MS ?? 0);

/** About BabyModel's size: an MLP trunk 8 -> 256 -> 256 -> 128 with policy and value heads. */
class BenchPolicy extends Module {
  private readonly trunk = this.child('trunk', new MLP([OBS_DIM, 256, 256, 128]));
  private readonly pi = this.child('pi', new Linear(128, NUM_ACTIONS));
  private readonly v = this.child('v', new Linear(128, 1));
  forward(obs: Value) {
    const h = this.trunk.forward(obs);
    return { log_probs: logSoftmax(this.pi.forward(h)), value: squeeze(this.v.forward(h), [1]) };
  }
}

function log(msg: string): void {
  process.stderr.write(`[bench:policy] ${msg}\n`);
}

interface Drive {
  rowsPerS: number;
  latMs: number[];
}

/** `callers` loops each awaiting `call` back to back for `ms`; rows/s over the window and every latency. */
async function drive(callers: number, ms: number, rows: number, call: (caller: number) => Promise<unknown>): Promise<Drive> {
  const latMs: number[] = [];
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      while (performance.now() < end) {
        const a = performance.now();
        await call(c);
        latMs.push(performance.now() - a);
      }
    }),
  );
  return { rowsPerS: (latMs.length * rows) / ((performance.now() - t0) / 1000), latMs };
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export async function runPolicyBenchmarks(s: BenchSettings): Promise<BenchResult[]> {
  const model = new BenchPolicy();
  const { onnx, layout } = buildForwardProgram({
    module: model,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', OBS_DIM] }],
    forward: (i) => model.forward(i.obs),
  });
  const params = layout.pack(initParameters(model, new Rng(0)));
  const bus = new MemoryBus();
  await publishPolicy(bus, 'bench', {
    version: 1,
    params,
    program: onnx,
    spec: {
      observationSpace: spaceToProto(new Box(-1, 1, [OBS_DIM])),
      actionSpace: spaceToProto(new Discrete(NUM_ACTIONS)),
      model: 'BenchPolicy',
      numParameters: layout.total,
    },
    distribution: 'categorical',
  });
  const quiet = { debug() {}, info() {}, warn: log, error: log };
  const server = await startPolicyServer({ bus, logger: quiet, threads: s.threads, maxWaitMs: MAX_WAIT_MS, seed: 0 });
  const client = new PolicyServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  // maxBatch = callers x batch: a full round of closed-loop callers leaves at once instead of after maxWait.
  const tunedServer = await startPolicyServer({
    bus,
    logger: quiet,
    threads: s.threads,
    maxWaitMs: MAX_WAIT_MS,
    maxBatch: CALLERS * BATCH,
  });
  const tunedClient = new PolicyServiceClient(`127.0.0.1:${tunedServer.port}`, credentials.createInsecure());
  const session = await Session.create(onnx, { intraOpThreads: s.threads });
  try {
    const rng = new Rng(1);
    const obs = Array.from({ length: CALLERS }, () => Float32Array.from({ length: BATCH * OBS_DIM }, () => rng.uniformRange(-1, 1)));
    const requests = obs.map((o) => ({ runId: 'bench', obs: encodeTensor(o, [BATCH, OBS_DIM]), greedy: false, minVersion: 0, seed: 0 }));
    const grpcAct = (c: number) =>
      new Promise<ActResponse>((resolve, reject) => client.act(requests[c], (err, res) => (err ? reject(err) : resolve(res))));
    const tunedAct = (c: number) =>
      new Promise<ActResponse>((resolve, reject) => tunedClient.act(requests[c], (err, res) => (err ? reject(err) : resolve(res))));
    const coreAct = (c: number) => server.core.act('bench', obs[c], BATCH, false);
    const feedsParams = { data: params, shape: [params.length] };
    const direct = (c: number) => session.run({ params: feedsParams, obs: { data: obs[c], shape: [BATCH, OBS_DIM] } });

    for (let i = 0; i < s.warmup; i++) await Promise.all([grpcAct(i % CALLERS), tunedAct(i % CALLERS), direct(i % CALLERS)]);
    const subjects = {
      grpc: (ms: number) => drive(CALLERS, ms, BATCH, grpcAct),
      grpc1: (ms: number) => drive(1, ms, BATCH, grpcAct),
      tuned: (ms: number) => drive(CALLERS, ms, BATCH, tunedAct),
      core: (ms: number) => drive(CALLERS, ms, BATCH, coreAct),
      direct: (ms: number) => drive(1, ms, BATCH, direct),
    };
    const runs: Record<keyof typeof subjects, Drive[]> = { grpc: [], grpc1: [], tuned: [], core: [], direct: [] };
    const order = Object.keys(subjects) as (keyof typeof subjects)[];
    const stats0 = { ...server.core.stats };
    for (let r = 0; r < s.repeats; r++) {
      for (const k of r % 2 === 0 ? order : [...order].reverse()) runs[k].push(await subjects[k](s.repeatMs));
      log(
        `repeat ${r + 1}/${s.repeats}: grpc ${runs.grpc[r].rowsPerS.toFixed(0)} rows/s, direct ${runs.direct[r].rowsPerS.toFixed(0)} rows/s`,
      );
    }
    const meanBatch = (server.core.stats.rows - stats0.rows) / (server.core.stats.batches - stats0.batches);

    const thr = (k: keyof typeof runs) => median(runs[k].map((d) => d.rowsPerS));
    const lat = (k: keyof typeof runs, p: number) =>
      percentile(
        runs[k].flatMap((d) => d.latMs),
        p,
      );
    const setup = (maxBatch: number) =>
      `${s.repeats} repeats x ${s.repeatMs} ms, callers free-running; server: one inference worker, ${s.threads} intra-op threads, maxBatch ${maxBatch}, maxWait ${MAX_WAIT_MS} ms`;
    const how = `${setup(1024)}; mean batch ${meanBatch.toFixed(0)} rows over this server's runs`;
    const model_ = `MLP 8-256-256-128 + heads, ${layout.total.toLocaleString('en-US')} parameters`;
    const baseThr = { name: `Session.run in-process, 1 caller, batch ${BATCH} (${s.threads} threads), rows/s`, value: thr('direct') };
    const baseLat = (p: number) => ({ name: `Session.run in-process, batch ${BATCH}, p${p} ms`, value: lat('direct', p) });
    return [
      {
        name: 'policy.grpc.act.throughput',
        metric: `Act throughput over gRPC loopback, ${CALLERS} callers x batch ${BATCH}`,
        value: thr('grpc'),
        unit: 'rows/s',
        baseline: baseThr,
        ratio: thr('grpc') / thr('direct'),
        notes: `${model_}. ratio = served rows/s / bare forward rows/s (sampling, tensors, gRPC, worker hop included). ${how}`,
      },
      {
        name: 'policy.grpc.act.latency_p50',
        metric: `Act latency p50 over gRPC, ${CALLERS} callers x batch ${BATCH}`,
        value: lat('grpc', 50),
        unit: 'ms',
        baseline: baseLat(50),
        ratio: lat('grpc', 50) / lat('direct', 50),
        notes: `ratio = served latency / bare forward latency; under load a request waits for the batch in front of it. ${how}`,
      },
      {
        name: 'policy.grpc.act.latency_p99',
        metric: `Act latency p99 over gRPC, ${CALLERS} callers x batch ${BATCH}`,
        value: lat('grpc', 99),
        unit: 'ms',
        baseline: baseLat(99),
        ratio: lat('grpc', 99) / lat('direct', 99),
        notes: `ratio = served p99 / bare forward p99. ${how}`,
      },
      {
        name: 'policy.grpc.act.single_caller_p50',
        metric: `Act latency p50 over gRPC, 1 caller x batch ${BATCH}`,
        value: lat('grpc1', 50),
        unit: 'ms',
        baseline: baseLat(50),
        ratio: lat('grpc1', 50) / lat('direct', 50),
        notes: `A lone caller waits maxWait (${MAX_WAIT_MS} ms) for company: the price of batching at low load. Throughput ${thr('grpc1').toFixed(0)} rows/s. ${how}`,
      },
      {
        name: 'policy.grpc.act.throughput_tuned',
        metric: `Act throughput over gRPC, ${CALLERS} callers x batch ${BATCH}, maxBatch ${CALLERS * BATCH}`,
        value: thr('tuned'),
        unit: 'rows/s',
        baseline: baseThr,
        ratio: thr('tuned') / thr('direct'),
        notes: `maxBatch set to callers x batch, so a round of closed-loop callers leaves without waiting maxWait. p50 ${lat('tuned', 50).toFixed(2)} ms, p99 ${lat('tuned', 99).toFixed(2)} ms. ${setup(CALLERS * BATCH)}`,
      },
      {
        name: 'policy.core.act.throughput',
        metric: `PolicyCore.act in-process (no gRPC), ${CALLERS} callers x batch ${BATCH}`,
        value: thr('core'),
        unit: 'rows/s',
        baseline: baseThr,
        ratio: thr('core') / thr('direct'),
        notes: `The same server's core called directly: the gap to policy.grpc.act.throughput is the gRPC transport. p50 ${lat('core', 50).toFixed(2)} ms, p99 ${lat('core', 99).toFixed(2)} ms. ${how}`,
      },
    ];
  } finally {
    client.close();
    tunedClient.close();
    await session.release();
    await Promise.all([server.shutdown(), tunedServer.shutdown()]);
  }
}
