/**
 * PolicyCore against a MemoryBus and a real compiled policy: outputs checked against onnxruntime
 * run in-process, sampling, batching, metrics, and the keyed errors of bad requests.
 */
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import type { Meter } from '@opentelemetry/api';
import { encodePolicyPointer, keys, MemoryBus, type MeshError } from '@rlmesh/mesh';
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyCore, type PolicyCoreOptions } from '../src/core';
import { compile, observations, publish, quietLogger, reference, specOf } from './fixture';

const C = compile();
const P1 = C.params(1);
const cores: PolicyCore[] = [];

function makeCore(bus: MemoryBus, opts: Partial<PolicyCoreOptions> = {}) {
  const core = new PolicyCore({ bus, logger: quietLogger, seed: 0, ...opts });
  cores.push(core);
  return core;
}

afterEach(async () => {
  await Promise.all(cores.splice(0).map((c) => c.close()));
});

async function published(run = 'r1') {
  const bus = new MemoryBus();
  await publish(bus, run, C, 1, P1);
  return bus;
}

function argmax(row: Float32Array): number {
  let a = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[a]) a = i;
  return a;
}

describe('PolicyCore.act', () => {
  it('returns valid actions whose log-probs and values match onnxruntime run in-process', async () => {
    const core = makeCore(await published());
    const rows = 16;
    const obs = observations(rows, C.obsDim);
    const r = await core.act('r1', obs, rows, false);
    const ref = await reference(C, P1, obs, rows);
    expect(r.version).toBe(1);
    expect(r.actions.length).toBe(rows);
    for (let i = 0; i < rows; i++) {
      const a = r.actions[i];
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a).toBeLessThan(C.numActions);
      expect(r.logProbs[i]).toBeCloseTo(ref.logProbs[i * C.numActions + a], 5);
      expect(r.values[i]).toBeCloseTo(ref.value[i], 5);
    }
  });

  it('greedy returns the argmax of each row', async () => {
    const core = makeCore(await published());
    const rows = 32;
    const obs = observations(rows, C.obsDim, 3);
    const r = await core.act('r1', obs, rows, true);
    const ref = await reference(C, P1, obs, rows);
    const want = Array.from({ length: rows }, (_, i) => argmax(ref.logProbs.subarray(i * C.numActions, (i + 1) * C.numActions)));
    expect(Array.from(r.actions)).toEqual(want);
  });

  it('samples from exp(log_probs), reproducibly for a seed', async () => {
    const bus = await published();
    const rows = 4000;
    const one = observations(1, C.obsDim, 5);
    const obs = new Float32Array(rows * C.obsDim);
    for (let i = 0; i < rows; i++) obs.set(one, i * C.obsDim);
    const a = await makeCore(bus, { seed: 11 }).act('r1', obs, rows, false);
    const b = await makeCore(bus, { seed: 11 }).act('r1', obs, rows, false);
    expect(Array.from(a.actions)).toEqual(Array.from(b.actions));
    // a request's own seed gives the same actions whatever core serves it and whatever else is batched
    const core = makeCore(bus, { seed: 12, maxWaitMs: 20 });
    const [s1, , s2] = await Promise.all([
      core.act('r1', obs.subarray(0, 100 * C.obsDim), 100, false, 0, 42),
      core.act('r1', obs.subarray(0, 7 * C.obsDim), 7, false, 0, 43),
      makeCore(bus, { seed: 13 }).act('r1', obs.subarray(0, 100 * C.obsDim), 100, false, 0, 42),
    ]);
    expect(Array.from(s1.actions)).toEqual(Array.from(s2.actions));
    expect(Array.from(s1.logProbs)).toEqual(Array.from(s2.logProbs));
    const ref = await reference(C, P1, one, 1);
    const counts = new Array(C.numActions).fill(0);
    for (const x of a.actions) counts[x]++;
    for (let k = 0; k < C.numActions; k++) {
      const p = Math.exp(ref.logProbs[k]);
      // 5 standard errors of a binomial proportion.
      expect(Math.abs(counts[k] / rows - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / rows) + 1e-3);
    }
  });

  it('batches concurrent requests of a run into one inference and records the metrics', async () => {
    const records: Record<string, number[]> = {};
    const instrument = (name: string) => {
      records[name] = [];
      const push = (v: number) => records[name].push(v);
      return { record: push, add: push };
    };
    const meter = { createHistogram: instrument, createCounter: instrument } as unknown as Meter;
    const core = makeCore(await published(), { maxWaitMs: 50, meter });
    await core.act('r1', observations(1, C.obsDim), 1, true); // opens the run
    const before = { ...core.stats };
    const calls = Array.from({ length: 8 }, (_, i) => core.act('r1', observations(4, C.obsDim, i), 4, false));
    const results = await Promise.all(calls);
    expect(core.stats.batches - before.batches).toBe(1);
    expect(core.stats.rows - before.rows).toBe(32);
    for (const r of results) expect(r.actions.length).toBe(4);
    expect(records['rlmesh.policy.batch.rows']).toEqual([1, 32]);
    expect(records['rlmesh.policy.rows.served'].reduce((s, x) => s + x, 0)).toBe(33);
    expect(records['rlmesh.policy.act.latency']).toHaveLength(9);
  });

  it('splits a batch back so that each caller gets the outputs of its own rows', async () => {
    const core = makeCore(await published(), { maxWaitMs: 30 });
    const inputs = [3, 1, 5].map((rows, i) => ({ rows, obs: observations(rows, C.obsDim, 100 + i) }));
    const results = await Promise.all(inputs.map((x) => core.act('r1', x.obs, x.rows, true)));
    expect(core.stats.batches).toBe(1);
    for (const [i, x] of inputs.entries()) {
      const ref = await reference(C, P1, x.obs, x.rows);
      for (let r = 0; r < x.rows; r++) expect(results[i].values[r]).toBeCloseTo(ref.value[r], 5);
    }
  });
});

describe('PolicyCore errors', () => {
  const codeOf = async (p: Promise<unknown>) => {
    const e = (await p.then(
      () => null,
      (x: unknown) => x,
    )) as MeshError | null;
    expect(e).not.toBeNull();
    return { code: e?.code, message: e?.message };
  };

  it('gives back the worker of a run idle for idleCloseMs, and opens it again on the next request', async () => {
    const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
    const bus = new MemoryBus();
    const runs = Array.from({ length: 20 }, (_, i) => `idle-${i}`);
    for (const r of runs) await publish(bus, r, C, 1, P1);
    const core = makeCore(bus, { idleCloseMs: 1000 });
    const obs = observations(2, C.obsDim, 1);
    await core.act(runs[0], obs, 2, true);
    await new Promise((r) => setTimeout(r, 2500));
    const before = threads();
    await Promise.all(runs.map((r) => core.act(r, obs, 2, true)));
    // 20 runs served at once hold a worker each.
    expect(threads()).toBeGreaterThanOrEqual(before + 15);
    await new Promise((r) => setTimeout(r, 2500));
    expect(threads()).toBeLessThanOrEqual(before + 1);
    // Closed for idleness is not gone: the next request is served as before.
    const again = await core.act(runs[3], obs, 2, true);
    expect(again.actions).toHaveLength(2);
  });

  it('unknown run: NOT_FOUND naming run_id; a run published later is then served', async () => {
    const bus = new MemoryBus();
    const core = makeCore(bus);
    const obs = observations(1, C.obsDim);
    expect(await codeOf(core.act('later', obs, 1, false))).toEqual({
      code: status.NOT_FOUND,
      message: 'run_id: no policy published for run "later"',
    });
    expect((await codeOf(core.getPolicy('later'))).code).toBe(status.NOT_FOUND);
    await publish(bus, 'later', C, 1, P1);
    expect((await core.act('later', obs, 1, false)).version).toBe(1);
  });

  it('malformed run id, wrong obs width, zero or too many rows: INVALID_ARGUMENT naming the field', async () => {
    const core = makeCore(await published(), { maxRowsPerRequest: 8 });
    const bad = await codeOf(core.act('../etc', observations(1, C.obsDim), 1, false));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.message).toMatch(/^run_id: /);
    expect(await codeOf(core.act('r1', new Float32Array(6), 2, false))).toEqual({
      code: status.INVALID_ARGUMENT,
      message: `obs: shape must be [*, ${C.obsDim}], got [2, 3]`,
    });
    expect(await codeOf(core.act('r1', new Float32Array(7), 2, false))).toEqual({
      code: status.INVALID_ARGUMENT,
      message: `obs: shape must be [*, ${C.obsDim}], got 7 values for 2 rows`,
    });
    const zero = await codeOf(core.act('r1', new Float32Array(0), 0, false));
    expect(zero.code).toBe(status.INVALID_ARGUMENT);
    expect(zero.message).toMatch(/^obs: needs at least 1 row/);
    const nan = observations(2, C.obsDim);
    nan[C.obsDim + 1] = Number.NaN;
    expect(await codeOf(core.act('r1', nan, 2, false))).toEqual({
      code: status.INVALID_ARGUMENT,
      message: 'obs: values must be finite, got NaN at row 1',
    });
    const many = await codeOf(core.act('r1', observations(9, C.obsDim), 9, false));
    expect(many).toEqual({ code: status.INVALID_ARGUMENT, message: 'obs: at most 8 rows per request, got 9' });
    expect((await core.act('r1', observations(8, C.obsDim), 8, false)).actions.length).toBe(8);
  });

  it('more queued rows than maxQueuedRows: RESOURCE_EXHAUSTED, and the queued request is still served', async () => {
    const core = makeCore(await published(), { maxBatch: 64, maxWaitMs: 200, maxQueuedRows: 8 });
    await core.act('r1', observations(1, C.obsDim), 1, false); // opens the run
    const queued = core.act('r1', observations(5, C.obsDim), 5, false);
    const shed = await codeOf(core.act('r1', observations(4, C.obsDim), 4, false));
    expect(shed.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(shed.message).toMatch(/^obs: 5 rows already queued for run "r1" \(limit 8\)/);
    expect((await queued).actions.length).toBe(5);
  });

  it('a pointer naming a missing object or a malformed pointer: FAILED_PRECONDITION', async () => {
    const bus = await published();
    await bus.objects.delete('r1/params/1');
    const core = makeCore(bus);
    const missing = await codeOf(core.act('r1', observations(1, C.obsDim), 1, false));
    expect(missing.code).toBe(status.FAILED_PRECONDITION);
    expect(missing.message).toMatch(/^run_id: .*"r1\/params\/1"/);
    const bad = { version: 0, program: 'r2/policy.onnx', params: 'r2/params/0', spec: specOf(C), distribution: 'categorical' };
    await bus.kv.put(keys.policy('r2'), encodePolicyPointer(bad));
    const malformed = await codeOf(core.getPolicy('r2'));
    expect(malformed.code).toBe(status.FAILED_PRECONDITION);
    expect(malformed.message).toMatch(/version must be an integer >= 1/);
    await bus.kv.put(keys.policy('r3'), encodePolicyPointer({ ...bad, version: 1, distribution: 'beta' }));
    expect((await codeOf(core.getPolicy('r3'))).message).toMatch(
      /distribution must be one of categorical, multi_categorical, gaussian, got "beta"/,
    );
    await bus.kv.put(keys.policy('r4'), new TextEncoder().encode('{"version": 0}')); // not a proto message
    const garbage = await codeOf(core.getPolicy('r4'));
    expect(garbage.code).toBe(status.FAILED_PRECONDITION);
    expect(garbage.message).toMatch(/^run_id: policy pointer of run "r4" is malformed/);
  });

  it('after close, requests are UNAVAILABLE', async () => {
    const core = makeCore(await published());
    await core.act('r1', observations(1, C.obsDim), 1, false);
    await core.close();
    expect((await codeOf(core.act('r1', observations(1, C.obsDim), 1, false))).code).toBe(status.UNAVAILABLE);
  });
});

describe('PolicyCore.getPolicy', () => {
  it('reports the published version and spec, served or not', async () => {
    const core = makeCore(await published());
    const want = { version: 1, spec: specOf(C, C.numParameters) };
    expect(await core.getPolicy('r1')).toEqual(want);
    await core.act('r1', observations(1, C.obsDim), 1, false);
    expect(await core.getPolicy('r1')).toEqual(want);
  });
});
