/**
 * `rlmesh cycle <config.yaml>`: the storyworld SAE <-> RL cycle in one command. Stages, each the
 * single command's own function run in this process:
 *
 *   data          rlmesh data storyworld
 *   sft           rlmesh sft: a small GPT-2 from scratch on the synthetic worlds
 *   capture_0     the SFT model's sampled completions of fixed Storyworld prompts, scored by the
 *                 verifier, and its activations at capture.hook on their tokens (completion-features.ts)
 *   sae_0         an SAE trained on them (rlmesh sae train's SaeServiceCore)
 *   analysis_0    latents correlated with the verifier: a bonus set and a penalty set
 *   then for c = 1..cycles:
 *   rl_c          GRPO (rlmesh train) from the previous policy, on the verifier's components plus the
 *                 feature rewards of analysis_{c-1} (read at the previous SAE's hook)
 *   capture_c, sae_c, analysis_c as above, on rl_c's final policy
 *
 * results.json and report.html hold, per cycle, the sampled completions' valid-JSON rate, every
 * verifier component and total, the SAE's L0 and MSE, GRPO's reward and the sets picked.
 * Resumable as rlmesh experiment is (experiment-stages.ts): state in out_dir/cycle.json.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs, UsageError } from './args';
import { CYCLE_STAGE_KINDS, type CyclePlan, cycleDirs, planCycle } from './cycle-config';
import { writeCycleResults } from './cycle-results';
import { dataCommand } from './data';
import { exitedOk, finalCheckpoint, latestCheckpoint, StageRunner } from './experiment-stages';
import { sftFromConfig } from './sft';
import { trainSequenceCommand } from './train-sequence';

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

/** The feature sets analysis of cycle `c` picked, as an rl config's feature_rewards list. */
function featureRewardsOf(plan: CyclePlan, c: number): Record<string, unknown>[] {
  const a = readJson(cycleDirs(plan, c).analysis) as { sets: Record<string, unknown>[] };
  return a.sets;
}

export async function cycleCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length !== 1) throw new UsageError('cycle needs exactly one config file');
  const { force = '', ...overrides } = options;
  const forced = new Set(force === '' ? [] : force.split(','));
  for (const s of forced)
    if (!(CYCLE_STAGE_KINDS as readonly string[]).includes(s.replace(/_\d+$/, '')))
      throw new UsageError(`--force: unknown stage ${JSON.stringify(s)} (stages: ${CYCLE_STAGE_KINDS.join(', ')}, or one cycle's: rl_2)`);
  const plan = await planCycle(positionals[0], overrides);
  const { cfg } = plan;
  mkdirSync(cfg.out_dir, { recursive: true });
  const runner = new StageRunner(join(cfg.out_dir, 'cycle.json'), resolve(positionals[0]), forced, 'rlmesh cycle');
  const rec = runner.records;
  const started = Date.now();
  const { captureCompletions, loadSaeLens, readActivationStore, SaeServiceCore, selectFeatures } = await import('@rlmesh/sae');

  const d = cfg.data;
  await runner.stage(
    'data',
    d,
    () => existsSync(join(plan.dataDir, 'manifest.json')),
    async () =>
      exitedOk(
        await dataCommand([
          'storyworld',
          ...['--out', plan.dataDir, '--seed', String(d.seed)],
          ...['--n-train', String(d.n_train), '--n-val', String(d.n_val), '--n-test', String(d.n_test)],
        ]),
        'data',
      ),
  );
  await runner.stage(
    'sft',
    { data: rec.data, config: plan.sftRaw },
    () => finalCheckpoint(plan.sftDir) !== null,
    async (resumeFrom) => exitedOk(await sftFromConfig(plan.sftRaw, resumeFrom), 'sft'),
    (since) => latestCheckpoint(plan.sftDir, 'step', 'trainer_state.json', since),
  );
  let policy = finalCheckpoint(plan.sftDir);
  if (!policy) throw new Error(`cycle: the sft stage left no final checkpoint in ${plan.sftDir}`);
  let upstream: unknown = rec.sft;

  for (let c = 0; c <= cfg.cycles; c++) {
    const dirs = cycleDirs(plan, c);
    if (c > 0) {
      const rlRaw = {
        ...plan.rlRaw,
        run: { ...(plan.rlRaw.run as object), out_dir: join(cfg.out_dir, `cycle_${c}`), name: 'rl' },
        init_from: policy,
        feature_rewards: featureRewardsOf(plan, c - 1),
      };
      await runner.stage(
        `rl_${c}`,
        { from: upstream, analysis: rec[`analysis_${c - 1}`], config: rlRaw },
        () => finalCheckpoint(dirs.rl) !== null,
        async (resumeFrom) => exitedOk(await trainSequenceCommand(rlRaw, resumeFrom), `rl_${c}`),
        (since) => latestCheckpoint(dirs.rl, 'update', 'rl_state.json', since),
      );
      policy = finalCheckpoint(dirs.rl);
      if (!policy) throw new Error(`cycle: rl_${c} left no final checkpoint in ${dirs.rl}`);
      upstream = rec[`rl_${c}`];
    }
    const cap = cfg.capture;
    const from = policy;
    await runner.stage(
      `capture_${c}`,
      { from: upstream, capture: cap, env: plan.rlRaw.env },
      () => existsSync(join(dirs.capture, 'capture.json')),
      async () => {
        rmSync(dirs.capture, { recursive: true, force: true });
        const env = plan.rlRaw.env as { id: string; options?: Record<string, unknown> };
        const r = await captureCompletions(
          from,
          {
            env,
            hook: cap.hook,
            prompts: cap.prompts,
            generations: cap.generations,
            maxNewTokens: cap.max_new_tokens,
            temperature: cap.temperature,
            seed: cap.seed,
            threads: Number((plan.rlRaw.train as { threads?: number } | undefined)?.threads ?? 2),
          },
          dirs.capture,
        );
        writeFileSync(join(dirs.capture, 'capture.json'), `${JSON.stringify({ checkpoint: from, ...r }, null, 2)}\n`);
        console.log(
          `rlmesh cycle: capture_${c}: ${r.completions} completions, ${r.rows} token rows; ` +
            Object.entries(r.means)
              .map(([k, v]) => `${k} ${v.toFixed(3)}`)
              .join('  '),
        );
      },
    );
    await runner.stage(
      `sae_${c}`,
      { capture: rec[`capture_${c}`], sae: cfg.sae },
      () => existsSync(join(dirs.sae, 'cfg.json')),
      async () => {
        rmSync(dirs.sae, { recursive: true, force: true });
        const core = new SaeServiceCore(cfg.out_dir);
        try {
          const info = await core.train({
            activations: relative(cfg.out_dir, dirs.capture),
            config: cfg.sae.config,
            steps: cfg.sae.steps,
            batch_size: cfg.sae.batch_size,
            id: dirs.saeId,
          });
          const m = info.metrics;
          console.log(
            `rlmesh cycle: sae_${c}: ${info.architecture} d_sae ${info.d_sae}; held-out l0 ${m.l0.toFixed(2)}  mse ${m.mse.toFixed(4)}  explained_variance ${m.explained_variance.toFixed(3)}  dead ${m.dead_fraction.toFixed(3)}`,
          );
        } finally {
          await core.close();
        }
      },
    );
    await runner.stage(
      `analysis_${c}`,
      { sae: rec[`sae_${c}`], features: cfg.features },
      () => existsSync(dirs.analysis),
      async () => {
        const f = cfg.features;
        const sel = await selectFeatures(await readActivationStore(dirs.capture), await loadSaeLens(dirs.sae), {
          target: f.target,
          top: f.top,
          minAbsR: f.min_abs_r,
        });
        const set = (name: string, kind: 'bonus' | 'penalty', picked: { feature: number }[]) =>
          picked.length === 0
            ? []
            : [
                {
                  name,
                  hook: cfg.capture.hook,
                  sae: dirs.sae,
                  features: picked.map((p) => p.feature),
                  weight: f.weight,
                  kind,
                  reduce: f.reduce,
                },
              ];
        const sets = [...set('feature_bonus', 'bonus', sel.bonus), ...set('feature_penalty', 'penalty', sel.penalty)];
        writeFileSync(dirs.analysis, `${JSON.stringify({ ...sel, sets }, null, 2)}\n`);
        console.log(
          `rlmesh cycle: analysis_${c}: target ${sel.target}; bonus ${sel.bonus.map((b) => `${b.feature} (r ${b.r.toFixed(2)})`).join(', ') || 'none'}; ` +
            `penalty ${sel.penalty.map((b) => `${b.feature} (r ${b.r.toFixed(2)})`).join(', ') || 'none'}`,
        );
      },
    );
    upstream = rec[`analysis_${c}`];
  }
  const { resultsFile, reportFile, results } = writeCycleResults(plan);
  for (const row of results.cycles)
    console.log(
      `cycle ${row.cycle}: valid_json ${row.verifier.valid_json.toFixed(3)}  total ${row.verifier.total.toFixed(3)}  sae l0 ${row.sae.l0.toFixed(2)} mse ${row.sae.mse.toFixed(4)}` +
        (row.rl ? `  grpo env reward ${row.rl.reward_start.toFixed(3)} -> ${row.rl.reward_end.toFixed(3)}` : ''),
    );
  console.log(`results ${resultsFile}`);
  console.log(`report ${reportFile}`);
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}
