/**
 * What reports and the dashboard read: a run directory (`config.json`, `metrics.jsonl`,
 * `evaluations/<id>.json`) and evaluation JSON files. Bad input raises ConfigError naming the file
 * and the field, which the CLI prints as one line.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ConfigError, type EvaluationResult } from '@rlmesh/core';

/**
 * One line of metrics.jsonl (the learner's UpdateRecord plus level_changed) or one mesh Run update.
 * Every numeric field other than the counters, and every entry of `metrics`, is a curve.
 */
export interface MetricRow {
  update: number;
  env_steps: number;
  metrics?: Record<string, number>;
  [field: string]: unknown;
}

export interface RunData {
  name: string;
  /** `dir`: a run directory; `mesh`: a run watched on a learner. */
  source: 'dir' | 'mesh';
  rows: MetricRow[];
  /** Mesh runs: the learner's state name (RUN_STATE_RUNNING, ...). */
  state?: string;
}

/**
 * Parses complete metrics.jsonl lines. A bad line throws, unless `onBad` is given: a dashboard that
 * tails a file reports the line and keeps going.
 */
export function parseMetricLines(text: string, where: string, onBad?: (e: ConfigError) => void, firstLine = 1): MetricRow[] {
  const rows: MetricRow[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const at = `${where}:${firstLine + i}`;
    try {
      rows.push(checkRow(parseJson(line, at), at));
    } catch (e) {
      if (!(e instanceof ConfigError) || !onBad) throw e;
      onBad(e);
    }
  });
  return rows;
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(where, `not valid JSON (${(e as Error).message})`);
  }
}

function checkRow(v: unknown, where: string): MetricRow {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(where, 'must be a JSON object');
  const row = v as Record<string, unknown>;
  for (const key of ['update', 'env_steps'])
    if (typeof row[key] !== 'number') throw new ConfigError(`${where}: ${key}`, `must be a number, got ${JSON.stringify(row[key])}`);
  if (row.metrics !== undefined && (typeof row.metrics !== 'object' || row.metrics === null))
    throw new ConfigError(`${where}: metrics`, 'must be an object of numbers');
  return row as MetricRow;
}

export function isRunDir(dir: string): boolean {
  return existsSync(join(dir, 'metrics.jsonl')) || existsSync(join(dir, 'config.json'));
}

/** Reads a run directory whole (the report); the dashboard tails the same files with RunsWatcher. */
export function readRunDir(dir: string): { run: RunData; evaluations: EvaluationResult[] } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(dir, 'not a directory');
  if (!isRunDir(dir)) throw new ConfigError(dir, 'not a run directory (no metrics.jsonl or config.json)');
  const metricsPath = join(dir, 'metrics.jsonl');
  const rows = existsSync(metricsPath) ? parseMetricLines(readFileSync(metricsPath, 'utf8'), metricsPath) : [];
  return { run: { name: basename(dir), source: 'dir', rows }, evaluations: readEvaluationDir(join(dir, 'evaluations')) };
}

/** Every `*.json` in a run's evaluations directory (none when it does not exist). */
export function readEvaluationDir(dir: string): EvaluationResult[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readEvaluationFile(join(dir, f)));
}

export function readEvaluationFile(path: string): EvaluationResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError(path, 'cannot read the file');
  }
  return checkEvaluation(parseJson(text, path), path);
}

/** Checks the fields the report draws from (the rest of EvaluationResult is carried as is). */
export function checkEvaluation(v: unknown, where: string): EvaluationResult {
  const need = (ok: boolean, key: string, rule: string) => {
    if (!ok) throw new ConfigError(`${where}: ${key}`, rule);
  };
  need(typeof v === 'object' && v !== null && !Array.isArray(v), '(root)', 'must be an EvaluationResult object');
  const r = v as Record<string, unknown>;
  need(typeof r.id === 'string' && r.id !== '', 'id', 'must be a non-empty string');
  need(Array.isArray(r.environments) && r.environments.length > 0, 'environments', 'must be a non-empty array');
  (r.environments as unknown[]).forEach((e, i) => {
    const at = `environments[${i}]`;
    need(typeof e === 'object' && e !== null, at, 'must be an object');
    const env = e as Record<string, unknown>;
    need(typeof env.name === 'string', `${at}.name`, 'must be a string');
    need(typeof env.env_id === 'string', `${at}.env_id`, 'must be a string');
    need(typeof env.split === 'string', `${at}.split`, 'must be a string');
    need(typeof env.episodes === 'number' && env.episodes >= 0, `${at}.episodes`, 'must be a number >= 0');
    need(typeof env.successes === 'number', `${at}.successes`, 'must be a number');
    need(isRate(env.success_rate), `${at}.success_rate`, 'must be a number in [0, 1]');
    const iv = env.interval as Record<string, unknown> | undefined;
    need(typeof iv === 'object' && iv !== null, `${at}.interval`, 'must be an object {low, high, level, method}');
    need(isRate(iv?.low), `${at}.interval.low`, 'must be a number in [0, 1]');
    need(isRate(iv?.high), `${at}.interval.high`, 'must be a number in [0, 1]');
    need((iv?.low as number) <= (iv?.high as number), `${at}.interval`, 'low must be <= high');
    need(typeof iv?.level === 'number' && iv.level > 0 && iv.level < 1, `${at}.interval.level`, 'must be a number in (0, 1)');
  });
  return v as EvaluationResult;
}

const isRate = (x: unknown): boolean => typeof x === 'number' && x >= 0 && x <= 1;
