/**
 * Two learners on one bus never train the same run. The bus's compare-and-set, the lease built on
 * it, and LearnerCores that race for one run, each against MemoryBus and a real nats-server
 * (JetStream KV, a private server per suite). Under CI=true a missing nats-server fails the suite.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvReplica, type PolicyClient } from '@rlmesh/env';
import {
  type Bus,
  createLogger,
  decodeJson,
  encodeAnnouncement,
  encodeJson,
  findNatsServer,
  keys,
  MemoryBus,
  NatsBus,
  type NatsServer,
  startNatsServer,
} from '@rlmesh/mesh';
import { PolicyCore } from '@rlmesh/policy';
import { RunState } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { LearnerCore } from '../src/mesh/learner-core';
import { isLease, Lease, type LeaseRecord } from '../src/mesh/lease';
import { parseRunConfig } from '../src/run/config';

const natsMissing = !findNatsServer() && process.env.CI !== 'true';
const logger = createLogger('test', 'error');
const te = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A run announced as running whose learner is gone before its first checkpoint. */
async function announceOrphan(bus: Bus, runId: string, totalEnvSteps: number): Promise<void> {
  const shipped = parseYaml(readFileSync(join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
  const cfg = parseRunConfig({ ...shipped, train: { ...shipped.train, total_env_steps: totalEnvSteps, threads: 1 } });
  await bus.kv.put(
    keys.run(runId),
    encodeAnnouncement({
      runId,
      state: 'running',
      seed: cfg.run.seed,
      envId: cfg.env.id,
      envOptions: JSON.stringify(cfg.env.options),
      numEnvs: cfg.env.num_envs,
      numSteps: cfg.env.num_steps,
      level: 0,
      actorsPerReplica: 1,
      maxChunksInFlight: 1,
      inference: 'central',
      config: JSON.stringify(cfg),
      checkpoint: '',
    }),
  );
}

const metricUpdates = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { update: number }).update);

function suite(name: string, connect: () => Promise<Bus>) {
  describe(name, () => {
    const dir = mkdtempSync(join(tmpdir(), 'rlmesh-lease-'));
    const buses: Bus[] = [];
    const open = async () => {
      const b = await connect();
      buses.push(b);
      return b;
    };
    afterAll(async () => {
      await Promise.all(buses.map((b) => b.close()));
      rmSync(dir, { recursive: true, force: true });
    });

    it('compare-and-set: one writer per revision; 0 means absent, a deleted key included', async () => {
      const bus = await open();
      const key = `lease.cas-${name}`;
      const first = await bus.kv.compareAndSet(key, te.encode('a'), 0);
      expect(first).not.toBeNull();
      expect(await bus.kv.compareAndSet(key, te.encode('b'), 0)).toBeNull();
      const e = await bus.kv.entry(key);
      expect(e?.revision).toBe(first);
      const second = await bus.kv.compareAndSet(key, te.encode('b'), first!);
      expect(second).toBeGreaterThan(first!);
      // A stale revision loses, whoever holds it.
      expect(await bus.kv.compareAndSet(key, te.encode('c'), first!)).toBeNull();
      expect(new TextDecoder().decode((await bus.kv.get(key))!)).toBe('b');
      // Of many writers that read the same revision, exactly one wins.
      const race = await Promise.all(Array.from({ length: 8 }, (_, i) => bus.kv.compareAndSet(key, te.encode(`w${i}`), second!)));
      expect(race.filter((r) => r !== null)).toHaveLength(1);
      await bus.kv.delete(key);
      expect(await bus.kv.entry(key)).toBeNull();
      expect(await bus.kv.compareAndSet(key, te.encode('d'), 0)).not.toBeNull();
    });

    it('a lease has one holder; it can be taken once expired or released; a holder that lost it finds out', async () => {
      const bus = await open();
      const a = await Lease.acquire(bus, `l1-${name}`, 'learner-a', 300);
      expect(isLease(a)).toBe(true);
      const b = await Lease.acquire(bus, `l1-${name}`, 'learner-b', 300);
      expect(isLease(b)).toBe(false);
      expect(b).toMatchObject({ owner: 'learner-a' });
      // Its own lease: a restarted learner with the same name takes it back at once.
      expect(isLease(await Lease.acquire(bus, `l1-${name}`, 'learner-a', 300))).toBe(true);
      await sleep(400);
      const taken = await Lease.acquire(bus, `l1-${name}`, 'learner-b', 300);
      expect(isLease(taken)).toBe(true);
      if (!isLease(a) || !isLease(taken)) return;
      // learner-a was away past its expiry: its renewal is refused.
      expect(await a.renew()).toBe(false);
      expect(await taken.renew()).toBe(true);
      await taken.release();
      expect(isLease(await Lease.acquire(bus, `l1-${name}`, 'learner-c', 300))).toBe(true);
      // Many learners on one expired lease: one wins.
      await sleep(400);
      const claims = await Promise.all(['d', 'e', 'f', 'g'].map((o) => Lease.acquire(bus, `l1-${name}`, o, 300)));
      expect(claims.filter(isLease)).toHaveLength(1);
      // A renewal whose answer was lost moved the entry on under our own name: the next one adopts it.
      const solo = await Lease.acquire(bus, `l2-${name}`, 'solo', 300);
      const entry = (await bus.kv.entry(keys.lease(`l2-${name}`)))!;
      await bus.kv.compareAndSet(keys.lease(`l2-${name}`), encodeJson({ owner: 'solo', expires_at: Date.now() + 300 }), entry.revision);
      expect(isLease(solo) && (await solo.renew())).toBe(true);
    });

    it('two learners that recover the same run at once: exactly one trains it, to the end', async () => {
      const runId = `race-${name}`;
      const shared = await open();
      await announceOrphan(shared, runId, 64 * 16);
      const [busB, busC] = [await open(), await open()];
      const b = new LearnerCore({ bus: busB, logger, outDir: join(dir, 'b'), owner: 'b', leaseTtlMs: 2000 });
      const c = new LearnerCore({ bus: busC, logger, outDir: join(dir, 'c'), owner: 'c', leaseTtlMs: 2000 });
      const policyCore = new PolicyCore({ bus: shared, logger, seed: 1 });
      const policy: PolicyClient = {
        act: (id, obs, rows, seed, minVersion) => policyCore.act(id, obs, rows, false, minVersion, seed),
      };
      const replica = new EnvReplica({ replicaId: 'r', bus: shared, policy, logger });
      try {
        const [tb, tc] = await Promise.all([b.recover(), c.recover()]);
        expect([...tb, ...tc]).toEqual([runId]);
        const [winner, loser, loserDir] = tb.length ? [b, c, 'c'] : [c, b, 'b'];
        await replica.start();
        let last = winner.getRun(runId);
        // The loser keeps trying at every expiry and keeps being refused while the winner renews.
        await winner.watchRun(runId, (r) => (last = r));
        expect(last.state).toBe(RunState.RUN_STATE_COMPLETED);
        expect(loser.listRuns()).toEqual([]);
        expect(existsSync(join(dir, loserDir, runId))).toBe(false);
        expect(metricUpdates(join(dir, tb.length ? 'b' : 'c', runId))).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
        // An ended run is nobody's to take: the loser, waiting on the released lease, leaves it.
        await sleep(2500);
        expect(loser.listRuns()).toEqual([]);
      } finally {
        await replica.stop();
        await policyCore.close();
        await b.close();
        await c.close();
      }
    }, 60_000);

    it('a live lease of another learner is left alone until it expires; then the run is taken over', async () => {
      const bus = await open();
      const runId = `held-${name}`;
      const ghost: LeaseRecord = { owner: 'ghost', expires_at: Date.now() + 3000 };
      await bus.kv.compareAndSet(keys.lease(runId), encodeJson(ghost), 0);
      await announceOrphan(bus, runId, 64 * 4);
      const core = new LearnerCore({ bus, logger, outDir: join(dir, 'held'), owner: 'd', leaseTtlMs: 1000 });
      try {
        expect(await core.recover()).toEqual([]);
        expect(core.listRuns()).toEqual([]);
        await sleep(800);
        expect(core.listRuns()).toEqual([]);
        const run = await until(() => core.listRuns()[0], 8000, 'the take-over after the expiry');
        expect(run.runId).toBe(runId);
        expect(decodeJson<LeaseRecord>((await bus.kv.get(keys.lease(runId)))!).owner).toBe('d');
      } finally {
        await core.close();
      }
    });

    it('a learner whose lease another learner took stops training the run, and a new run id held elsewhere is refused', async () => {
      const bus = await open();
      const shipped = parseYaml(readFileSync(join(__dirname, '..', '..', '..', 'configs', 'wmil-pattern-echo.yaml'), 'utf8'));
      const core = new LearnerCore({ bus, logger, outDir: join(dir, 'lost'), owner: 'e', leaseTtlMs: 800 });
      try {
        await core.startRun(JSON.stringify(shipped), `lost-${name}`);
        expect(decodeJson<LeaseRecord>((await bus.kv.get(keys.lease(`lost-${name}`)))!).owner).toBe('e');
        // What a learner does that found the lease expired while this one was stalled (retried: a
        // renewal between our read and our write wins that round).
        const thief: LeaseRecord = { owner: 'thief', expires_at: Date.now() + 60_000 };
        await until(
          async () => {
            const entry = (await bus.kv.entry(keys.lease(`lost-${name}`)))!;
            return (await bus.kv.compareAndSet(keys.lease(`lost-${name}`), encodeJson(thief), entry.revision)) ?? undefined;
          },
          3000,
          "the thief's write",
        );
        await until(() => (core.listRuns().length === 0 ? true : undefined), 3000, 'the run to leave the learner');
        expect(decodeJson<LeaseRecord>((await bus.kv.get(keys.lease(`lost-${name}`)))!).owner).toBe('thief');
        await expect(core.startRun(JSON.stringify(shipped), `lost-${name}`)).rejects.toThrow(/trained by learner thief/);
      } finally {
        await core.close();
      }
    });
  });
}

// One bus for every core, as the cores of one process share it.
const memory = new MemoryBus();
suite('MemoryBus', async () => memory);

describe.skipIf(natsMissing)('NatsBus (real nats-server)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  suite('nats', () => NatsBus.connect({ servers: server.url, ackWaitMs: 2000, name: 'lease-test' }));
});
