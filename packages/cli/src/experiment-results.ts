/**
 * What `rlmesh experiment` concludes: results.json (accuracy with its Jeffreys interval per
 * checkpoint and suite entry, as the evaluations measured them; both training summaries; the verdict
 * on the claim that RL from the SFT checkpoint raises OOD accuracy while ID stays put) and
 * report.html, drawn by @rlmesh/report: interval bars of SFT and RL side by side per entry, the SFT
 * loss and RL reward curves, the verdict above them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EvaluationResult, RateInterval } from '@rlmesh/core';
import { type CurveGroup, evaluationsView, readEvaluationFile, renderPage, type Sample } from '@rlmesh/report';
import { type ExperimentPlan, evalFile } from './experiment-config';

/** The claim's ID condition: RL's ID accuracy within this many points of SFT's. */
export const ID_TOLERANCE_POINTS = 2;

export interface EntryResult {
  name: string;
  split: string;
  n: number;
  successes: number;
  accuracy: number;
  interval: RateInterval;
}

export interface OodVerdict {
  name: string;
  sft: EntryResult;
  rl: EntryResult;
  /** RL's interval lies wholly above SFT's: RL's low end above SFT's high end. */
  rl_above: boolean;
}

export interface IdVerdict {
  name: string;
  sft: EntryResult;
  rl: EntryResult;
  difference_points: number;
  within_tolerance: boolean;
}

export interface Verdict {
  ood: OodVerdict[];
  id: IdVerdict[];
  id_tolerance_points: number;
  reproduced: boolean;
  sentence: string;
}

function entries(r: EvaluationResult): EntryResult[] {
  return r.environments.map((e) => ({
    name: e.name,
    split: e.split,
    n: e.episodes,
    successes: e.successes,
    accuracy: e.success_rate,
    interval: e.interval,
  }));
}

/** One checkpoint's evaluation in results.json: each entry, and the weighted accuracy per split (ID, OOD). */
function evaluationSummary(file: string, r: EvaluationResult) {
  const bySplit = Object.fromEntries(Object.entries(r.aggregate.by_split).map(([split, a]) => [split, a.success_rate]));
  return { file, id: r.id, suite: r.suite, mode: r.mode, entries: entries(r), accuracy_by_split: bySplit };
}

const pts = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;

/** Compares the two evaluations entry by entry (suite entries of split ID against all the others). */
export function verdictOf(sft: EvaluationResult, rl: EvaluationResult): Verdict {
  const rlBy = new Map(entries(rl).map((e) => [e.name, e]));
  const ood: OodVerdict[] = [];
  const id: IdVerdict[] = [];
  for (const s of entries(sft)) {
    const r = rlBy.get(s.name);
    if (!r) throw new Error(`the RL evaluation has no entry ${s.name}; both checkpoints must be evaluated on one suite`);
    if (s.split === 'ID') {
      const difference = 100 * (r.accuracy - s.accuracy);
      id.push({
        name: s.name,
        sft: s,
        rl: r,
        difference_points: difference,
        within_tolerance: Math.abs(difference) <= ID_TOLERANCE_POINTS,
      });
    } else ood.push({ name: s.name, sft: s, rl: r, rl_above: r.interval.low > s.interval.high });
  }
  const above = ood.filter((o) => o.rl_above);
  const idOk = id.length > 0 && id.every((i) => i.within_tolerance);
  const reproduced = above.length > 0 && idOk;
  const level = Math.round(100 * (sft.environments[0]?.interval.level ?? 0.8));
  const idText = id.map((i) => `${pts(i.difference_points)} points on ${i.name}`).join(', ');
  const sentence =
    `${reproduced ? 'Reproduced' : 'Not reproduced'}: RL's ${level}% interval lies wholly above SFT's on ` +
    `${above.length} of ${ood.length} OOD splits${above.length ? ` (${above.map((o) => o.name).join(', ')})` : ''}, ` +
    `and ID accuracy moved ${idText} (${idOk ? 'within' : 'not within'} ${ID_TOLERANCE_POINTS}).`;
  return { ood, id, id_tolerance_points: ID_TOLERANCE_POINTS, reproduced, sentence };
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
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as MetricLine);
}

/**
 * The curves of both runs as one report run: each chart has its own x (its run's updates), so SFT's
 * and RL's rows share a sample list but never a chart.
 */
function curves(sftLines: MetricLine[], rlLines: MetricLine[], successWindow: number) {
  const layout: CurveGroup[] = [
    {
      id: 'sft:loss',
      title: 'SFT: completion loss (x: SFT update)',
      series: [
        { key: 'sft.train', label: 'train' },
        { key: 'sft.val', label: 'val (evaluated)', points: true },
      ],
    },
    {
      id: 'rl:reward',
      title: 'GRPO: reward of the sampled completions (x: RL update)',
      series: [
        { key: 'rl.reward', label: 'per update' },
        { key: 'rl.success_mean', label: `success, mean of the last ${successWindow} updates` },
      ],
    },
  ];
  const samples: Sample[] = [];
  for (const l of sftLines) {
    if (l.kind === 'train' && l.metrics?.loss !== undefined) samples.push({ x: l.update, v: { 'sft.train': l.metrics.loss } });
    if (l.kind === 'eval' && l.split === 'val' && l.metrics?.loss !== undefined)
      samples.push({ x: l.update, v: { 'sft.val': l.metrics.loss } });
  }
  for (const l of rlLines)
    if (l.return_mean !== undefined && l.success_mean !== undefined)
      samples.push({ x: l.update, v: { 'rl.reward': l.return_mean, 'rl.success_mean': l.success_mean } });
  return { name: 'SFT -> GRPO', source: 'dir' as const, layout, samples, x_label: 'updates of each run' };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const withInterval = (e: EntryResult) => `${pct(e.accuracy)} [${pct(e.interval.low)}, ${pct(e.interval.high)}]`;

export function writeExperimentResults(plan: ExperimentPlan, checkpoints: { sft: string; rl: string }) {
  const sftEval = readEvaluationFile(evalFile(plan, 'sft'));
  const rlEval = readEvaluationFile(evalFile(plan, 'rl'));
  const sftSummary = JSON.parse(readFileSync(join(plan.sftDir, 'summary.json'), 'utf8'));
  const rlSummary = JSON.parse(readFileSync(join(plan.rlDir, 'summary.json'), 'utf8'));
  // The run's resolved config (defaults filled in), as the RL stage wrote it.
  const rlConfig = JSON.parse(readFileSync(join(plan.rlDir, 'config.json'), 'utf8')) as { train: { success_window: number } };
  const verdict = verdictOf(sftEval, rlEval);
  const results = {
    config: plan.cfg,
    checkpoints,
    evaluations: { sft: evaluationSummary(evalFile(plan, 'sft'), sftEval), rl: evaluationSummary(evalFile(plan, 'rl'), rlEval) },
    // The evaluator reports no per-family accuracy; SFT's summary has it per eval file (by_family).
    training: { sft: sftSummary, rl: rlSummary },
    verdict,
  };
  const resultsFile = join(plan.cfg.out_dir, 'results.json');
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);

  const rows = [...verdict.id, ...verdict.ood].map((v) => [
    v.name,
    v.sft.split,
    String(v.sft.n),
    withInterval(v.sft),
    withInterval(v.rl),
    pts(100 * (v.rl.accuracy - v.sft.accuracy)),
    'rl_above' in v
      ? v.rl_above
        ? 'RL above SFT'
        : 'intervals overlap or RL below'
      : v.within_tolerance
        ? `within ${ID_TOLERANCE_POINTS} points`
        : `moved more than ${ID_TOLERANCE_POINTS} points`,
  ]);
  const level = Math.round(100 * (sftEval.environments[0]?.interval.level ?? 0.8));
  const html = renderPage({
    title: 'rlmesh experiment: SFT then GRPO on the card game',
    live: false,
    summary: {
      headline: verdict.sentence,
      columns: ['entry', 'split', 'n', `SFT [${level}% interval]`, `SFT + GRPO [${level}% interval]`, 'RL - SFT (points)', 'verdict'],
      rows,
      notes: [
        // A resumed run's summary counts the seconds (and SFT's the updates) of its last process only.
        `SFT: ${sftSummary.total_updates} updates, ${Math.round(sftSummary.seconds)} s in its last process (${resolve(checkpoints.sft)}); ` +
          `GRPO: ${rlSummary.updates} updates, ${Math.round(rlSummary.seconds)} s in its last process, sampled reward ${rlSummary.reward_start.toFixed(3)} -> ${rlSummary.reward_end.toFixed(3)} (${resolve(checkpoints.rl)}).`,
      ],
    },
    runs: [
      curves(readLines(join(plan.sftDir, 'metrics.jsonl')), readLines(join(plan.rlDir, 'metrics.jsonl')), rlConfig.train.success_window),
    ],
    evaluations: evaluationsView([sftEval, rlEval]),
    generated_at: new Date().toISOString(),
  });
  const reportFile = join(plan.cfg.out_dir, 'report.html');
  writeFileSync(reportFile, html);
  return { results, resultsFile, reportFile };
}
