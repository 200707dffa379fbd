/**
 * `rlmesh report <run dir | evaluation.json ...> [--out report.html] [--title T]`: writes one
 * self-contained HTML page (curves of every logged metric, interval bars, the Pareto frontier).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs, UsageError } from './args';

export const REPORT_USAGE = `rlmesh report <run dir | evaluation.json ...> [--out report.html] [--title T]
    Writes a self-contained HTML page: learning curves of every logged metric, success rates with
    their intervals per environment and split, and the Pareto frontier of the evaluations.`;

export async function report(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  const { out = 'report.html', title, ...rest } = options;
  const unknown = Object.keys(rest);
  if (unknown.length) throw new UsageError(`report: unknown option --${unknown[0]}`);
  if (positionals.length === 0) throw new UsageError('report needs a run directory or evaluation JSON files');
  const { reportData, renderPage } = await import('@rlmesh/report');
  const { ConfigError } = await import('@rlmesh/core');
  let data: ReturnType<typeof reportData>;
  try {
    data = reportData(positionals, title);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(`report: ${e.message}`);
    throw e;
  }
  try {
    writeFileSync(out, renderPage(data));
  } catch (e) {
    throw new UsageError(`report: cannot write ${out}: ${(e as Error).message}`);
  }
  const points = data.runs.reduce((n, r) => n + r.samples.length, 0);
  console.log(
    `rlmesh report: ${resolve(out)} (${data.runs.length} run(s), ${points} updates, ${data.evaluations?.evaluations.length ?? 0} evaluation(s))`,
  );
  return 0;
}
