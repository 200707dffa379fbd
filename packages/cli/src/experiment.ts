/**
 * `rlmesh experiment <config.yaml>`: the card game's SFT -> GRPO -> evaluation experiment in one
 * command. Each stage is the single command's own function, run in this process with its own
 * progress output: data (rlmesh data cards), sft (rlmesh sft), rl (rlmesh train on a text env), eval
 * (rlmesh eval of both final checkpoints). Then results.json and report.html are written from what
 * the stages left on disk.
 *
 * Resumable (experiment-stages.ts): out_dir/experiment.json records each finished stage with the
 * hash of its inputs (its resolved config, and the record of the stage it reads from). A stage whose
 * record matches and whose outputs exist is skipped, so after a crash or Ctrl-C only the unfinished
 * stages run again, and a training stage stopped with the same inputs resumes from its newest
 * checkpoint (the configs' checkpoint_every); a re-run stage changes its record, so the stages after
 * it run again too. --force re-runs a stage from its start.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isAffineConfig } from './affine-config';
import { affinePipelineCommand } from './affine-pipeline';
import { parseArgs, UsageError } from './args';
import { dataCommand } from './data';
import { evalCommand } from './eval';
import { evalFile, planExperiment, STAGES } from './experiment-config';
import { writeExperimentResults } from './experiment-results';
import { finalCheckpoint, latestCheckpoint, exitedOk as ok, StageRunner } from './experiment-stages';
import { loadConfig } from './main';
import { sftFromConfig } from './sft';
import { trainSequenceCommand } from './train-sequence';

export async function experimentCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length !== 1) throw new UsageError('experiment needs exactly one config file');
  const { force = '', ...overrides } = options;
  const forced = new Set(force === '' ? [] : force.split(','));
  // One command, two pipelines: a config that says `pipeline: affine` is the Affine pipeline's.
  if (isAffineConfig(loadConfig(positionals[0], {}))) return affinePipelineCommand(positionals[0], overrides, forced);
  for (const s of forced)
    if (!(STAGES as readonly string[]).includes(s))
      throw new UsageError(`--force: unknown stage ${JSON.stringify(s)} (stages: ${STAGES.join(', ')})`);
  const plan = await planExperiment(positionals[0], overrides);
  const out = plan.cfg.out_dir;
  mkdirSync(out, { recursive: true });
  const runner = new StageRunner(join(out, 'experiment.json'), resolve(positionals[0]), forced, 'rlmesh experiment');
  const records = runner.records;
  const started = Date.now();
  const stage = runner.stage.bind(runner);

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
          ...['--completion', d.completion],
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
