/**
 * The EvaluationStore contract, run against every implementation: the bus store on MemoryBus and on
 * NatsBus (a private nats-server; under CI=true a missing nats-server fails), and the file store.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvaluationResult } from '@rlmesh/core';
import { type Bus, findNatsServer, MemoryBus, NatsBus, type NatsServer, startNatsServer } from '@rlmesh/mesh';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusEvaluationStore, type EvaluationStore, FileEvaluationStore, summarizeEvaluation } from '../../services/evaluator/src/store';

function result(id: string, runId: string, suite: string, createdAt: string, rate: number): EvaluationResult {
  const env = {
    name: 'echo',
    env_id: 'PatternEcho',
    options: { length: 4 },
    split: 'ID',
    weight: 1,
    episodes: 10,
    successes: rate * 10,
    success_rate: rate,
    interval: { low: rate / 2, high: (1 + rate) / 2, level: 0.8, method: 'jeffreys' as const },
    returns: { mean: rate, median: rate, std: 0.1, min: 0, max: 1 },
    lengths: { mean: 8, median: 8, std: 0, min: 8, max: 8 },
    seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  };
  const agg = { success_rate: rate, return_mean: rate, weight: 1 };
  return {
    id,
    suite,
    policy: { run_id: runId, version: 3, label: `v3 of ${runId}` },
    mode: 'greedy',
    created_at: createdAt,
    environments: [env],
    aggregate: { all: agg, by_split: { ID: agg } },
    duration_s: 0.5,
  };
}

function contract(name: string, make: () => Promise<{ store: EvaluationStore; close(): Promise<void> }>) {
  describe(name, () => {
    let store: EvaluationStore;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ store, close } = await make());
    });
    afterAll(async () => close?.());

    it('returns what was put, field for field, and null for an unknown or malformed id', async () => {
      const r = result('ev-a', 'run-1', 'smoke', '2026-01-01T00:00:02.000Z', 0.7);
      await store.put(r);
      expect(await store.get('ev-a')).toEqual(r);
      expect(await store.get('ev-missing')).toBeNull();
      expect(await store.get('../etc/passwd')).toBeNull();
    });

    it('lists summaries oldest first, filtered by run and by suite', async () => {
      await store.put(result('ev-c', 'run-2', 'smoke', '2026-01-01T00:00:03.000Z', 0.2));
      await store.put(result('ev-b', 'run-1', 'ood', '2026-01-01T00:00:01.000Z', 0.4));
      const all = await store.list();
      expect(all.map((s) => s.id)).toEqual(['ev-b', 'ev-a', 'ev-c']);
      expect(all[1]).toEqual(summarizeEvaluation(result('ev-a', 'run-1', 'smoke', '2026-01-01T00:00:02.000Z', 0.7)));
      expect(all[1].episodes).toBe(10);
      expect((await store.list({ run_id: 'run-1' })).map((s) => s.id)).toEqual(['ev-b', 'ev-a']);
      expect((await store.list({ suite: 'smoke' })).map((s) => s.id)).toEqual(['ev-a', 'ev-c']);
      expect((await store.list({ run_id: 'run-1', suite: 'smoke' })).map((s) => s.id)).toEqual(['ev-a']);
      expect(await store.list({ run_id: 'nobody' })).toEqual([]);
    });

    it('replaces a result stored again under the same id', async () => {
      await store.put(result('ev-a', 'run-1', 'smoke', '2026-01-01T00:00:02.000Z', 0.9));
      expect((await store.get('ev-a'))?.aggregate.all.success_rate).toBe(0.9);
      expect((await store.list({ run_id: 'run-1', suite: 'smoke' }))[0].all.success_rate).toBe(0.9);
    });

    it('refuses an id that is not safe as a key and a file name', async () => {
      await expect(store.put(result('a/b', 'run-1', 'smoke', '2026-01-01T00:00:00.000Z', 0))).rejects.toThrow(/evaluation id must match/);
    });
  });
}

const natsMissing = !findNatsServer() && process.env.CI !== 'true';

contract('BusEvaluationStore on MemoryBus', async () => {
  const bus = new MemoryBus();
  return { store: new BusEvaluationStore(bus), close: () => bus.close() };
});

describe.skipIf(natsMissing)('on NATS', () => {
  let server: NatsServer;
  let bus: Bus;
  beforeAll(async () => {
    server = await startNatsServer();
    bus = await NatsBus.connect({ servers: server.url });
  });
  afterAll(async () => {
    await bus?.close();
    await server?.stop();
  });
  contract('BusEvaluationStore on NatsBus', async () => ({ store: new BusEvaluationStore(bus), close: async () => undefined }));
});

describe('FileEvaluationStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-evals-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  contract('contract', async () => ({ store: new FileEvaluationStore(join(dir, 'evaluations')), close: async () => undefined }));
  it('keeps one <id>.json per result and no temporary files', () => {
    expect(readdirSync(join(dir, 'evaluations')).sort()).toEqual(['ev-a.json', 'ev-b.json', 'ev-c.json']);
  });
  it('lists nothing for a directory that does not exist yet', async () => {
    expect(await new FileEvaluationStore(join(dir, 'absent')).list()).toEqual([]);
  });
});
