/**
 * `rlmesh experiment <config.yaml>`: the card game's SFT -> GRPO -> evaluation experiment in one
 * command. Each stage is the single command's own function, run in this process with its own
 * progress output: data (rlmesh data cards), sft (rlmesh sft), rl (rlmesh train on a text env), eval
 * (rlmesh eval of both final checkpoints). Then results.json and report.html are written from what
 * the stages left on disk.
 *
 * Resumable: out_dir/experiment.json records each finished stage with the hash of its inputs (its
 * resolved config, and the record of the stage it reads from). A stage whose record matches and whose
 * outputs exist is skipped, so after a crash or Ctrl-C only the unfinished stages run again, and a
 * training stage stopped with the same inputs resumes from its newest checkpoint (the configs'
 * checkpoint_every); a re-run stage changes its record, so the stages after it run again too.
 * --force re-runs a stage from its start.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, UsageError } from './args';
import { dataCommand } from './data';
import { evalCommand } from './eval';
import { evalFile, hashOf, planExperiment, STAGES, type Stage } from './experiment-config';
import { writeExperimentResults } from './experiment-results';
import { sftFromConfig } from './sft';
import { trainSequenceCommand } from './train-sequence';

interface StageRecord {
  hash: string;
  finished_at: string;
  seconds: number;
}

type Records = Partial<Record<Stage, StageRecord>>;

/** The stage under way when the state file was last written, so that a re-run can resume it. */
interface Running {
  stage: Stage;
  hash: string;
  /** ms since the epoch: checkpoints older than this belong to an earlier run of the stage. */
  started_at: number;
}

/**
 * The newest checkpoint `<runDir>/checkpoints/<prefix>_<n>` that holds `stateFile` (a resumable one)
 * and was written since `since`, so that a longer earlier run's leftovers are never resumed.
 */
function latestCheckpoint(runDir: string, prefix: string, stateFile: string, since: number): string | undefined {
  const dir = join(runDir, 'checkpoints');
  if (!existsSync(dir)) return undefined;
  const steps = readdirSync(dir)
    .map((f) => new RegExp(`^${prefix}_(\\d+)$`).exec(f))
    .filter((m): m is RegExpExecArray => {
      const state = m && join(dir, m[0], stateFile);
      return state !== null && existsSync(state) && statSync(state).mtimeMs >= since;
    })
    .map((m) => Number(m[1]));
  return steps.length ? join(dir, `${prefix}_${Math.max(...steps)}`) : undefined;
}

/** The final checkpoint a training stage's summary.json names, when both exist. */
function finalCheckpoint(runDir: string): string | null {
  const file = join(runDir, 'summary.json');
  if (!existsSync(file)) return null;
  const ckpt = (JSON.parse(readFileSync(file, 'utf8')) as { final_checkpoint?: string }).final_checkpoint;
  return ckpt && existsSync(ckpt) ? ckpt : null;
}

export async function experimentCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length !== 1) throw new UsageError('experiment needs exactly one config file');
  const { force = '', ...overrides } = options;
  const forced = new Set(force === '' ? [] : force.split(','));
  for (const s of forced)
    if (!(STAGES as readonly string[]).includes(s))
      throw new UsageError(`--force: unknown stage ${JSON.stringify(s)} (stages: ${STAGES.join(', ')})`);
  const plan = await planExperiment(positionals[0], overrides);
  const out = plan.cfg.out_dir;
  mkdirSync(out, { recursive: true });
  const stateFile = join(out, 'experiment.json');
  const state = existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) : {};
  const records: Records = state.stages ?? {};
  const interrupted: Running | undefined = state.running;
  const save = (running?: Running) =>
    writeFileSync(stateFile, `${JSON.stringify({ config: resolve(positionals[0]), stages: records, running }, null, 2)}\n`);
  const started = Date.now();

  /**
   * Runs a stage unless its record matches `inputs` and `done()` finds its outputs; records it after.
   * A training stage interrupted with the same inputs resumes from its newest checkpoint (`resumable`).
   */
  const stage = async (
    name: Stage,
    inputs: unknown,
    done: () => boolean,
    run: (resumeFrom?: string) => Promise<void>,
    resumable?: (since: number) => string | undefined,
  ) => {
    const hash = hashOf(inputs);
    const rec = records[name];
    if (!forced.has(name) && rec?.hash === hash && done()) {
      console.log(`rlmesh experiment: ${name}: done already (inputs ${hash}, finished ${rec.finished_at}); skipped`);
      return;
    }
    const sameRun = !forced.has(name) && interrupted?.stage === name && interrupted.hash === hash;
    const resumeFrom = sameRun ? resumable?.(interrupted.started_at) : undefined;
    const why = resumeFrom
      ? `interrupted, resuming from ${resumeFrom}`
      : rec && rec.hash !== hash
        ? 'inputs changed, running again'
        : 'running';
    console.log(`rlmesh experiment: ${name}: ${why} (inputs ${hash})`);
    const t0 = Date.now();
    // A resumed run keeps its first start, so that its earlier checkpoints stay resumable.
    save({ stage: name, hash, started_at: resumeFrom && interrupted ? interrupted.started_at : t0 });
    await run(resumeFrom);
    records[name] = { hash, finished_at: new Date().toISOString(), seconds: (Date.now() - t0) / 1000 };
    save();
  };
  const ok = (code: number, what: string) => {
    if (code !== 0) throw new Error(`experiment: the ${what} stage exited with ${code}`);
  };

  const d = plan.cfg.data;
  await stage(
    'data',
    d,
    () => existsSync(join(plan.dataDir, 'manifest.json')),
    async () =>
      ok(
        await dataCommand([
          'cards',
          ...['--out', plan.dataDir, '--seed', String(d.seed)],
          ...['--n-train', String(d.n_train), '--n-val', String(d.n_val), '--n-test', String(d.n_test)],
        ]),
        'data',
      ),
  );
  await stage(
    'sft',
    { data: records.data, config: plan.sftRaw },
    () => finalCheckpoint(plan.sftDir) !== null,
    async (resumeFrom) => ok(await sftFromConfig(plan.sftRaw, resumeFrom), 'sft'),
    (since) => latestCheckpoint(plan.sftDir, 'step', 'trainer_state.json', since),
  );
  const sftCheckpoint = finalCheckpoint(plan.sftDir);
  if (!sftCheckpoint) throw new Error(`experiment: the sft stage left no final checkpoint in ${plan.sftDir}`);
  const rlRaw = { ...plan.rlRaw, init_from: sftCheckpoint };
  await stage(
    'rl',
    { sft: records.sft, config: rlRaw },
    () => finalCheckpoint(plan.rlDir) !== null,
    async (resumeFrom) => ok(await trainSequenceCommand(rlRaw, resumeFrom), 'rl'),
    (since) => latestCheckpoint(plan.rlDir, 'update', 'rl_state.json', since),
  );
  const rlCheckpoint = finalCheckpoint(plan.rlDir);
  if (!rlCheckpoint) throw new Error(`experiment: the rl stage left no final checkpoint in ${plan.rlDir}`);
  await stage(
    'eval',
    { sft: records.sft, rl: records.rl, suite: plan.suiteText },
    () => existsSync(evalFile(plan, 'sft')) && existsSync(evalFile(plan, 'rl')),
    async () => {
      for (const [who, ckpt, label] of [
        ['sft', sftCheckpoint, 'SFT'],
        ['rl', rlCheckpoint, 'SFT + GRPO'],
      ] as const)
        ok(await evalCommand([plan.cfg.eval.suite, '--checkpoint', ckpt, '--label', label, '--out', evalFile(plan, who)]), 'eval');
    },
  );
  const { results, reportFile, resultsFile } = writeExperimentResults(plan, { sft: sftCheckpoint, rl: rlCheckpoint });
  console.log(`rlmesh experiment: ${results.verdict.sentence}`);
  console.log(`results ${resultsFile}`);
  console.log(`report ${reportFile}`);
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}
