/**
 * Shared pieces of the benchmark suites: the result record every suite returns, the settings read
 * from the environment, and a timer that measures a subject and its baseline interleaved, so that
 * the noise of a shared machine lands on both and their ratio stays meaningful.
 */
import * as os from 'node:os';

/** One reported number. `ratio` compares it with `baseline`, measured in the same run; `notes` says how. */
export interface BenchResult {
  name: string;
  metric: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  ratio?: number;
  notes: string;
}

/** The machine a results file was measured on. */
export interface Machine {
  cpu: string;
  cores: number;
  os: string;
  node: string;
  onnxruntime: string;
}

/** bench/results/<suite>.json: what one suite measured, from which the README's section is written. */
export interface SuiteFile {
  suite: string;
  description: string;
  generatedAt: string;
  command: string;
  machine: Machine;
  settings: BenchSettings;
  durationS: number;
  results: BenchResult[];
}

export function machine(): Machine {
  const versions = (require('onnxruntime-node') as { env: { versions: Record<string, string | undefined> } }).env.versions;
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    onnxruntime: versions.node ?? versions.common ?? 'unknown',
  };
}

/** A group of benchmarks that writes bench/results/<name>.json. */
export interface BenchSuite {
  name: string;
  description: string;
  run: (settings: BenchSettings) => Promise<BenchResult[]>;
}

export interface BenchSettings {
  /** ORT intra-op threads for every session (BENCH_THREADS, default 2). */
  threads: number;
  /** Timed repeats per measurement; the median is reported (BENCH_REPEATS, default 5). */
  repeats: number;
  /** Untimed calls before timing (BENCH_WARMUP, default 20). */
  warmup: number;
  /** Target wall time of one timed repeat, in ms; the iteration count is calibrated to it (BENCH_REPEAT_MS, default 1500). */
  repeatMs: number;
}

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

export function settingsFromEnv(): BenchSettings {
  return {
    threads: envInt('BENCH_THREADS', 2, 1),
    repeats: envInt('BENCH_REPEATS', 5, 1),
    warmup: envInt('BENCH_WARMUP', 20, 0),
    repeatMs: envInt('BENCH_REPEAT_MS', 1500, 1),
  };
}

export type Call = () => Promise<unknown>;

export interface Timing {
  /** Median over the repeats of the mean time per call, in nanoseconds. */
  medianNs: number;
  /** Mean time per call of each repeat, in nanoseconds, in the order they ran. */
  repeatsNs: number[];
  /** Calls per timed repeat. */
  iterations: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Spread of the repeats as a percentage of their median: (max - min) / median. */
export function spreadPct(t: Timing): number {
  return ((Math.max(...t.repeatsNs) - Math.min(...t.repeatsNs)) / t.medianNs) * 100;
}

async function timeCalls(fn: Call, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - t0);
}

/** Warms `fn` up, then picks how many calls fill about `repeatMs`. */
async function calibrate(fn: Call, s: BenchSettings): Promise<number> {
  for (let i = 0; i < s.warmup; i++) await fn();
  // Time a short probe run, growing it until it is long enough to trust.
  let n = 1;
  let ns = await timeCalls(fn, n);
  while (ns < 20e6 && n < 1 << 20) {
    n *= 4;
    ns = await timeCalls(fn, n);
  }
  const perCall = ns / n;
  return Math.max(3, Math.ceil((s.repeatMs * 1e6) / perCall));
}

/**
 * Times `subject` and `baseline` in alternating repeats (S B, B S, S B, ...), each repeat a fixed
 * number of sequential awaited calls, and returns the median per-call time of each.
 */
export async function timePair(subject: Call, baseline: Call, s: BenchSettings): Promise<{ subject: Timing; baseline: Timing }> {
  const nS = await calibrate(subject, s);
  const nB = await calibrate(baseline, s);
  const sNs: number[] = [];
  const bNs: number[] = [];
  for (let r = 0; r < s.repeats; r++) {
    if (r % 2 === 0) {
      sNs.push((await timeCalls(subject, nS)) / nS);
      bNs.push((await timeCalls(baseline, nB)) / nB);
    } else {
      bNs.push((await timeCalls(baseline, nB)) / nB);
      sNs.push((await timeCalls(subject, nS)) / nS);
    }
  }
  return {
    subject: { medianNs: median(sNs), repeatsNs: sNs, iterations: nS },
    baseline: { medianNs: median(bNs), repeatsNs: bNs, iterations: nB },
  };
}

/** A short description of how a timing was taken, for notes. */
export function describeTiming(label: string, t: Timing): string {
  return `${label}: ${t.repeatsNs.length} repeats x ${t.iterations} calls, spread ${spreadPct(t).toFixed(1)}%`;
}
