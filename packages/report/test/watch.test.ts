import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DashboardHub, type HubEvent, RunsWatcher } from '../src';

const line = (update: number, extra: Record<string, number> = {}) =>
  `${JSON.stringify({ update, env_steps: 10 * update, return_mean: update, metrics: { loss: 1 / update, ...extra } })}\n`;

describe('RunsWatcher', () => {
  let dir: string;
  let hub: DashboardHub;
  let events: HubEvent[];
  let logged: string[];
  let watcher: RunsWatcher;
  const rowsOf = (name: string) =>
    hub
      .snapshot()
      .runs.find((r) => r.name === name)
      ?.samples.map((s) => s.x);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-watch-'));
    hub = new DashboardHub();
    events = [];
    hub.subscribe((e) => events.push(e));
    logged = [];
    watcher = new RunsWatcher(dir, hub, (l) => logged.push(l));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('tails complete lines only, and re-reads a file that restarted', () => {
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a', 'metrics.jsonl'), `${line(1)}${line(2)}${line(3).slice(0, 20)}`);
    watcher.poll();
    expect(rowsOf('a')).toEqual([10, 20]);
    appendFileSync(join(dir, 'a', 'metrics.jsonl'), line(3).slice(20));
    watcher.poll();
    expect(rowsOf('a')).toEqual([10, 20, 30]);
    // The first rows bring the run's curves (a whole run event); later ones are appended samples.
    expect(events.map((e) => e.type)).toEqual(['evaluations', 'run', 'run', 'samples']);
    expect(events.filter((e) => e.type === 'samples').map((e) => (e.data as { samples: unknown[] }).samples.length)).toEqual([1]);
    watcher.poll();
    expect(events).toHaveLength(4);
    // A new run in the same directory truncates the file: the run starts over.
    writeFileSync(join(dir, 'a', 'metrics.jsonl'), line(1));
    watcher.poll();
    expect(rowsOf('a')).toEqual([10]);
  });

  it('lays a run out again when a new metric appears', () => {
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a', 'metrics.jsonl'), line(1));
    watcher.poll();
    appendFileSync(join(dir, 'a', 'metrics.jsonl'), line(2, { entropy: 1 }));
    watcher.poll();
    const last = events.at(-1);
    expect(last?.type).toBe('run');
    const view = hub.snapshot().runs[0];
    expect(view.layout.map((g) => g.title)).toContain('entropy');
    expect(view.samples.map((s) => s.x)).toEqual([10, 20]);
  });

  it('skips a bad line and a bad evaluation file, logging each once, and keeps following', () => {
    mkdirSync(join(dir, 'a', 'evaluations'), { recursive: true });
    writeFileSync(join(dir, 'a', 'metrics.jsonl'), `${line(1)}{"update": "x"}\n${line(3)}`);
    writeFileSync(join(dir, 'a', 'evaluations', 'e1.json'), '{"id": "e1"}');
    watcher.poll();
    watcher.poll();
    expect(rowsOf('a')).toEqual([10, 30]);
    expect(logged).toEqual([
      `rlmesh dashboard: skipped ${join(dir, 'a', 'metrics.jsonl')}:2: update: must be a number, got "x"`,
      `rlmesh dashboard: skipped ${join(dir, 'a', 'evaluations', 'e1.json')}: environments: must be a non-empty array`,
    ]);
    expect(hub.snapshot().evaluations.evaluations).toEqual([]);
  });

  it('ignores directories that are not runs', () => {
    mkdirSync(join(dir, 'not-a-run'));
    writeFileSync(join(dir, 'file.txt'), 'x');
    watcher.poll();
    expect(hub.snapshot().runs).toEqual([]);
  });
});
