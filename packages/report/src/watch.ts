/**
 * Follows a runs directory for the dashboard: every `<run>/metrics.jsonl` is tailed from the byte
 * after its last complete line (a line the learner is still writing waits for the next poll), a file
 * that shrinks (a run restarted in the same directory) is read again from the start, and
 * `<run>/evaluations/*.json` are re-read when they change. Polling, because fs.watch misses appends
 * on some file systems and reports nothing on others.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type EvaluationResult } from '@rlmesh/core';
import { isRunDir, parseMetricLines, readEvaluationFile } from './data';
import type { DashboardHub } from './hub';

interface Tracked {
  offset: number;
  lines: number;
  evaluations: Map<string, { mtimeMs: number; result: EvaluationResult | null }>;
}

export class RunsWatcher {
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private readonly reported = new Set<string>();

  constructor(
    private readonly runsDir: string,
    private readonly hub: DashboardHub,
    private readonly log: (line: string) => void = (l) => console.error(l),
  ) {}

  /** Reads what is there now, then polls every `intervalMs`. */
  start(intervalMs = 250): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass over the runs directory (public so tests can step it). */
  poll(): void {
    if (!existsSync(this.runsDir)) return;
    for (const name of readdirSync(this.runsDir).sort()) {
      const dir = join(this.runsDir, name);
      try {
        if (!statSync(dir).isDirectory() || !isRunDir(dir)) continue;
        this.pollRun(name, dir);
      } catch (e) {
        // A run directory removed between listing and reading is not an error.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }

  private pollRun(name: string, dir: string): void {
    let t = this.tracked.get(name);
    if (!t) {
      t = { offset: 0, lines: 0, evaluations: new Map() };
      this.tracked.set(name, t);
      this.hub.setRun({ name, source: 'dir', rows: [] });
    }
    this.tailMetrics(name, join(dir, 'metrics.jsonl'), t);
    this.pollEvaluations(name, join(dir, 'evaluations'), t);
  }

  private tailMetrics(name: string, path: string, t: Tracked): void {
    if (!existsSync(path)) return;
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < t.offset) {
        t.offset = t.lines = 0;
        this.hub.setRun({ name, source: 'dir', rows: [] });
      }
      if (size === t.offset) return;
      const buf = Buffer.alloc(size - t.offset);
      const n = readSync(fd, buf, 0, buf.length, t.offset);
      // Only complete lines: the rest is read again, whole, on a later poll.
      const end = buf.subarray(0, n).lastIndexOf(0x0a) + 1;
      if (end === 0) return;
      const text = buf.subarray(0, end).toString('utf8');
      const rows = parseMetricLines(text, path, (e) => this.report(e), t.lines + 1);
      t.offset += end;
      t.lines += text.split('\n').length - 1;
      if (rows.length) this.hub.appendRows(name, rows);
    } finally {
      closeSync(fd);
    }
  }

  private pollEvaluations(name: string, dir: string, t: Tracked): void {
    if (!existsSync(dir)) return;
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    let changed = files.length !== t.evaluations.size;
    for (const f of files) {
      const path = join(dir, f);
      const mtimeMs = statSync(path).mtimeMs;
      if (t.evaluations.get(f)?.mtimeMs === mtimeMs) continue;
      let result: EvaluationResult | null = null;
      try {
        result = readEvaluationFile(path);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        this.report(e);
      }
      t.evaluations.set(f, { mtimeMs, result });
      changed = true;
    }
    for (const f of [...t.evaluations.keys()]) if (!files.includes(f)) t.evaluations.delete(f);
    if (changed)
      this.hub.setEvaluations(
        `dir:${name}`,
        [...t.evaluations.values()].flatMap((e) => (e.result ? [e.result] : [])),
      );
  }

  /** Each bad line or file is logged once, not on every poll. */
  private report(e: ConfigError): void {
    if (this.reported.has(e.message)) return;
    this.reported.add(e.message);
    this.log(`rlmesh dashboard: skipped ${e.message}`);
  }
}
