/**
 * What a page draws, computed once on the server for the report and the dashboard alike: a run's
 * curve layout with its samples, and evaluations with their interval bars, frontier axes and the
 * frontier. The browser script only turns these into charts.
 */
import type { EvaluationResult } from '@rlmesh/core';
import type { MetricRow, RunData } from './data';
import { frontierOf } from './frontier';
import { type CurveGroup, curveGroups, seriesValue } from './layout';

/** One row as the charts plot it: x (env steps) and the value of every series the row logs. */
export interface Sample {
  x: number;
  v: Record<string, number>;
}

export interface RunView {
  name: string;
  source: RunData['source'];
  state?: string;
  layout: CurveGroup[];
  samples: Sample[];
  /** What a sample's x counts; env steps when absent (a training run's metrics). */
  x_label?: string;
}

export function samplesOf(rows: readonly MetricRow[], layout: readonly CurveGroup[]): Sample[] {
  return rows.map((row) => {
    const v: Record<string, number> = {};
    for (const g of layout)
      for (const s of g.series) {
        const y = seriesValue(row, s.key);
        if (y !== undefined && Number.isFinite(y)) v[s.key] = y;
      }
    return { x: row.env_steps, v };
  });
}

export function runView(run: RunData): RunView {
  const layout = curveGroups(run.rows);
  return { name: run.name, source: run.source, state: run.state, layout, samples: samplesOf(run.rows, layout) };
}

/** One evaluation environment's bar: the success rate and its interval. */
export interface EnvBar {
  name: string;
  split: string;
  episodes: number;
  rate: number;
  low: number;
  high: number;
  level: number;
}

export interface EvaluationEntry {
  id: string;
  label: string;
  suite: string;
  mode: string;
  created_at: string;
  all: number;
  by_split: Record<string, number>;
  environments: EnvBar[];
}

/** A quantity the frontier plot can put on an axis: a split's weighted success or one environment's. */
export interface Axis {
  id: string;
  label: string;
  /** Evaluation id -> value; absent when that evaluation has no such split or environment. */
  values: Record<string, number>;
}

export interface EvaluationsView {
  evaluations: EvaluationEntry[];
  axes: Axis[];
  /** The default axes: two splits when there are two, else the first two environments. */
  defaultAxes: [string, string] | null;
  /** Ids on the Pareto frontier over every environment; null with the reason when not computed. */
  frontier: string[] | null;
  frontierNote: string;
}

export function labelOf(r: EvaluationResult): string {
  const p = r.policy ?? {};
  if (p.label) return p.label;
  if (p.run_id !== undefined && p.version !== undefined) return `${p.run_id} v${p.version}`;
  return p.checkpoint ?? r.id;
}

export function evaluationEntry(r: EvaluationResult): EvaluationEntry {
  const bySplit: Record<string, number> = {};
  for (const [split, a] of Object.entries(r.aggregate?.by_split ?? {})) bySplit[split] = a.success_rate;
  return {
    id: r.id,
    label: labelOf(r),
    suite: r.suite,
    mode: r.mode,
    created_at: r.created_at,
    all: r.aggregate?.all?.success_rate ?? Number.NaN,
    by_split: bySplit,
    environments: r.environments.map((e) => ({
      name: e.name,
      split: e.split,
      episodes: e.episodes,
      rate: e.success_rate,
      low: e.interval.low,
      high: e.interval.high,
      level: e.interval.level,
    })),
  };
}

/** ID first, then the other splits by name, so that the default plot is ID against OOD. */
function splitOrder(a: string, b: string): number {
  return a === b ? 0 : a === 'ID' ? -1 : b === 'ID' ? 1 : a < b ? -1 : 1;
}

export function frontierAxes(entries: readonly EvaluationEntry[]): { axes: Axis[]; defaultAxes: [string, string] | null } {
  const splits = [...new Set(entries.flatMap((e) => Object.keys(e.by_split)))].sort(splitOrder);
  const envs = [...new Set(entries.flatMap((e) => e.environments.map((b) => b.name)))];
  const axes: Axis[] = [];
  for (const s of splits) {
    const values: Record<string, number> = {};
    for (const e of entries) if (e.by_split[s] !== undefined) values[e.id] = e.by_split[s];
    axes.push({ id: `split:${s}`, label: `${s} success (weighted)`, values });
  }
  for (const n of envs) {
    const values: Record<string, number> = {};
    for (const e of entries) {
      const b = e.environments.find((x) => x.name === n);
      if (b) values[e.id] = b.rate;
    }
    axes.push({ id: `env:${n}`, label: `${n} success`, values });
  }
  const pick = splits.length >= 2 ? axes.slice(0, 2) : envs.length >= 2 ? axes.slice(splits.length, splits.length + 2) : [];
  return { axes, defaultAxes: pick.length === 2 ? [pick[0].id, pick[1].id] : null };
}

export function evaluationsView(results: readonly EvaluationResult[]): EvaluationsView {
  const evaluations = results.map(evaluationEntry);
  const { axes, defaultAxes } = frontierAxes(evaluations);
  return { evaluations, axes, defaultAxes, ...frontierOf(results) };
}
