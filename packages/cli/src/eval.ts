/**
 * `rlmesh eval <suite.yaml> --checkpoint <path>`: evaluates a checkpoint on a suite in this process,
 * prints one row per suite entry (success rate with its 80% Jeffreys interval, mean return) and the
 * aggregates per split, and writes the EvaluationResult JSON where reports and the evaluator's store
 * read it: <run dir>/evaluations/<id>.json, or --out FILE.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, type EvaluationResult } from '@rlmesh/core';
import { parseArgs, UsageError } from './args';
import { Progress } from './progress';

export const EVAL_USAGE = `rlmesh eval <suite.yaml> --checkpoint <path> [--greedy | --sampled] [--label NAME] [--out FILE]
    Evaluates a training checkpoint or a run's model.safetensors (suites of numeric envs), or a
    Hugging Face GPT-2 directory such as runs/<name>/checkpoints/step_<n> (suites of text envs, e.g.
    configs/suites/cards.yaml), in this process, deterministically by seed. --greedy / --sampled
    override the suite's mode. Writes the result JSON to FILE, or to evaluations/<id>.json in the
    checkpoint's run directory.`;

const OPTIONS = new Set(['checkpoint', 'greedy', 'sampled', 'label', 'out']);

/**
 * The run directory a checkpoint belongs to: <run>/checkpoints/update-N.safetensors,
 * <run>/checkpoints/step_N (a GPT-2 directory) or <run>/model.safetensors.
 */
export function runDirOf(checkpoint: string): string {
  const dir = dirname(checkpoint);
  return basename(dir) === 'checkpoints' ? dirname(dir) : dir;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The result as a table: one row per entry, then the aggregates. */
export function formatResult(r: EvaluationResult): string[] {
  const rows = [
    [
      'entry',
      'split',
      'env',
      'episodes',
      `success [${pct(r.environments[0]?.interval.level ?? 0.8)} interval]`,
      'return mean',
      'components',
    ],
    ...r.environments.map((e) => [
      e.name,
      e.split,
      e.level === undefined ? e.env_id : `${e.env_id} level ${e.level}`,
      String(e.episodes),
      `${pct(e.success_rate)} [${pct(e.interval.low)}, ${pct(e.interval.high)}]`,
      e.returns.mean.toFixed(2),
      Object.entries(e.components ?? {})
        .map(([c, v]) => `${c} ${v.toFixed(2)}`)
        .join(', '),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row: string[]) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]))
      .join('  ')
      .trimEnd();
  const splits = Object.entries(r.aggregate.by_split).map(([s, a]) => `${s} ${pct(a.success_rate)} (return ${a.return_mean.toFixed(2)})`);
  return [
    line(rows[0]),
    ...rows.slice(1).map(line),
    `weighted: all ${pct(r.aggregate.all.success_rate)} (return ${r.aggregate.all.return_mean.toFixed(2)}); ${splits.join('; ')}`,
  ];
}

export async function evalCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv, ['greedy', 'sampled']);
  for (const k of Object.keys(options)) if (!OPTIONS.has(k)) throw new UsageError(`eval: unknown option --${k}; see rlmesh eval --help`);
  if (positionals.length !== 1) throw new UsageError('eval needs exactly one suite file');
  if (options.greedy && options.sampled) throw new UsageError('eval: --greedy and --sampled exclude each other');
  const checkpoint = options.checkpoint;
  if (!checkpoint) throw new UsageError('eval needs --checkpoint <path>');
  if (!existsSync(checkpoint)) throw new UsageError(`--checkpoint: no file or directory at ${checkpoint}`);
  // Loaded lazily so that `rlmesh help` and argument errors do not pay for onnxruntime start-up.
  const { openCheckpoint, evaluate, FileEvaluationStore, loadSuite, PolicyFitError } = await import('@rlmesh/evaluator');
  let suite: ReturnType<typeof loadSuite>;
  try {
    suite = loadSuite(positionals[0]);
  } catch (e) {
    if (e instanceof ConfigError && e.key === '(file)') throw new UsageError(e.rule);
    if (e instanceof ConfigError) throw new UsageError(`suite ${positionals[0]}: ${e.message}`);
    throw e;
  }
  if (options.greedy) suite.mode = 'greedy';
  if (options.sampled) suite.mode = 'sampled';
  let policy: Awaited<ReturnType<typeof openCheckpoint>>;
  try {
    policy = await openCheckpoint(checkpoint, options.label);
  } catch (e) {
    throw new UsageError(`--checkpoint: cannot load ${checkpoint} as a policy: ${(e as Error).message.split('\n')[0]}`);
  }
  const total = suite.entries.reduce((n, e) => n + e.episodes, 0);
  const bar = new Progress(total, `eval ${suite.name}`);
  const before = new Map<string, number>();
  let done = 0;
  let result: EvaluationResult;
  try {
    result = await evaluate(suite, policy, {
      onProgress: (p) => {
        done += p.episodes_done - (before.get(p.entry) ?? 0);
        before.set(p.entry, p.episodes_done);
        bar.update(done, { entry: p.entry });
      },
    });
  } catch (e) {
    if (e instanceof PolicyFitError) throw new UsageError(`--checkpoint: ${e.message.split('\n')[0]}`);
    throw e;
  } finally {
    await policy.close();
  }
  console.log(`rlmesh eval: ${policy.ref.label ?? checkpoint} on suite ${suite.name} (${suite.mode}), ${result.duration_s.toFixed(1)} s`);
  for (const l of formatResult(result)) console.log(l);
  let path: string;
  if (options.out) {
    path = options.out;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  } else {
    const dir = join(runDirOf(checkpoint), 'evaluations');
    await new FileEvaluationStore(dir).put(result);
    path = join(dir, `${result.id}.json`);
  }
  console.log(`wrote ${path}`);
  return 0;
}
