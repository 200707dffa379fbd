/**
 * WMIL (issue: WMIL end to end): BabyModel train-step speed, the embedded loop's episodes/s, and the
 * learning targets (PatternEcho on 5 seeds at 2,048 episodes; SequenceNext and Conditional curricula).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { makeEnv, VectorEnv } from '@rlmesh/env';
import { buildForwardProgram, initParameters, Session, softmax, Trainer } from '@rlmesh/graph';
import { BabyModel, buildReinforceProgram, parseWmilConfig, REINFORCE_DEFAULTS, runWmil } from '@rlmesh/learner';
import { parse as parseYaml } from 'yaml';
import { type BenchResult, type BenchSettings, describeTiming, timePair } from './harness';

const SOURCE_GPU_EPISODES_PER_S = 550;

function fixedBatch(B: number) {
  const rng = new Rng(1);
  const obs = new Float32Array(B * 8);
  const next = new Float32Array(B * 8);
  const actions = new BigInt64Array(B);
  const ret = new Float32Array(B);
  for (let i = 0; i < B; i++) {
    obs[i * 8 + rng.int(8)] = 1;
    next[i * 8 + rng.int(8)] = 1;
    actions[i] = BigInt(rng.int(8));
    ret[i] = rng.int(2);
  }
  return {
    obs: { data: obs, shape: [B, 8] },
    actions: { data: actions, shape: [B] },
    next_obs: { data: next, shape: [B, 8] },
    'return.goal': { data: ret, shape: [B] },
    baseline: { data: Float32Array.of(0), shape: [] },
  };
}

async function trainStep(s: BenchSettings): Promise<BenchResult> {
  const model = new BabyModel();
  const program = buildReinforceProgram(model, REINFORCE_DEFAULTS, ['goal']);
  const trainer = await Trainer.create(program, initParameters(model, new Rng(0)), { intraOpThreads: s.threads });
  const fwd = buildForwardProgram({
    module: model,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', 8] }],
    forward: (i) => ({ probs: softmax(model.forward(i.obs).logits) }),
  });
  const policy = await Session.create(fwd.onnx, { intraOpThreads: 1 });
  const batch = fixedBatch(64);
  const t = await timePair(
    () => trainer.step(batch, 1e-3),
    () => policy.run({ params: { data: trainer.flatParams as Float32Array, shape: [program.layout.total] }, obs: batch.obs }),
    s,
  );
  const ups = 1e9 / t.subject.medianNs;
  const fps = 1e9 / t.baseline.medianNs;
  return {
    name: 'wmil.baby_model.train_step',
    metric: 'REINFORCE train step (Adam, clip 1.0), batch 64',
    value: ups,
    unit: 'updates/s',
    baseline: { name: 'policy forward program (params fed as input, 1 thread as in the loop), batch 64, passes/s', value: fps },
    ratio: t.subject.medianNs / t.baseline.medianNs,
    notes: `BabyModel 116,625 parameters; target >= 1,000 updates/s. ratio = train-step time / forward time. ${describeTiming('train', t.subject)}; ${describeTiming('forward', t.baseline)}`,
  };
}

async function embeddedLoop(s: BenchSettings): Promise<BenchResult> {
  const cfg = parseWmilConfig({
    run: { name: 'bench', out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
    algo: { lr: 2e-3 },
    train: { total_episodes: 64 * 1000, threads: s.threads },
  });
  const summary = await runWmil(cfg);
  const vec = new VectorEnv(Array.from({ length: 64 }, () => makeEnv('PatternEcho')));
  vec.reset(0);
  const rng = new Rng(0);
  const actions = new Int32Array(64);
  const steps = 20_000;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < steps; k++) {
    for (let i = 0; i < 64; i++) actions[i] = rng.int(8);
    vec.step(actions);
  }
  const envEps = (steps * 64) / (Number(process.hrtime.bigint() - t0) / 1e9);
  return {
    name: 'wmil.embedded_loop',
    metric: 'whole embedded loop (env + policy inference + REINFORCE update), PatternEcho, 64 episodes per update',
    value: summary.episodes_per_s,
    unit: 'episodes/s',
    baseline: { name: 'vector env alone, random actions, episodes/s', value: envEps },
    ratio: summary.episodes_per_s / envEps,
    notes: `${summary.updates} updates of 64 single-step episodes in ${summary.seconds.toFixed(2)} s (${summary.updates_per_s.toFixed(0)} updates/s); target >= 30,000 episodes/s; the source ran ${SOURCE_GPU_EPISODES_PER_S} episodes/s on a GPU (ratio to it ${(summary.episodes_per_s / SOURCE_GPU_EPISODES_PER_S).toFixed(1)}x). ratio = loop / env alone.`,
  };
}

async function patternEchoSeeds(s: BenchSettings): Promise<BenchResult> {
  const at2048 = async (algo: Record<string, unknown>, seed: number) => {
    const cfg = shippedConfig('wmil-pattern-echo.yaml', {
      run: { name: `pe-${seed}`, seed, out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
      algo,
      train: { total_episodes: 2048, threads: s.threads },
    });
    return (await runWmil(cfg)).final_success;
  };
  const seeds = [0, 1, 2, 3, 4];
  const ours: number[] = [];
  const source: number[] = [];
  for (const seed of seeds) {
    ours.push(await at2048({}, seed));
    source.push(await at2048({ lr: 1e-3, entropy_coef: 0.01 }, seed));
  }
  const pct = (xs: number[]) => xs.map((x) => `${(100 * x).toFixed(1)}%`).join(', ');
  return {
    name: 'wmil.pattern_echo.success_at_2048',
    metric: 'PatternEcho success at 2,048 episodes, mean of the last 10 batches of 64, worst of seeds 0-4',
    value: 100 * Math.min(...ours),
    unit: '%',
    baseline: { name: "the source's lr 1e-3 and entropy 0.01, same seeds, worst seed", value: 100 * Math.min(...source) },
    ratio: Math.min(...ours) / Math.min(...source),
    notes: `configs/wmil-pattern-echo.yaml (lr 2e-3, entropy 0.05), seeds 0-4: ${pct(ours)}; the source's settings: ${pct(source)}. Target >= 90% on every seed; random is 12.5%; the source reported 93.75% on one batch at 2,048 episodes.`,
  };
}

/** How many of many seeds end a 4,096-episode run below 90%: REINFORCE can lock onto a wrong action. */
async function patternEchoRobustness(s: BenchSettings): Promise<BenchResult> {
  const seeds = Array.from({ length: 40 }, (_, i) => 1000 + i);
  const failures = async (algo: Record<string, unknown>) => {
    const failed: number[] = [];
    for (const seed of seeds) {
      const cfg = shippedConfig('wmil-pattern-echo.yaml', {
        run: { name: `rob-${seed}`, seed, out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
        algo,
        train: { total_episodes: 4096, threads: s.threads },
      });
      if ((await runWmil(cfg)).final_success < 0.9) failed.push(seed);
    }
    return failed;
  };
  const ours = await failures({});
  const low = await failures({ entropy_coef: 0.01 });
  return {
    name: 'wmil.pattern_echo.failures_at_4096',
    metric: `PatternEcho runs below 90% success after 4,096 episodes, of ${seeds.length} seeds (${seeds[0]}-${seeds.at(-1)})`,
    value: ours.length,
    unit: 'runs',
    baseline: { name: 'same config with entropy_coef 0.01 (the source)', value: low.length },
    notes: `shipped config (entropy 0.05) failed on seeds [${ours.join(', ')}]; entropy 0.01 on [${low.join(', ')}]: with the weaker bonus a run can settle on a wrong action for one target and stay there.`,
  };
}

/** The shipped config file, with the run directory and length set for the benchmark. */
function shippedConfig(file: string, overrides: Record<string, unknown>) {
  const raw = parseYaml(readFileSync(join(__dirname, '..', 'configs', file), 'utf8')) as Record<string, Record<string, unknown>>;
  const merged = { ...raw };
  for (const [section, values] of Object.entries(overrides)) merged[section] = { ...(raw[section] ?? {}), ...(values as object) };
  return parseWmilConfig(merged);
}

async function curriculumRun(id: 'SequenceNext' | 'Conditional', baseline: 'ema' | 'value', s: BenchSettings) {
  const file = `wmil-${id === 'SequenceNext' ? 'sequence-next' : 'conditional'}.yaml`;
  const cfg = shippedConfig(file, {
    run: { name: `${id}-${baseline}`, out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
    algo: { baseline },
    train: { total_episodes: 64 * 600, threads: s.threads, checkpoint_every: 0 },
  });
  const summary = await runWmil(cfg);
  const rows = readFileSync(join(summary.run_dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { episodes: number; level: number; success_mean: number });
  return { file, summary, rows };
}

async function curriculum(id: 'SequenceNext' | 'Conditional', s: BenchSettings): Promise<BenchResult> {
  const { file, summary, rows } = await curriculumRun(id, 'value', s);
  const ema = await curriculumRun(id, 'ema', s);
  const firstAt = (level: number) => rows.find((r) => r.level >= level)?.episodes;
  const curve = rows.filter((_, i) => (i + 1) % 50 === 0).map((r) => `${r.episodes}:L${r.level}:${(100 * r.success_mean).toFixed(0)}%`);
  const reached = [1, 2].map((l) => `level ${l} at ${firstAt(l) ?? 'never'} episodes`).join(', ');
  return {
    name: `wmil.${id}.curriculum`,
    metric: `${id} success at the end (mean of 10 batches) after ${rows.length * 64} episodes`,
    value: 100 * summary.final_success,
    unit: '%',
    baseline: { name: `same config with the EMA baseline (ended at level ${ema.summary.level})`, value: 100 * ema.summary.final_success },
    ratio: summary.final_success / ema.summary.final_success,
    notes: `configs/${file} (value baseline); final level ${summary.level} of 0-2; ${reached}. A level advances when the mean success of 10 batches reaches 90%, so each earlier level was at >= 90% when the next began. Random policy: 12.5%. Curve (episodes:level:success): ${curve.join(' ')}`,
  };
}

export async function runWmilBenchmarks(s: BenchSettings): Promise<BenchResult[]> {
  return [
    await trainStep(s),
    await embeddedLoop(s),
    await patternEchoSeeds(s),
    await patternEchoRobustness(s),
    await curriculum('SequenceNext', s),
    await curriculum('Conditional', s),
  ];
}
