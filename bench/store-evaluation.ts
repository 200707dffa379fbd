/**
 * Keeps evaluations made by `rlmesh eval` (their result JSON) as a bench results file, so that
 * bench/README.md shows them as a section and every later `npm run bench` keeps it (the README is
 * written from all of bench/results). For results whose policy takes longer to train than a bench
 * run may (the card game's SFT checkpoint): the evaluation is measured once by the documented
 * command and stored with it.
 *
 *   npx tsx --conditions=source bench/store-evaluation.ts <name> "<description>" first.json [more.json ...]
 *   npm run bench -- --readme-only
 *
 * One row per evaluation and suite entry, and one per evaluation for its aggregates. Rows of the
 * second and later evaluations take the first evaluation's same entry as their baseline (ratio =
 * this / first), so two checkpoints on one suite read side by side.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { EnvironmentResult, EvaluationResult } from '@rlmesh/core';
import { type BenchResult, machine, type SuiteFile, settingsFromEnv } from './harness';

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const label = (r: EvaluationResult) => r.policy.label ?? r.policy.checkpoint ?? r.policy.run_id ?? r.id;

function entryRow(r: EvaluationResult, e: EnvironmentResult, base?: { r: EvaluationResult; e: EnvironmentResult }): BenchResult {
  const parts = Object.entries(e.components ?? {}).map(([c, v]) => `${c} ${v.toFixed(3)}`);
  return {
    name: `${label(r)}: ${e.name}`,
    metric: `${r.mode} success rate, split ${e.split}, ${e.episodes} episodes`,
    value: 100 * e.success_rate,
    unit: '%',
    ...(base ? { baseline: { name: `${label(base.r)}: ${e.name}`, value: 100 * base.e.success_rate } } : {}),
    ...(base && base.e.success_rate > 0 ? { ratio: e.success_rate / base.e.success_rate } : {}),
    notes:
      `${e.successes} of ${e.episodes}; 80% Jeffreys [${pct(e.interval.low)}, ${pct(e.interval.high)}]` +
      `${parts.length ? `; mean ${parts.join(', ')}` : ''}; ${e.env_id} ${JSON.stringify(e.options)}, seeds ${e.seeds[0]}..${e.seeds.at(-1)}.`,
  };
}

function main(): void {
  const [name, description, ...files] = process.argv.slice(2);
  if (!name || !description || files.length === 0)
    throw new Error('usage: store-evaluation.ts <name> "<description>" <evaluation.json> [more ...]');
  const evals = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as EvaluationResult);
  const first = evals[0];
  const rows: BenchResult[] = [];
  for (const [k, r] of evals.entries()) {
    if (r.suite !== first.suite) throw new Error(`${files[k]}: suite ${r.suite}, ${files[0]} has ${first.suite}; store one suite`);
    for (const e of r.environments) {
      const b = k > 0 ? first.environments.find((x) => x.name === e.name) : undefined;
      rows.push(entryRow(r, e, b ? { r: first, e: b } : undefined));
    }
    const splits = Object.entries(r.aggregate.by_split).map(([s, a]) => `${s} ${pct(a.success_rate)}`);
    rows.push({
      name: `${label(r)}: aggregate`,
      metric: `weighted ${r.mode} success over suite ${r.suite}`,
      value: 100 * r.aggregate.all.success_rate,
      unit: '%',
      notes: `by split: ${splits.join(', ')}; ${r.environments.reduce((n, e) => n + e.episodes, 0)} episodes in ${r.duration_s.toFixed(1)} s; policy ${JSON.stringify(r.policy)}; evaluation ${r.id}.`,
    });
  }
  const file: SuiteFile = {
    suite: name,
    description,
    generatedAt: evals
      .map((r) => r.created_at)
      .sort()
      .at(-1) as string,
    command: 'rlmesh eval, stored by bench/store-evaluation.ts',
    machine: machine(),
    settings: settingsFromEnv(),
    durationS: evals.reduce((s, r) => s + r.duration_s, 0),
    results: rows,
  };
  const out = path.join(__dirname, 'results', `${name}.json`);
  writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
  process.stderr.write(`wrote ${path.relative(process.cwd(), out)} (${rows.length} rows)\n`);
}

main();
