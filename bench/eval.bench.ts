/**
 * The evaluator (services/evaluator): each shipped config trained briefly in the embedded trainer,
 * then its final weights and its first checkpoint evaluated on the config's suite (configs/suites/),
 * greedy, in process. Rows: success rate with its 80% Jeffreys interval per suite entry and split,
 * the weighted aggregate per suite with whether the final weights dominate the first checkpoint; and
 * evaluation throughput through the EvaluatorService (gRPC on loopback) vs evaluate() in process, on
 * the PatternEcho suite (single-step episodes: the per-call cost shows) and the CartPole suite.
 *
 * Sizes: by default each WMIL config trains for its shipped total_env_steps and CartPole for 200k env
 * steps; RLMESH_BENCH_QUICK=1 trains 1-2k episodes / 20k steps (a smoke test of the suite, not
 * results to quote). BENCH_EVAL_STEPS overrides every run's length.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import type { EvaluationResult } from '@rlmesh/core';
import {
  checkpointPolicy,
  DEFAULT_MIN_EPISODES,
  dominates,
  evaluate,
  FileEvaluationStore,
  loadSuite,
  startEvaluatorServer,
} from '@rlmesh/evaluator';
import { parseRunConfig, trainEmbedded } from '@rlmesh/learner';
import { createLogger, MemoryBus } from '@rlmesh/mesh';
import { type EvaluateResponse, EvaluatorServiceClient, PolicyChannel } from '@rlmesh/proto';
import { parse as parseYaml } from 'yaml';
import { type BenchResult, type BenchSettings, describeTiming, timePair } from './harness';

const QUICK = process.env.RLMESH_BENCH_QUICK === '1';
const ROOT = join(__dirname, '..');

function stepsOverride(): number | undefined {
  const raw = process.env.BENCH_EVAL_STEPS;
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_EVAL_STEPS must be an integer >= 1, got ${JSON.stringify(raw)}`);
  return n;
}

/** Each shipped config with its suite; `steps` undefined = the config's own total_env_steps. */
const RUNS: { config: string; suite: string; steps?: number }[] = [
  { config: 'wmil-pattern-echo.yaml', suite: 'pattern-echo.yaml', steps: QUICK ? 1024 : undefined },
  { config: 'wmil-sequence-next.yaml', suite: 'sequence-next.yaml', steps: QUICK ? 2048 : undefined },
  { config: 'wmil-conditional.yaml', suite: 'conditional.yaml', steps: QUICK ? 2048 : undefined },
  { config: 'ppo-cartpole.yaml', suite: 'cartpole.yaml', steps: QUICK ? 20_000 : 200_000 },
];

function log(msg: string): void {
  process.stderr.write(`[bench:eval] ${msg}\n`);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const k = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(0)}k` : String(n));

interface Trained {
  dir: string;
  runDir: string;
  steps: number;
  updates: number;
  firstCheckpoint: string;
  firstUpdate: number;
  trainSuccess: number;
  seconds: number;
}

/** Trains a shipped config (seed 1) with about four checkpoints; the run directory stays until cleanup. */
async function train(config: string, steps: number | undefined): Promise<Trained> {
  const raw = parseYaml(readFileSync(join(ROOT, 'configs', config), 'utf8')) as Record<string, Record<string, unknown>>;
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-bench-eval-'));
  const total = stepsOverride() ?? steps ?? Number(raw.train.total_env_steps);
  const perUpdate = Number(raw.env.num_envs) * Number(raw.env.num_steps);
  const updates = Math.max(1, Math.floor(total / perUpdate));
  const every = Math.max(1, Math.floor(updates / 4));
  const cfg = parseRunConfig({
    ...raw,
    run: { ...raw.run, name: 'run', seed: 1, out_dir: dir },
    train: { ...raw.train, total_env_steps: updates * perUpdate, checkpoint_every: every },
  });
  const summary = await trainEmbedded(cfg);
  const runDir = join(dir, 'run');
  const first = readdirSync(join(runDir, 'checkpoints')).sort()[0];
  log(
    `${config}: ${summary.updates} updates, ${summary.env_steps} env steps in ${summary.seconds.toFixed(1)} s, training success ${pct(summary.final_success)}`,
  );
  return {
    dir,
    runDir,
    steps: summary.env_steps,
    updates: summary.updates,
    firstCheckpoint: join(runDir, 'checkpoints', first),
    firstUpdate: Number(first.match(/\d+/)?.[0]),
    trainSuccess: summary.final_success,
    seconds: summary.seconds,
  };
}

async function evaluateFile(suiteFile: string, checkpoint: string, label: string): Promise<EvaluationResult> {
  const policy = await checkpointPolicy(checkpoint, label);
  try {
    return await evaluate(loadSuite(join(ROOT, 'configs', 'suites', suiteFile)), policy);
  } finally {
    await policy.close();
  }
}

function suiteRows(run: (typeof RUNS)[number], t: Trained, final: EvaluationResult, early: EvaluationResult): BenchResult[] {
  const rows: BenchResult[] = final.environments.map((e, i) => {
    const b = early.environments[i];
    return {
      name: `eval.${final.suite}.${e.name}`,
      metric: `greedy success rate, split ${e.split}${e.level === undefined ? '' : `, level ${e.level}`}, ${e.episodes} episodes`,
      value: 100 * e.success_rate,
      unit: '%',
      notes:
        `80% Jeffreys [${pct(e.interval.low)}, ${pct(e.interval.high)}]; return mean ${e.returns.mean.toFixed(2)} (std ${e.returns.std.toFixed(2)}), ` +
        `length mean ${e.lengths.mean.toFixed(1)}; ${e.env_id} ${JSON.stringify(e.options)}, seeds ${e.seeds[0]}..${e.seeds.at(-1)}; ` +
        `first checkpoint (update ${t.firstUpdate}): ${pct(b.success_rate)} [${pct(b.interval.low)}, ${pct(b.interval.high)}].`,
    };
  });
  const splits = Object.entries(final.aggregate.by_split)
    .map(([s, a]) => `${s} ${pct(a.success_rate)}`)
    .join(', ');
  const earlySplits = Object.entries(early.aggregate.by_split)
    .map(([s, a]) => `${s} ${pct(a.success_rate)}`)
    .join(', ');
  rows.push({
    name: `eval.${final.suite}.aggregate`,
    metric: `weighted greedy success over the suite after ${k(t.steps)} env steps of ${run.config} (seed 1, ${t.updates} updates)`,
    value: 100 * final.aggregate.all.success_rate,
    unit: '%',
    notes:
      `by split: ${splits}; training success (last window) ${pct(t.trainSuccess)}; first checkpoint (update ${t.firstUpdate}): ` +
      `${pct(early.aggregate.all.success_rate)} (${earlySplits}); final dominates first checkpoint (separated 80% intervals, >= ${DEFAULT_MIN_EPISODES} episodes): ` +
      `${dominates(final, early) ? 'yes' : 'no'}, first dominates final: ${dominates(early, final) ? 'yes' : 'no'}; ` +
      `evaluation took ${final.duration_s.toFixed(2)} s, training ${t.seconds.toFixed(1)} s.`,
  });
  return rows;
}

/** Evaluation episodes/s of one suite: EvaluatorService.Evaluate over gRPC on loopback vs evaluate() in this process. */
async function throughput(suiteFile: string, checkpoint: string, s: BenchSettings): Promise<BenchResult> {
  const suitePath = join(ROOT, 'configs', 'suites', suiteFile);
  const suite = loadSuite(suitePath);
  const episodes = suite.entries.reduce((n, e) => n + e.episodes, 0);
  const storeDir = mkdtempSync(join(tmpdir(), 'rlmesh-bench-eval-store-'));
  const server = await startEvaluatorServer({
    bus: new MemoryBus(),
    store: new FileEvaluationStore(storeDir),
    host: '127.0.0.1',
    port: 0,
    gate: false,
    logger: createLogger('evaluator', 'warn'),
  });
  const client = new EvaluatorServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  const text = readFileSync(suitePath, 'utf8');
  const policy = await checkpointPolicy(checkpoint);
  try {
    const viaService = () =>
      new Promise<void>((resolve, reject) => {
        let result = false;
        const stream = client.evaluate({
          suite: text,
          policy: { runId: '', version: 0, channel: PolicyChannel.POLICY_CHANNEL_UNSPECIFIED, checkpoint, label: 'bench' },
        });
        stream.on('data', (m: EvaluateResponse) => {
          if (m.event?.$case === 'result') result = true;
        });
        stream.on('error', reject);
        stream.on('end', () => (result ? resolve() : reject(new Error('Evaluate ended without a result'))));
      });
    const inProcess = () => evaluate(suite, policy);
    const settings = { ...s, warmup: Math.min(s.warmup, 3), repeatMs: Math.max(s.repeatMs, 3000) };
    const t = await timePair(viaService, inProcess, settings);
    const service = (episodes * 1e9) / t.subject.medianNs;
    const local = (episodes * 1e9) / t.baseline.medianNs;
    return {
      name: `eval.throughput.${suite.name}`,
      metric: `evaluation episodes/s, suite ${suite.name} (${episodes} episodes per evaluation), one evaluation at a time`,
      value: service,
      unit: 'episodes/s',
      baseline: { name: 'evaluate() in process, same policy and suite', value: local },
      ratio: service / local,
      notes:
        `service: EvaluatorService.Evaluate over gRPC on loopback, the server in this process on a MemoryBus with a file store; each call loads the checkpoint, ` +
        `checks it fits the suite, streams progress at each entry's end and at most every 100 ms, and stores the result; in process: the policy loaded once. ` +
        `${describeTiming('service', t.subject)}; ${describeTiming('in process', t.baseline)}. ratio = service / in process.`,
    };
  } finally {
    client.close();
    await policy.close();
    await server.shutdown({ drainMs: 0 });
    rmSync(storeDir, { recursive: true, force: true });
  }
}

export async function runEvalBenchmarks(settings: BenchSettings): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  // The final weights per suite file, for the throughput rows.
  const finals = new Map<string, string>();
  const dirs: string[] = [];
  try {
    for (const run of RUNS) {
      const t = await train(run.config, run.steps);
      dirs.push(t.dir);
      const final = await evaluateFile(run.suite, join(t.runDir, 'model.safetensors'), 'final');
      const early = await evaluateFile(run.suite, t.firstCheckpoint, `update ${t.firstUpdate}`);
      for (const e of final.environments)
        log(`${final.suite}/${e.name} (${e.split}): ${pct(e.success_rate)} [${pct(e.interval.low)}, ${pct(e.interval.high)}]`);
      results.push(...suiteRows(run, t, final, early));
      finals.set(run.suite, join(t.runDir, 'model.safetensors'));
    }
    // Single-step episodes show the service's per-call cost; CartPole's long episodes amortise it.
    for (const suite of ['pattern-echo.yaml', 'cartpole.yaml'])
      results.push(await throughput(suite, finals.get(suite) as string, settings));
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  return results;
}
