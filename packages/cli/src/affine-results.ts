/**
 * What the Affine pipeline concludes: results.json (per env and evaluation: accuracy with its
 * Jeffreys interval, mean / median / std of the episode reward; the weighted aggregates; each
 * trained stage compared with the baseline by Pareto dominance, a difference counting only where
 * the intervals separate) and report.html (the table, SFT's loss and RL's reward curves, and the
 * evaluations' interval bars and Pareto frontier plot from @rlmesh/report).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EnvironmentResult, EvaluationResult, RateInterval } from '@rlmesh/core';
import { aggregate, beats, dominates } from '@rlmesh/evaluator';
import { type CurveGroup, evaluationsView, readEvaluationFile, renderPage, type Sample } from '@rlmesh/report';
import { type AffinePlan, affineEvalFile, EVALUATIONS, type Who } from './affine-config';

export interface EnvRow {
  env: string;
  n: number;
  successes: number;
  accuracy: number;
  interval: RateInterval;
  reward: { mean: number; median: number; std: number };
  components: Record<string, number>;
}

export interface StageResult {
  label: string;
  file: string;
  envs: EnvRow[];
  /** Means over envs weighted by the suite's weights (normalised), as the evaluator computes them. */
  weighted: { accuracy: number; reward_mean: number };
  /** The same weighted means over each group of envs (envs.<id>.group), when the config names groups. */
  by_group: Record<string, { accuracy: number; reward_mean: number }>;
}

/** A trained stage against an earlier one (the baseline, or RL against SFT), env by env and by Pareto dominance. */
export interface ParetoComparison {
  stage: Who;
  against: Who;
  /** Envs where the stage's interval lies wholly above the other's. */
  better_on: string[];
  /** Envs where the other's lies wholly above the stage's. */
  worse_on: string[];
  dominates: boolean;
  dominated: boolean;
}

const row = (e: EnvironmentResult): EnvRow => ({
  env: e.name,
  n: e.episodes,
  successes: e.successes,
  accuracy: e.success_rate,
  interval: e.interval,
  reward: { mean: e.returns.mean, median: e.returns.median, std: e.returns.std },
  components: e.components ?? {},
});

function stageResult(label: string, file: string, r: EvaluationResult, groups: Record<string, string>): StageResult {
  const by_group: StageResult['by_group'] = {};
  for (const g of new Set(Object.values(groups).filter((x) => x !== ''))) {
    const a = aggregate(r.environments.filter((e) => groups[e.name] === g));
    by_group[g] = { accuracy: a.success_rate, reward_mean: a.return_mean };
  }
  return {
    label,
    file,
    envs: r.environments.map(row),
    weighted: { accuracy: r.aggregate.all.success_rate, reward_mean: r.aggregate.all.return_mean },
    by_group,
  };
}

export function paretoAgainst(stage: Who, r: EvaluationResult, against: Who, other: EvaluationResult): ParetoComparison {
  const them = new Map(other.environments.map((e) => [e.name, e]));
  const better: string[] = [];
  const worse: string[] = [];
  for (const e of r.environments) {
    const b = them.get(e.name);
    if (!b) throw new Error(`the ${against} evaluation has no env ${e.name}; every stage is evaluated on one suite`);
    if (beats(e, b)) better.push(e.name);
    if (beats(b, e)) worse.push(e.name);
  }
  return { stage, against, better_on: better, worse_on: worse, dominates: dominates(r, other), dominated: dominates(other, r) };
}

interface MetricLine {
  kind?: string;
  update: number;
  split?: string;
  return_mean?: number;
  success_mean?: number;
  metrics?: Record<string, number>;
}

function readLines(file: string): MetricLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as MetricLine);
}

/** SFT's loss and each RL run's reward, one chart each (each its own x: that run's updates). */
function curves(plan: AffinePlan) {
  const layout: CurveGroup[] = [
    {
      id: 'sft:loss',
      title: 'SFT: completion loss (x: SFT update)',
      series: [
        { key: 'sft.train', label: 'train' },
        { key: 'sft.val', label: 'val (evaluated)', points: true },
      ],
    },
  ];
  const samples: Sample[] = [];
  for (const l of readLines(join(plan.sftDir, 'metrics.jsonl'))) {
    if (l.kind === 'train' && l.metrics?.loss !== undefined) samples.push({ x: l.update, v: { 'sft.train': l.metrics.loss } });
    if (l.kind === 'eval' && l.split === 'val' && l.metrics?.loss !== undefined)
      samples.push({ x: l.update, v: { 'sft.val': l.metrics.loss } });
  }
  for (const r of plan.rl) {
    const key = `rl.${r.env}`;
    layout.push({
      id: `rl:${r.env}`,
      title: `RL on ${r.env}: reward of the sampled completions (x: RL update)`,
      series: [
        { key: `${key}.reward`, label: 'per update' },
        { key: `${key}.success`, label: 'success, running mean' },
      ],
    });
    for (const l of readLines(join(r.dir, 'metrics.jsonl')))
      if (l.return_mean !== undefined && l.success_mean !== undefined)
        samples.push({ x: l.update, v: { [`${key}.reward`]: l.return_mean, [`${key}.success`]: l.success_mean } });
  }
  return { name: 'SFT -> RL', source: 'dir' as const, layout, samples, x_label: 'updates of each run' };
}

const pct = (x: number) => (100 * x).toFixed(1);
const cell = (e: EnvRow | undefined) =>
  e
    ? `${pct(e.accuracy)}% [${pct(e.interval.low)}, ${pct(e.interval.high)}]; reward ${e.reward.mean.toFixed(2)} / ${e.reward.median.toFixed(2)} / ${e.reward.std.toFixed(2)}`
    : '-';

const weightedCell = (w: { accuracy: number; reward_mean: number }) => `${pct(w.accuracy)}%; reward ${w.reward_mean.toFixed(2)}`;

/** The seed's table: one row per env, one column per stage, then a weighted row per group and overall. */
export function tableRows(stages: StageResult[]): string[][] {
  const envs = stages[0]?.envs.map((e) => e.env) ?? [];
  const groups = Object.keys(stages[0]?.by_group ?? {});
  return [
    ...envs.map((env) => [
      env,
      String(stages[0].envs.find((e) => e.env === env)?.n ?? 0),
      ...stages.map((s) => cell(s.envs.find((e) => e.env === env))),
    ]),
    ...groups.map((g) => [`weighted ${g}`, '', ...stages.map((s) => weightedCell(s.by_group[g]))]),
    ['weighted', '', ...stages.map((s) => weightedCell(s.weighted))],
  ];
}

export function writeAffineResults(plan: AffinePlan, checkpoints: { baseline: string; sft: string; rl: Record<string, string> }) {
  const present = EVALUATIONS.filter((e) => existsSync(affineEvalFile(plan, e.who)));
  const evals = present.map((e) => ({ ...e, result: readEvaluationFile(affineEvalFile(plan, e.who)) }));
  const baseline = evals.find((e) => e.who === 'baseline');
  if (!baseline) throw new Error('experiment: the baseline evaluation is missing');
  const groups = Object.fromEntries(plan.envs.map((e) => [e.id, e.group]));
  const stages = Object.fromEntries(evals.map((e) => [e.who, stageResult(e.label, affineEvalFile(plan, e.who), e.result, groups)]));
  const sft = evals.find((e) => e.who === 'sft');
  const pareto = evals
    .filter((e) => e.who !== 'baseline')
    .flatMap((e) => [
      paretoAgainst(e.who, e.result, 'baseline', baseline.result),
      ...(e.who === 'rl' && sft ? [paretoAgainst('rl', e.result, 'sft', sft.result)] : []),
    ]);
  const summaryOf = (dir: string) => {
    const f = join(dir, 'summary.json');
    return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null;
  };
  const stageRows = evals.map((e) => stages[e.who]);
  const columns = ['env', 'n', ...evals.map((e) => `${e.label}: accuracy [80% interval]; reward mean / median / std`)];
  const rows = tableRows(stageRows);
  const widths = columns.map((_, c) => Math.max(columns[c].length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r
      .map((x, c) => x.padEnd(widths[c]))
      .join('  ')
      .trimEnd();
  const paretoText = pareto.map(
    (p) =>
      `${p.stage} vs ${p.against}: ${p.dominates ? 'dominates' : p.dominated ? 'is dominated' : 'neither dominates nor is dominated'}` +
      ` (interval above on ${p.better_on.join(', ') || 'no env'}; below on ${p.worse_on.join(', ') || 'no env'})`,
  );
  const results = {
    config: plan.cfg,
    baseline_is: 'the initial Llama with freshly drawn weights, the model SFT starts from',
    checkpoints,
    stages,
    pareto,
    training: {
      sft: summaryOf(plan.sftDir),
      rl: Object.fromEntries(plan.rl.map((r) => [r.env, summaryOf(r.dir)])),
    },
    table_text: [line(columns), ...rows.map(line), ...paretoText],
  };
  const resultsFile = join(plan.cfg.out_dir, 'results.json');
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);

  const html = renderPage({
    title: 'rlmesh experiment: the Affine pipeline (baseline -> SFT -> RL)',
    live: false,
    summary: {
      headline: paretoText.join('; ') || 'baseline only',
      columns,
      rows,
      notes: [
        `Baseline: ${results.baseline_is} (${resolve(checkpoints.baseline)}). Accuracy: the env's success flag; ` +
          'reward: the episode return, the sum of the reward components. Pareto: a stage beats the baseline on an env when its ' +
          '80% Jeffreys interval lies wholly above (at least 10 episodes each).',
      ],
    },
    runs: [curves(plan)],
    evaluations: evaluationsView(evals.map((e) => e.result)),
    generated_at: new Date().toISOString(),
  });
  const reportFile = join(plan.cfg.out_dir, 'report.html');
  writeFileSync(reportFile, html);
  return { results, resultsFile, reportFile };
}
