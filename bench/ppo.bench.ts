/**
 * PPO (the embedded trainer, configs/ppo-*.yaml): CartPole-v1 on several seeds (env steps/s, the
 * first env steps at which the mean return of the last 20 episodes reaches 475, the final mean return
 * and its curve) against the PyTorch reference of the same algorithm (bench/torch/ppo_cartpole.py,
 * CleanRL's ppo.py) measured in the same run; and Pendulum-v1 on several seeds (final mean return).
 *
 * Sizes come from the environment so the suite can be smoke-tested: RLMESH_BENCH_QUICK=1 runs 1 seed
 * at 100k env steps for each env and the PyTorch reference once at 20k; BENCH_PPO_SEEDS, BENCH_PPO_STEPS,
 * BENCH_PENDULUM_SEEDS, BENCH_PENDULUM_STEPS, BENCH_PPO_TORCH_STEPS and BENCH_PPO_TORCH_RUNS override
 * single sizes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRunConfig, type RunConfig, type RunSummary, trainEmbedded } from '@rlmesh/learner';
import { parse as parseYaml } from 'yaml';
import { type BenchResult, type BenchSettings, median } from './harness';
import { runTorchReference } from './torch';

const SOLVED = 475;
const CURVE_EVERY = 25;

const QUICK = process.env.RLMESH_BENCH_QUICK === '1';

function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be an integer >= 1, got ${JSON.stringify(raw)}`);
  return n;
}

const SIZES = {
  cartpoleSeeds: envCount('BENCH_PPO_SEEDS', QUICK ? 1 : 5),
  cartpoleSteps: envCount('BENCH_PPO_STEPS', QUICK ? 100_000 : 500_000),
  pendulumSeeds: envCount('BENCH_PENDULUM_SEEDS', QUICK ? 1 : 5),
  pendulumSteps: envCount('BENCH_PENDULUM_STEPS', QUICK ? 100_000 : 500_000),
  torchSteps: envCount('BENCH_PPO_TORCH_STEPS', QUICK ? 20_000 : 100_000),
  torchRuns: envCount('BENCH_PPO_TORCH_RUNS', QUICK ? 1 : 3),
};

function log(msg: string): void {
  process.stderr.write(`[bench:ppo] ${msg}\n`);
}

/** The shipped config file, with the run directory, seed and length set for the benchmark. */
function shippedConfig(file: string, dir: string, seed: number, steps: number): RunConfig {
  const raw = parseYaml(readFileSync(join(__dirname, '..', 'configs', file), 'utf8')) as Record<string, Record<string, unknown>>;
  return parseRunConfig({
    ...raw,
    run: { ...raw.run, name: `seed-${seed}`, seed, out_dir: dir },
    train: { ...raw.train, total_env_steps: steps, checkpoint_every: 0 },
  });
}

interface SeedRun {
  seed: number;
  summary: RunSummary;
  /** First env_steps at which return_mean (last 20 episodes) reached SOLVED, or null. */
  solvedAt: number | null;
  /** [env_steps, return_mean] every CURVE_EVERY updates, and the last update. */
  curve: [number, number][];
}

async function runSeed(file: string, seed: number, steps: number): Promise<SeedRun> {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-bench-ppo-'));
  try {
    const cfg = shippedConfig(file, dir, seed, steps);
    let solvedAt: number | null = null;
    const curve: [number, number][] = [];
    let last: [number, number] | undefined;
    const summary = await trainEmbedded(cfg, {
      onUpdate: (r) => {
        if (solvedAt === null && r.return_mean >= SOLVED) solvedAt = r.env_steps;
        last = [r.env_steps, r.return_mean];
        if (r.update % CURVE_EVERY === 0) curve.push(last);
      },
    });
    if (last && curve.at(-1) !== last) curve.push(last);
    log(
      `${file} seed ${seed}: ${summary.env_steps} env steps in ${summary.seconds.toFixed(1)} s (${summary.env_steps_per_s.toFixed(0)}/s), return_mean ${summary.return_mean.toFixed(1)}, solved at ${solvedAt ?? 'never'}`,
    );
    return { seed, summary, solvedAt, curve };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const seedsOf = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const fmtCurve = (c: [number, number][]) => c.map(([s, r]) => `${s}:${r.toFixed(0)}`).join(' ');
const k = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(0)}k` : String(n));

interface TorchRun {
  seed: number;
  sps: number;
  finalReturn: number;
  about: string;
}

/** One PyTorch reference run, or why the reference cannot run here. */
function torchRun(seed: number, steps: number, threads: string): TorchRun | string {
  const torch = runTorchReference(
    'ppo_cartpole',
    ['--seed', String(seed), '--total-timesteps', String(steps), '--threads', threads],
    900_000,
  );
  if (!torch.ok) return torch.reason;
  const t = torch.result;
  if (typeof t.env_steps_per_s !== 'number') return 'ppo_cartpole.py reported no env_steps_per_s';
  log(`PyTorch reference seed ${seed}: ${t.env_steps_per_s.toFixed(0)} env steps/s`);
  return {
    seed,
    sps: t.env_steps_per_s,
    finalReturn: Number(t.final_mean_return_20),
    about: `PyTorch ${String(t.torch)} (BLAS ${String(t.blas)})`,
  };
}

async function cartpole(): Promise<BenchResult[]> {
  const { cartpoleSeeds, cartpoleSteps, torchSteps, torchRuns } = SIZES;
  const threads = String(shippedConfig('ppo-cartpole.yaml', tmpdir(), 1, 1).train.threads);
  // The reference runs are spread over ours (before the first seed, between, after the last) so a drift
  // in the machine's speed during the suite reaches both sides of the ratio.
  const torchAt = new Set(
    Array.from({ length: torchRuns }, (_, i) => (torchRuns === 1 ? 0 : Math.round((i * cartpoleSeeds) / (torchRuns - 1)))),
  );
  const runs: SeedRun[] = [];
  const torch: TorchRun[] = [];
  let torchFailure: string | undefined;
  const reference = () => {
    if (torchFailure !== undefined) return;
    const r = torchRun(torch.length + 1, torchSteps, threads);
    if (typeof r === 'string') torchFailure = r;
    else torch.push(r);
  };
  for (const seed of seedsOf(cartpoleSeeds)) {
    if (torchAt.has(seed - 1)) reference();
    runs.push(await runSeed('ppo-cartpole.yaml', seed, cartpoleSteps));
  }
  if (torchAt.has(cartpoleSeeds)) reference();
  const torchSps = torch.length ? median(torch.map((t) => t.sps)) : undefined;
  const torchNote = torch.length
    ? `${torch[0].about}, median of ${torch.length} runs (seeds ${torch.map((t) => t.seed).join(', ')}: ${torch.map((t) => t.sps.toFixed(0)).join('/')} env steps/s) of ${k(torchSteps)} env steps, ${threads} thread(s), run between ours; final return_mean ${torch.map((t) => t.finalReturn.toFixed(1)).join('/')}`
    : `no PyTorch reference: ${torchFailure}`;
  if (!torch.length) log(torchNote);

  const sps = median(runs.map((r) => r.summary.env_steps_per_s));
  const solved = runs.filter((r) => r.solvedAt !== null);
  const results: BenchResult[] = [
    {
      name: 'ppo.cartpole.env_steps_per_s',
      metric: `PPO CartPole-v1 embedded training throughput (env + act + update), median of seeds 1-${cartpoleSeeds}, ${k(cartpoleSteps)} env steps each`,
      value: sps,
      unit: 'env steps/s',
      ...(torchSps === undefined
        ? {}
        : {
            baseline: { name: 'PyTorch CleanRL-style PPO (bench/torch/ppo_cartpole.py), env steps/s', value: torchSps },
            ratio: sps / torchSps,
          }),
      notes: `configs/ppo-cartpole.yaml; per seed ${runs.map((r) => r.summary.env_steps_per_s.toFixed(0)).join('/')} env steps/s; ${torchNote}. ratio = rlmesh / PyTorch.`,
    },
    {
      name: 'ppo.cartpole.solved',
      metric: `seeds whose return_mean (last 20 episodes) reached ${SOLVED} within ${k(cartpoleSteps)} env steps, of ${cartpoleSeeds}`,
      value: solved.length,
      unit: 'seeds',
      notes: `first env steps at ${SOLVED} per seed: ${runs.map((r) => `${r.seed}:${r.solvedAt ?? 'never'}`).join(', ')}${solved.length ? `; median of those that did ${median(solved.map((r) => r.solvedAt as number)).toFixed(0)}` : ''}.`,
    },
  ];
  for (const r of runs) {
    results.push({
      name: `ppo.cartpole.seed_${r.seed}`,
      metric: `final return_mean (last 20 episodes) after ${k(r.summary.env_steps)} env steps`,
      value: r.summary.return_mean,
      unit: 'return',
      notes: `${r.summary.env_steps_per_s.toFixed(0)} env steps/s (${r.summary.seconds.toFixed(1)} s); return_mean first >= ${SOLVED} at ${r.solvedAt ?? 'never'} env steps; curve (env_steps:return_mean every ${CURVE_EVERY} updates): ${fmtCurve(r.curve)}`,
    });
  }
  return results;
}

/**
 * A published PPO figure for Pendulum-v1, for scale (not a same-run baseline): the RL Zoo's pre-trained
 * Stable-Baselines3 agent, evaluated with its deterministic policy, where ours is the training return
 * of the stochastic policy.
 */
const PUBLISHED_PENDULUM =
  'Published for scale: Stable-Baselines3 RL Zoo PPO agent (model card sb3/ppo-Pendulum-v1) mean reward -230.42 +/- 142.54, deterministic evaluation; this row is the stochastic training return.';

async function pendulum(): Promise<BenchResult[]> {
  const { pendulumSeeds, pendulumSteps } = SIZES;
  const runs: SeedRun[] = [];
  for (const seed of seedsOf(pendulumSeeds)) runs.push(await runSeed('ppo-pendulum.yaml', seed, pendulumSteps));
  const finals = runs.map((r) => r.summary.return_mean);
  return [
    {
      name: 'ppo.pendulum.return_mean',
      metric: `PPO Pendulum-v1 final return_mean (last 20 episodes) after ${k(pendulumSteps)} env steps, median of seeds 1-${pendulumSeeds}`,
      value: median(finals),
      unit: 'return',
      notes: `${PUBLISHED_PENDULUM} configs/ppo-pendulum.yaml (no observation or reward normalisation); per seed ${runs.map((r) => `${r.seed}:${r.summary.return_mean.toFixed(0)}`).join(', ')}; ${median(runs.map((r) => r.summary.env_steps_per_s)).toFixed(0)} env steps/s median, ${runs.map((r) => r.summary.seconds.toFixed(0)).join('/')} s per seed.`,
    },
    ...runs.map(
      (r): BenchResult => ({
        name: `ppo.pendulum.seed_${r.seed}`,
        metric: `final return_mean (last 20 episodes) after ${k(r.summary.env_steps)} env steps`,
        value: r.summary.return_mean,
        unit: 'return',
        notes: `${r.summary.env_steps_per_s.toFixed(0)} env steps/s (${r.summary.seconds.toFixed(1)} s); curve (env_steps:return_mean every ${CURVE_EVERY} updates): ${fmtCurve(r.curve)}`,
      }),
    ),
  ];
}

export async function runPpoBenchmarks(_s: BenchSettings): Promise<BenchResult[]> {
  log(`sizes ${JSON.stringify(SIZES)}${QUICK ? ' (RLMESH_BENCH_QUICK)' : ''}`);
  return [...(await cartpole()), ...(await pendulum())];
}
