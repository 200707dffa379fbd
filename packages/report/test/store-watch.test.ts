import type { EnvironmentResult, EvaluationResult } from '@rlmesh/core';
import { aggregates, BusEvaluationStore, jeffreysInterval, summarize } from '@rlmesh/evaluator';
import { MemoryBus } from '@rlmesh/mesh';
import { describe, expect, it } from 'vitest';
import { DashboardHub, StoreWatcher } from '../src';

function result(id: string, successes: number, created: string): EvaluationResult {
  const env: EnvironmentResult = {
    name: 'echo',
    env_id: 'PatternEcho',
    options: {},
    split: 'ID',
    weight: 1,
    episodes: 50,
    successes,
    success_rate: successes / 50,
    interval: jeffreysInterval(successes, 50),
    returns: summarize([successes / 50]),
    lengths: summarize([1]),
    seeds: [1],
  };
  return {
    id,
    suite: 's',
    policy: { run_id: 'r', version: 1 },
    mode: 'greedy',
    created_at: created,
    environments: [env],
    aggregate: aggregates([env]),
    duration_s: 1,
  };
}

describe('StoreWatcher', () => {
  it('shows the results a mesh store holds, as they are added', async () => {
    const bus = new MemoryBus();
    const store = new BusEvaluationStore(bus);
    const hub = new DashboardHub();
    const logged: string[] = [];
    let away = false;
    const flaky = {
      list: () => (away ? Promise.reject(new Error('no bus')) : store.list()),
      get: (id: string) => store.get(id),
    };
    const watcher = new StoreWatcher(flaky, hub, 'mesh', (l) => logged.push(l));
    await store.put(result('v1', 10, '2026-01-01T00:00:00Z'));
    await watcher.poll();
    expect(hub.snapshot().evaluations.evaluations.map((e) => e.id)).toEqual(['v1']);
    await store.put(result('v2', 45, '2026-01-02T00:00:00Z'));
    await watcher.poll();
    const view = hub.snapshot().evaluations;
    expect(view.evaluations.map((e) => e.id)).toEqual(['v1', 'v2']);
    // v2's interval lies wholly above v1's: v2 alone is on the frontier.
    expect(view.frontier).toEqual(['v2']);
    // The bus away: logged once, the shown results kept.
    away = true;
    await watcher.poll();
    await watcher.poll();
    expect(logged).toEqual(['rlmesh dashboard: cannot list evaluations (no bus); retrying']);
    expect(hub.snapshot().evaluations.evaluations).toHaveLength(2);
    await bus.close();
  });
});
