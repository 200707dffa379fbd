/** The learner -> policy contract: pointer parsing names the bad field; publishing writes objects, then the key. */

import { describe, expect, it } from 'vitest';
import { keys, MemoryBus } from '../src/index';
import { encodePolicyPointer, type PolicyPointer, paramsFromBytes, parsePolicyPointer, publishPolicy } from '../src/policy-pointer';

const good: PolicyPointer = {
  version: 3,
  program: 'R/policy.onnx',
  params: 'R/params/3',
  spec: { obs_dim: 8, num_actions: 8, model: 'BabyModel', num_parameters: 116625 },
};
const bytes = (x: unknown) => new TextEncoder().encode(typeof x === 'string' ? x : JSON.stringify(x));

describe('policy pointer', () => {
  it('parses the agreed format and round-trips', () => {
    expect(parsePolicyPointer(bytes(good))).toEqual(good);
    expect(parsePolicyPointer(encodePolicyPointer(good))).toEqual(good);
  });

  it.each([
    ['{', /^not JSON/],
    ['[]', /^version must be/],
    [{ ...good, version: 0 }, /^version must be an integer >= 1, got 0/],
    [{ ...good, version: 1.5 }, /^version must be/],
    [{ ...good, program: '' }, /^program must be an object name/],
    [{ ...good, params: 7 }, /^params must be an object name, got 7/],
    [{ ...good, spec: null }, /^spec must be an object/],
    [{ ...good, spec: { ...good.spec, obs_dim: -1 } }, /^spec.obs_dim must be an integer >= 1, got -1/],
    [{ ...good, spec: { ...good.spec, num_actions: '8' } }, /^spec.num_actions must be/],
    [{ ...good, spec: { ...good.spec, num_parameters: 0 } }, /^spec.num_parameters must be/],
    [{ ...good, spec: { ...good.spec, model: 1 } }, /^spec.model must be a string/],
  ])('rejects %j', (raw, message) => {
    expect(() => parsePolicyPointer(bytes(raw))).toThrow(message);
  });

  it('publishPolicy stores params little-endian under the standard names and points the key at them', async () => {
    const bus = new MemoryBus();
    const params = Float32Array.of(1.5, -2, 3.25);
    const program = Uint8Array.of(1, 2, 3);
    const spec = { obs_dim: 2, num_actions: 2 };
    const p = await publishPolicy(bus, 'R', { version: 4, params, program, spec });
    expect(p).toEqual({ version: 4, program: 'R/policy.onnx', params: 'R/params/4', spec });
    expect(parsePolicyPointer((await bus.kv.get(keys.policy('R')))!)).toEqual(p);
    expect(await bus.objects.get('R/policy.onnx')).toEqual(program);
    const stored = (await bus.objects.get('R/params/4'))!;
    expect(new DataView(stored.buffer, stored.byteOffset).getFloat32(4, true)).toBe(-2);
    expect(Array.from(paramsFromBytes(stored))).toEqual([1.5, -2, 3.25]);
  });

  it('paramsFromBytes copies unaligned bytes and rejects a partial float', () => {
    const raw = new Uint8Array(9);
    new DataView(raw.buffer).setFloat32(1, 0.5, true);
    expect(Array.from(paramsFromBytes(raw.subarray(1, 5)))).toEqual([0.5]);
    expect(() => paramsFromBytes(raw.subarray(0, 6))).toThrow(/not a multiple of 4/);
  });
});
