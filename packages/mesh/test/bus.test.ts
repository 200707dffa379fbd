/**
 * The Bus contract, run against both implementations: MemoryBus in-process and NatsBus on a private
 * nats-server (JetStream, temp store). Under CI=true a missing nats-server fails the suite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bus, MemoryBus } from '../src/bus';
import { NatsBus } from '../src/nats-bus';
import { findNatsServer, type NatsServer, startNatsServer } from '../src/nats-server';

const te = new TextEncoder();
const td = new TextDecoder();
const natsMissing = !findNatsServer() && process.env.CI !== 'true';

function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => (cond() ? resolve() : Date.now() - t0 > timeoutMs ? reject(new Error('timed out')) : setTimeout(tick, 10));
    tick();
  });
}

function contract(name: string, make: () => Promise<Bus>) {
  describe(name, () => {
    let bus: Bus;
    beforeAll(async () => {
      bus = await make();
    });
    afterAll(async () => bus?.close());

    it('delivers published messages with headers to a durable consumer, in order', async () => {
      for (let i = 0; i < 5; i++) await bus.publish('rlmesh.traj.order', te.encode(`m${i}`), { traceparent: `t${i}` });
      const got: string[] = [];
      const heads: string[] = [];
      const sub = await bus.consume({ subject: 'rlmesh.traj.order', durable: 'order' }, async (m) => {
        got.push(td.decode(m.data));
        heads.push(m.headers.traceparent);
        m.ack();
      });
      await until(() => got.length === 5);
      await sub.stop();
      expect(got).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect(heads).toEqual(['t0', 't1', 't2', 't3', 't4']);
    });

    it('redelivers a nakked message and one whose handler threw; a durable resumes after its last ack', async () => {
      await bus.publish('rlmesh.traj.redo', te.encode('a'));
      await bus.publish('rlmesh.traj.redo', te.encode('b'));
      const seen: string[] = [];
      let failedOnce = false;
      const sub = await bus.consume({ subject: 'rlmesh.traj.redo', durable: 'redo' }, async (m) => {
        const s = td.decode(m.data);
        seen.push(`${s}${m.deliveryCount}`);
        if (s === 'a' && m.deliveryCount === 1) return m.nak();
        if (s === 'b' && !failedOnce) {
          failedOnce = true;
          throw new Error('handler failure');
        }
        m.ack();
      });
      await until(() => seen.includes('a2') && seen.includes('b2'));
      await sub.stop();
      await bus.publish('rlmesh.traj.redo', te.encode('c'));
      const after: string[] = [];
      const sub2 = await bus.consume({ subject: 'rlmesh.traj.redo', durable: 'redo' }, async (m) => {
        after.push(td.decode(m.data));
        m.ack();
      });
      await until(() => after.includes('c'));
      await sub2.stop();
      expect(after).toEqual(['c']);
    });

    it('keeps KV values, lists keys by prefix and notifies watchers up to the latest value', async () => {
      await bus.kv.put('run.alpha', te.encode('1'));
      const seen: string[] = [];
      const w = await bus.kv.watch('run.alpha', (_k, v) => seen.push(v ? td.decode(v) : 'deleted'));
      await bus.kv.put('run.alpha', te.encode('2'));
      await bus.kv.put('run.beta', te.encode('x'));
      // A watcher may skip a value overwritten before it was delivered; it always sees the latest.
      await until(() => seen.at(-1) === '2');
      expect(['1', '2']).toContain(seen[0]);
      expect(td.decode((await bus.kv.get('run.alpha'))!)).toBe('2');
      expect((await bus.kv.keys('run.')).sort()).toEqual(['run.alpha', 'run.beta']);
      await bus.kv.delete('run.beta');
      expect(await bus.kv.get('run.beta')).toBeNull();
      await w.stop();
    });

    it('stores and returns objects larger than a NATS chunk', async () => {
      const big = new Uint8Array(600_000).map((_, i) => i % 251);
      await bus.objects.put('run/params/1', big);
      expect(Buffer.from((await bus.objects.get('run/params/1'))!).equals(Buffer.from(big))).toBe(true);
      await bus.objects.delete('run/params/1');
      expect(await bus.objects.get('run/params/1')).toBeNull();
    });

    it('stores and returns objects of one chunk and empty ones, and the latest of a name put twice', async () => {
      const small = new Uint8Array(36_620).map((_, i) => (i * 7) % 256);
      await bus.objects.put('run/params/2', small);
      expect(Buffer.from((await bus.objects.get('run/params/2'))!).equals(Buffer.from(small))).toBe(true);
      const again = small.map((x) => 255 - x);
      await bus.objects.put('run/params/2', again);
      expect(Buffer.from((await bus.objects.get('run/params/2'))!).equals(Buffer.from(again))).toBe(true);
      await bus.objects.put('run/empty', new Uint8Array(0));
      expect((await bus.objects.get('run/empty'))?.length).toBe(0);
      expect(await bus.objects.get('run/never-put')).toBeNull();
    });
  });
}

contract('MemoryBus', async () => new MemoryBus());

describe.skipIf(natsMissing)('NatsBus (real nats-server)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => server?.stop());
  contract('contract', async () => NatsBus.connect({ servers: server.url, ackWaitMs: 2000 }));
});
