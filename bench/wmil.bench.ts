/**
 * WMIL (issue: WMIL end to end): the embedded loop's updates/s against the PyTorch reference of the
 * same model and algorithm (bench/torch/reinforce_baby.py) measured in the same run, the bare train
 * step against PyTorch's, and the learning targets (PatternEcho on 5 seeds at 2,048 episodes and its
 * failures at 4,096 episodes on 40 seeds; SequenceNext and Conditional curricula).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import type { HostTensor } from '@rlmesh/graph';
import { LearnerRun, parseRunConfig, type RunConfig, trainEmbedded, type UpdateRecord } from '@rlmesh/learner';
import { parse as parseYaml } from 'yaml';
import { type BenchResult, type BenchSettings, median } from './harness';
import { runTorchReference } from './torch';

const LOOP_UPDATES = 1000;
const TORCH_UPDATES = 300;
const STEP_WARMUP = 20;
const STEP_REPEATS = 5;
const STEPS_PER_REPEAT = 300;

function fixedBatch(B: number, S: number, components: readonly string[], offPolicyCorrection: boolean): Record<string, HostTensor> {
  const rng = new Rng(1);
  const obs = new Float32Array(B * S);
  const next = new Float32Array(B * S);
  const actions = new BigInt64Array(B);
  const feed: Record<string, HostTensor> = {
    obs: { data: obs, shape: [B, S] },
    actions: { data: actions, shape: [B] },
    next_obs: { data: next, shape: [B, S] },
    baseline: { data: Float32Array.of(0), shape: [] },
  };
  // LearnerRun builds the off-policy program, which takes the behaviour log-probs when the correction is on.
  if (offPolicyCorrection) feed.behaviour_log_prob = { data: new Float32Array(B).fill(Math.log(1 / 8)), shape: [B] };
  for (let i = 0; i < B; i++) {
    obs[i * S + rng.int(S)] = 1;
    next[i * S + rng.int(S)] = 1;
    actions[i] = BigInt(rng.int(8));
  }
  for (const c of components) feed[`return.${c}`] = { data: Float32Array.from({ length: B }, () => rng.int(2)), shape: [B] };
  return feed;
}

/** The bare REINFORCE train step of the shipped PatternEcho run (the program LearnerRun builds), on one fixed batch of 64. */
async function trainStepRate(s: BenchSettings): Promise<{ ups: number; repeats: number[] }> {
  const cfg = shippedConfig('wmil-pattern-echo.yaml', {
    run: { name: 'step', out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
    train: { threads: s.threads },
  });
  const run = await LearnerRun.create(cfg, { runDir: join(cfg.run.out_dir, cfg.run.name) });
  try {
    const batch = fixedBatch(64, run.model.obsDim, run.shape.components, cfg.algo.off_policy_correction !== false);
    const lr = cfg.algo.lr as number;
    for (let i = 0; i < STEP_WARMUP; i++) await run.trainer.step(batch, lr);
    const repeats: number[] = [];
    for (let r = 0; r < STEP_REPEATS; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < STEPS_PER_REPEAT; i++) await run.trainer.step(batch, lr);
      repeats.push(STEPS_PER_REPEAT / (Number(process.hrtime.bigint() - t0) / 1e9));
    }
    return { ups: median(repeats), repeats };
  } finally {
    await run.release();
  }
}

/** The embedded loop (env + act program + REINFORCE update) and the bare train step, each against PyTorch in the same run. */
async function loopAndStep(s: BenchSettings): Promise<BenchResult[]> {
  const cfg = shippedConfig('wmil-pattern-echo.yaml', {
    run: { name: 'bench', out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
    train: { total_env_steps: 64 * LOOP_UPDATES, threads: s.threads, checkpoint_every: 0 },
  });
  const summary = await trainEmbedded(cfg);
  const step = await trainStepRate(s);
  const torch = runTorchReference('reinforce_baby', ['--updates', String(TORCH_UPDATES), '--threads', String(s.threads)], 600_000);
  const t = torch.ok ? torch.result : undefined;
  const torchUps = typeof t?.updates_per_s === 'number' ? t.updates_per_s : undefined;
  const torchStep = typeof t?.train_step_updates_per_s === 'number' ? t.train_step_updates_per_s : undefined;
  const torchNote = torch.ok
    ? `PyTorch ${String(t?.torch)} (BLAS ${String(t?.blas)}), ${TORCH_UPDATES} updates, ${s.threads} threads, final success ${(100 * Number(t?.final_success)).toFixed(1)}%`
    : `no PyTorch reference: ${torch.reason}`;
  const withBaseline = (value: number, name: string, base: number | undefined) =>
    base === undefined ? {} : { baseline: { name, value: base }, ratio: value / base };
  return [
    {
      name: 'wmil.embedded_loop',
      metric: 'whole embedded loop (env + act program + REINFORCE update), PatternEcho, 64 one-step episodes per update',
      value: summary.updates_per_s,
      unit: 'updates/s',
      ...withBaseline(summary.updates_per_s, 'PyTorch reference loop (bench/torch/reinforce_baby.py), updates/s', torchUps),
      notes: `configs/wmil-pattern-echo.yaml, ${summary.updates} updates in ${summary.seconds.toFixed(2)} s (${summary.env_steps_per_s.toFixed(0)} episodes/s), final success ${(100 * summary.final_success).toFixed(1)}%; ${torchNote}. ratio = rlmesh / PyTorch.`,
    },
    {
      name: 'wmil.baby_model.train_step',
      metric: 'bare REINFORCE train step (Adam, clip 1.0, world-model loss), BabyModel, fixed batch 64',
      value: step.ups,
      unit: 'updates/s',
      ...withBaseline(step.ups, 'PyTorch bare train step, same model and batch, updates/s', torchStep),
      notes: `${summary.parameters.toLocaleString('en-US')} parameters, ${s.threads} threads; median of ${STEP_REPEATS} repeats x ${STEPS_PER_REPEAT} steps (${step.repeats.map((x) => x.toFixed(0)).join('/')}); ${torchNote}. ratio = rlmesh / PyTorch.`,
    },
  ];
}

async function patternEchoSeeds(s: BenchSettings): Promise<BenchResult> {
  const at2048 = async (algo: Record<string, unknown>, seed: number) => {
    const cfg = shippedConfig('wmil-pattern-echo.yaml', {
      run: { name: `pe-${seed}`, seed, out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
      algo,
      train: { total_env_steps: 2048, threads: s.threads, checkpoint_every: 0 },
    });
    return (await trainEmbedded(cfg)).final_success;
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
        train: { total_env_steps: 4096, threads: s.threads, checkpoint_every: 0 },
      });
      if ((await trainEmbedded(cfg)).final_success < 0.9) failed.push(seed);
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
function shippedConfig(file: string, overrides: Record<string, unknown>): RunConfig {
  const raw = parseYaml(readFileSync(join(__dirname, '..', 'configs', file), 'utf8')) as Record<string, Record<string, unknown>>;
  const merged = { ...raw };
  for (const [section, values] of Object.entries(overrides)) merged[section] = { ...(raw[section] ?? {}), ...(values as object) };
  return parseRunConfig(merged);
}

async function curriculumRun(id: 'SequenceNext' | 'Conditional', baseline: 'ema' | 'value', s: BenchSettings) {
  const file = `wmil-${id === 'SequenceNext' ? 'sequence-next' : 'conditional'}.yaml`;
  const cfg = shippedConfig(file, {
    run: { name: `${id}-${baseline}`, out_dir: mkdtempSync(join(tmpdir(), 'rlmesh-bench-')) },
    algo: { baseline },
    train: { total_env_steps: 64 * 600, threads: s.threads, checkpoint_every: 0 },
  });
  const rows: UpdateRecord[] = [];
  const summary = await trainEmbedded(cfg, { onUpdate: (r) => rows.push(r) });
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
    ...(await loopAndStep(s)),
    await patternEchoSeeds(s),
    await patternEchoRobustness(s),
    await curriculum('SequenceNext', s),
    await curriculum('Conditional', s),
  ];
}
