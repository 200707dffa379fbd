import { describe, expect, it } from 'vitest';
import { activationBatches, decodeActivationBatch, encodeActivationBatch, MAX_BATCH_BYTES } from '../src/activations';

const base = { run: 'r1', hook: 'blocks.1.hook_resid_post', version: 7, level: 2 };

describe('activation batches', () => {
  it('round-trip with their run, hook, version, level and shape in plain headers', () => {
    const data = Float32Array.from({ length: 6 }, (_, i) => i / 3 - 1);
    const { data: bytes, headers } = encodeActivationBatch({ ...base, rows: 2, d: 3, data });
    expect(headers).toEqual({
      'rlmesh-run': 'r1',
      'rlmesh-hook': 'blocks.1.hook_resid_post',
      'rlmesh-version': '7',
      'rlmesh-level': '2',
      'rlmesh-shape': '2,3',
    });
    expect(bytes.byteLength).toBe(24);
    expect(decodeActivationBatch(bytes, headers)).toEqual({ ...base, rows: 2, d: 3, data });
  });

  it('refuses what does not add up, naming the header or the value', () => {
    const { data, headers } = encodeActivationBatch({ ...base, rows: 2, d: 2, data: new Float32Array(4) });
    expect(() => decodeActivationBatch(data, { ...headers, 'rlmesh-shape': '3,2' })).toThrow(/16 bytes is not \[3, 2\] float32/);
    expect(() => decodeActivationBatch(data, { ...headers, 'rlmesh-shape': 'x' })).toThrow(/header rlmesh-shape must be "rows,d"/);
    expect(() => decodeActivationBatch(data, { ...headers, 'rlmesh-version': '-1' })).toThrow(
      /header rlmesh-version must be an integer >= 0/,
    );
    const nan = encodeActivationBatch({ ...base, rows: 2, d: 2, data: Float32Array.of(0, 0, Number.NaN, 0) });
    expect(() => decodeActivationBatch(nan.data, nan.headers)).toThrow(/row 1 holds NaN at column 0/);
    expect(() => encodeActivationBatch({ ...base, hook: 'a b', rows: 1, d: 1, data: new Float32Array(1) })).toThrow(
      /cannot be a subject token/,
    );
    expect(() => encodeActivationBatch({ ...base, hook: 'a..b', rows: 1, d: 1, data: new Float32Array(1) })).toThrow(
      /cannot be a subject token/,
    );
  });

  it('splits rows into batches under the payload bound, in order', () => {
    const d = 768;
    const rows = 500;
    const data = Float32Array.from({ length: rows * d }, (_, i) => i);
    const batches = activationBatches({ ...base, d }, data, rows);
    expect(batches.every((b) => b.rows * d * 4 <= MAX_BATCH_BYTES)).toBe(true);
    expect(batches.reduce((t, b) => t + b.rows, 0)).toBe(rows);
    expect(batches.length).toBe(Math.ceil(rows / Math.floor(MAX_BATCH_BYTES / (4 * d))));
    expect(batches[1].data[0]).toBe(batches[0].rows * d);
  });
});
