/**
 * Which curves a run's charts show: every numeric field of a metrics row except the counters, and
 * every logged metric, grouped so that terms of one quantity share a chart (loss with loss/policy and
 * loss/world_model, reward/goal with reward/pred, success with success_mean). x is always env_steps.
 */
import type { MetricRow } from './data';

/** A curve: a top-level row field (`return_mean`) or an entry of `metrics` (`metrics.loss/policy`). */
export interface SeriesKey {
  key: string;
  label: string;
  /** Draw each point: a sparse series (an evaluation every epoch) is invisible as a bare line. */
  points?: boolean;
}

export interface CurveGroup {
  id: string;
  title: string;
  series: SeriesKey[];
}

/** Counters and the x axis: not curves. */
const COUNTERS = new Set(['update', 'env_steps', 'episodes']);

/** Top-level fields first, in this order when present; then the rest in the order they appear. */
const FIRST = ['return_mean', 'success', 'success_mean', 'level', 'policy_lag'];

/** The group a name belongs to: its part before the first `/` or `_` (`loss/policy` -> `loss`). */
function groupOf(name: string): string {
  return name.split(/[/_]/)[0];
}

export function curveGroups(rows: readonly MetricRow[]): CurveGroup[] {
  const top: string[] = [];
  const metrics: string[] = [];
  for (const row of rows) {
    for (const [k, v] of Object.entries(row)) if (typeof v === 'number' && !COUNTERS.has(k) && !top.includes(k)) top.push(k);
    for (const [k, v] of Object.entries(row.metrics ?? {})) if (typeof v === 'number' && !metrics.includes(k)) metrics.push(k);
  }
  top.sort((a, b) => rank(a) - rank(b));
  return [
    ...group(
      top.map((k) => ({ key: k, label: k })),
      'row',
    ),
    ...group(
      metrics.map((k) => ({ key: `metrics.${k}`, label: k })),
      'metrics',
    ),
  ];
}

function rank(name: string): number {
  const i = FIRST.indexOf(name);
  return i < 0 ? FIRST.length : i;
}

function group(series: SeriesKey[], scope: string): CurveGroup[] {
  const groups = new Map<string, SeriesKey[]>();
  for (const s of series) {
    const g = groupOf(s.label);
    groups.set(g, [...(groups.get(g) ?? []), s]);
  }
  return [...groups].map(([g, members]) => ({
    id: `${scope}:${g}`,
    title: members.length === 1 ? members[0].label : g,
    series: members,
  }));
}

/** The value of a series in a row (undefined when the row does not log it). */
export function seriesValue(row: MetricRow, key: string): number | undefined {
  const v = key.startsWith('metrics.') ? row.metrics?.[key.slice('metrics.'.length)] : row[key];
  return typeof v === 'number' ? v : undefined;
}
