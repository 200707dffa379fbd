/**
 * Hot-swapping policy versions from the KV watch: new parameters are picked up, requests in flight
 * during a swap all succeed and each matches the version it reports, versions never move back, a
 * broken version is skipped, a new program is loaded, and a dead worker is replaced.
 */
import { status } from '@grpc/grpc-js';
import { encodePolicyPointer, keys, MemoryBus, type MeshError, objects, paramsToBytes } from '@rlmesh/mesh';
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyCore } from '../src/core';
import { compile, observations, publish, quietLogger, reference, specOf } from './fixture';

const C = compile();
const P = [C.params(1), C.params(2), C.params(3)];
const cores: PolicyCore[] = [];

afterEach(async () => {
  await Promise.all(cores.splice(0).map((c) => c.close()));
});

async function setup() {
  const bus = new MemoryBus();
  await publish(bus, 'r', C, 1, P[0]);
  const core = new PolicyCore({ bus, logger: quietLogger, seed: 0, maxWaitMs: 1 });
  cores.push(core);
  return { bus, core };
}

/** Acts until the reported version is `version` (swaps are asynchronous: fetch, then a worker message). */
async function untilVersion(core: PolicyCore, version: number, obs = observations(2, C.obsDim), rows = 2) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await core.act('r', obs, rows, true);
    if (r.version === version) return r;
    if (Date.now() > deadline) throw new Error(`still serving version ${r.version}, waited for ${version}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the core validates requests against `version` (its swap is posted to the worker). */
async function untilPointer(core: PolicyCore, version: number) {
  const deadline = Date.now() + 10_000;
  while ((await core.getPolicy('r')).version !== version) {
    if (Date.now() > deadline) throw new Error(`pointer never reached version ${version}`);
    await sleep(5);
  }
}

describe('hot swap', () => {
  it('serves a newly published version with its own parameters', async () => {
    const { bus, core } = await setup();
    const obs = observations(8, C.obsDim);
    const v1 = await core.act('r', obs, 8, true);
    expect(v1.version).toBe(1);
    await publish(bus, 'r', C, 2, P[1]);
    const v2 = await untilVersion(core, 2, obs, 8);
    const ref2 = await reference(C, P[1], obs, 8);
    for (let i = 0; i < 8; i++) expect(v2.values[i]).toBeCloseTo(ref2.value[i], 5);
    expect(Array.from(v2.values)).not.toEqual(Array.from(v1.values));
    expect((await core.getPolicy('r')).version).toBe(2);
  });

  it('min_version: Act waits for that version to be swapped in, and answers with what it has after the wait limit', async () => {
    const bus = new MemoryBus();
    await publish(bus, 'r', C, 1, P[0]);
    const core = new PolicyCore({ bus, logger: quietLogger, seed: 0, maxWaitMs: 0, maxVersionWaitMs: 300 });
    cores.push(core);
    const obs = observations(2, C.obsDim);
    expect((await core.act('r', obs, 2, true, 1)).version).toBe(1);
    const waiting = core.act('r', obs, 2, true, 2);
    await sleep(50);
    await publish(bus, 'r', C, 2, P[1]);
    expect((await waiting).version).toBe(2);
    const t0 = Date.now();
    const late = await core.act('r', obs, 2, true, 9);
    expect(late.version).toBe(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it('a batch already running finishes on the old weights; the queued ones run on the new', async () => {
    const bus = new MemoryBus();
    const big = compile(6, 5, [256, 256]);
    const [w1, w2] = [big.params(1), big.params(2)];
    await publish(bus, 'r', big, 1, w1);
    const core = new PolicyCore({ bus, logger: quietLogger, seed: 0, maxBatch: 1024, maxWaitMs: 0 });
    cores.push(core);
    await core.act('r', observations(1, 6), 1, true);
    const obs = observations(2048, 6, 4);
    const running = core.act('r', obs, 2048, true); // over maxBatch: leaves at once
    const queued = [core.act('r', obs, 2048, true), core.act('r', obs, 2048, true)];
    // By now the first batch is in the worker (posted within microtasks), which takes milliseconds to run it.
    await new Promise((r) => setImmediate(r));
    await publish(bus, 'r', big, 2, w2);
    await untilPointer(core, 2);
    const [a, b, c] = await Promise.all([running, ...queued]);
    expect([a.version, b.version, c.version]).toEqual([1, 2, 2]);
    const [ref1, ref2] = await Promise.all([reference(big, w1, obs, 2048), reference(big, w2, obs, 2048)]);
    for (const i of [0, 1000, 2047]) {
      expect(a.values[i]).toBeCloseTo(ref1.value[i], 4);
      expect(b.values[i]).toBeCloseTo(ref2.value[i], 4);
      expect(c.values[i]).toBeCloseTo(ref2.value[i], 4);
    }
  });

  it('drops no request in flight during swaps, and each result matches the version it reports', async () => {
    const { bus, core } = await setup();
    await core.act('r', observations(1, C.obsDim), 1, true);
    const obs = observations(4, C.obsDim, 9);
    const refs = await Promise.all(P.map((p) => reference(C, p, obs, 4)));
    const calls: Promise<{ version: number; values: Float32Array }>[] = [];
    for (let wave = 0; wave < 3; wave++) {
      for (let i = 0; i < 30; i++) calls.push(core.act('r', obs, 4, false));
      if (wave < 2) void publish(bus, 'r', C, wave + 2, P[wave + 1]);
      await sleep(2);
    }
    const results = await Promise.all(calls);
    const versions = results.map((r) => r.version);
    // Requests leave the queue in order and swaps are ordered with them: versions never decrease.
    for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThanOrEqual(versions[i - 1]);
    for (const r of results) {
      const ref = refs[r.version - 1];
      for (let i = 0; i < 4; i++) expect(r.values[i]).toBeCloseTo(ref.value[i], 5);
    }
    expect((await untilVersion(core, 3)).version).toBe(3);
  });

  it('never moves back to an older version', async () => {
    const { bus, core } = await setup();
    await core.act('r', observations(1, C.obsDim), 1, true);
    await publish(bus, 'r', C, 3, P[2]);
    await untilVersion(core, 3);
    await publish(bus, 'r', C, 2, P[1]);
    await sleep(50);
    expect((await core.act('r', observations(1, C.obsDim), 1, true)).version).toBe(3);
    expect((await core.getPolicy('r')).version).toBe(3);
  });

  it('skips a version whose parameters cannot be fetched and keeps serving the last good one', async () => {
    const { bus, core } = await setup();
    await core.act('r', observations(1, C.obsDim), 1, true);
    const spec = specOf(C, C.numParameters);
    const broken = { version: 2, program: objects.policyProgram('r'), params: 'r/params/missing', spec, distribution: 'categorical' };
    await bus.kv.put(keys.policy('r'), encodePolicyPointer(broken));
    await sleep(50);
    expect((await core.act('r', observations(1, C.obsDim), 1, true)).version).toBe(1);
    await publish(bus, 'r', C, 3, P[2]);
    expect((await untilVersion(core, 3)).version).toBe(3);
  });

  it('loads a new program when the pointer names one, and validates against its spec', async () => {
    const { bus, core } = await setup();
    await core.act('r', observations(1, C.obsDim), 1, true);
    const D = compile(4, 3, [16, 8]);
    const pd = D.params(5);
    await bus.objects.put('r/policy-v2.onnx', D.onnx);
    await bus.objects.put(objects.policyParams('r', 2), paramsToBytes(pd));
    const pointer = {
      version: 2,
      program: 'r/policy-v2.onnx',
      params: objects.policyParams('r', 2),
      spec: specOf(D),
      distribution: 'categorical',
    };
    await bus.kv.put(keys.policy('r'), encodePolicyPointer(pointer));
    const obs = observations(5, 4);
    await untilPointer(core, 2);
    const r = await core.act('r', obs, 5, true);
    expect(r.version).toBe(2);
    const ref = await reference(D, pd, obs, 5);
    for (let i = 0; i < 5; i++) expect(r.values[i]).toBeCloseTo(ref.value[i], 5);
    expect(Math.max(...r.actions)).toBeLessThan(3);
    const old = await core.act('r', observations(1, C.obsDim), 1, true).catch((e: MeshError) => e);
    expect((old as MeshError).code).toBe(status.INVALID_ARGUMENT);
    expect((old as MeshError).message).toBe(`obs: shape must be [*, 4], got [1, ${C.obsDim}]`);
  });

  it('replaces a worker that died: the next request reopens the run', async () => {
    const { core } = await setup();
    await core.act('r', observations(1, C.obsDim), 1, true);
    // Kill the thread behind the core's back, as a native crash would.
    const run = await (core as unknown as { runs: { peek(key: string): Promise<unknown> } }).runs.peek('r');
    const raw = (run as { worker: { worker: { terminate(): Promise<number> } } }).worker.worker;
    await raw.terminate();
    await sleep(20);
    const r = await core.act('r', observations(3, C.obsDim), 3, true);
    expect(r.version).toBe(1);
    expect(r.actions.length).toBe(3);
  });
});
