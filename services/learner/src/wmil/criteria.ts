/**
 * The source's MVP criteria (seed 001, "MVP Success Criteria"), computed from a run's metrics.jsonl:
 * success above random (1/A), success above 50%, entropy down, world-model loss down. "Start" and
 * "end" are means over the first and last 10% of updates (at least one), so one noisy batch decides
 * nothing.
 */
import { readFileSync } from 'node:fs';

export interface MvpCheck {
  name: string;
  start: number;
  end: number;
  target: string;
  pass: boolean;
}

export interface MvpReport {
  checks: MvpCheck[];
  pass: boolean;
}

export function mvpCriteria(metricsPath: string, numActions: number): MvpReport {
  const rows = readFileSync(metricsPath, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { success: number; metrics: Record<string, number> });
  const k = Math.max(1, Math.floor(rows.length / 10));
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const ends = (f: (r: (typeof rows)[number]) => number) => ({ start: avg(rows.slice(0, k).map(f)), end: avg(rows.slice(-k).map(f)) });
  const s = ends((r) => r.success);
  const e = ends((r) => r.metrics.entropy);
  const w = ends((r) => r.metrics['loss/world_model']);
  const random = 1 / numActions;
  const checks: MvpCheck[] = [
    { name: 'success > random', ...s, target: `> ${(100 * random).toFixed(1)}%`, pass: s.end > random },
    { name: 'success > 50%', ...s, target: '> 50%', pass: s.end > 0.5 },
    { name: 'entropy down', ...e, target: 'end < start', pass: e.end < e.start },
    { name: 'world-model loss down', ...w, target: 'end < start', pass: w.end < w.start },
  ];
  return { checks, pass: rows.length > 0 && checks.every((c) => c.pass) };
}
