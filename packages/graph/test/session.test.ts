/**
 * Session calls onnxruntime-node's native session directly (not its public InferenceSession): the
 * same model through both gives the same outputs, bad runs fail with errors naming the input or
 * output, and a long series of runs still lets timers fire.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { add, Graph, mul, reduceSum, Session, tanh } from '../src';

function model(): Uint8Array {
  const g = new Graph('session_test');
  const x = g.input('x', 'float32', ['batch', 3]);
  const k = g.input('k', 'int64', [2]);
  g.output('y', tanh(mul(x, 0.5)));
  g.output('s', reduceSum(add(x, 1)));
  g.output('k2', add(k, k));
  return g.toOnnx();
}

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Session', () => {
  const x = Float32Array.from([0.1, -2, 3, 0.5, 0.25, -0.75]);
  const k = BigInt64Array.from([3n, -4n]);

  it("matches onnxruntime-node's public InferenceSession, from bytes and from a file", async () => {
    const bytes = model();
    const file = join(dir, 'm.onnx');
    writeFileSync(file, bytes);
    const ref = await ort.InferenceSession.create(bytes);
    const want = await ref.run({ x: new ort.Tensor('float32', x, [2, 3]), k: new ort.Tensor('int64', k, [2]) });
    for (const source of [bytes, file]) {
      const s = await Session.create(source);
      expect(s.inputNames).toEqual(ref.inputNames);
      expect(s.outputNames).toEqual(ref.outputNames);
      const got = await s.run({ x: { data: x, shape: [2, 3] }, k: { data: k, shape: [2] } });
      for (const name of ref.outputNames) {
        expect(got[name].shape).toEqual(want[name].dims);
        expect(Array.from(got[name].data as ArrayLike<number | bigint>)).toEqual(Array.from(want[name].data as ArrayLike<number | bigint>));
      }
      const some = await s.run({ x: { data: x, shape: [2, 3] }, k: { data: k, shape: [2] } }, ['s']);
      expect(Object.keys(some)).toEqual(['s']);
      await s.release();
      await s.release(); // twice is harmless
      await expect(s.run({ x: { data: x, shape: [2, 3] }, k: { data: k, shape: [2] } })).rejects.toThrow(/released/);
    }
    await ref.release();
  });

  it('rejects bad runs with the input or output named', async () => {
    const s = await Session.create(model());
    await expect(s.run({ x: { data: x, shape: [2, 3] } })).rejects.toThrow(/missing input k/);
    await expect(s.run({ x: { data: x, shape: [2, 3] }, k: { data: k, shape: [2] } }, ['nope'])).rejects.toThrow(/no output nope/);
    await expect(s.run({ x: { data: x, shape: [3, 3] }, k: { data: k, shape: [2] } })).rejects.toThrow();
    await expect(s.run({ x: { data: new Float64Array(6), shape: [2, 3] }, k: { data: k, shape: [2] } })).rejects.toThrow();
    // Still usable after the failures.
    const ok = await s.run({ x: { data: x, shape: [2, 3] }, k: { data: k, shape: [2] } });
    expect(ok.s.data[0]).toBeCloseTo(
      x.reduce((a, b) => a + b + 1, 0),
      5,
    );
    await s.release();
  });

  it('lets timers fire during a long series of runs', async () => {
    const s = await Session.create(model());
    let fired = 0;
    const timer = setInterval(() => fired++, 1);
    const t0 = performance.now();
    while (performance.now() - t0 < 200) await s.run({ x: { data: x, shape: [2, 3] }, k: { data: k, shape: [2] } });
    clearInterval(timer);
    // A yield every few milliseconds: a 1 ms interval fires many times in 200 ms (none if runs never yielded).
    expect(fired).toBeGreaterThan(10);
    await s.release();
  });
});
