/** The learner -> policy contract: pointer parsing names the bad field; publishing writes objects, then the key. */

import { Box, Discrete } from '@rlmesh/core';
import { PolicyPointer as PolicyPointerMessage } from '@rlmesh/proto';
import { describe, expect, it } from 'vitest';
import { keys, MemoryBus, spaceToProto } from '../src/index';
import { encodePolicyPointer, type PolicyPointer, paramsFromBytes, parsePolicyPointer, publishPolicy } from '../src/policy-pointer';

const good: PolicyPointer = {
  version: 3,
  program: 'R/policy.onnx',
  params: 'R/params/3',
  spec: {
    observationSpace: spaceToProto(new Box(0, 1, [8])),
    actionSpace: spaceToProto(new Discrete(8)),
    model: 'BabyModel',
    numParameters: 116625,
  },
  distribution: 'categorical',
};
/** A pointer message as any writer could encode it, bypassing encodePolicyPointer's typing. */
const bytes = (p: Partial<PolicyPointer>) => PolicyPointerMessage.encode(PolicyPointerMessage.fromPartial(p)).finish();

describe('policy pointer', () => {
  it('parses the agreed format and round-trips', () => {
    expect(parsePolicyPointer(encodePolicyPointer(good))).toEqual(good);
    expect(parsePolicyPointer(bytes(good))).toEqual(good);
    const gaussian: PolicyPointer = {
      ...good,
      spec: { ...good.spec!, actionSpace: spaceToProto(new Box([-2, -1], [2, 1], [2])) },
      distribution: 'gaussian',
    };
    expect(parsePolicyPointer(encodePolicyPointer(gaussian))).toEqual(gaussian);
  });

  it.each([
    ['a truncated message', Uint8Array.of(0x12, 0x05, 0x01), /^not a PolicyPointer message/],
    ['no version', bytes({ ...good, version: 0 }), /^version must be an integer >= 1, got 0/],
    ['no program', bytes({ ...good, program: '' }), /^program must be an object name/],
    ['no params', bytes({ ...good, params: '' }), /^params must be an object name/],
    ['no spec', bytes({ ...good, spec: undefined }), /^spec must name the observation and action spaces/],
    ['no action space', bytes({ ...good, spec: { ...good.spec!, actionSpace: undefined } }), /^spec must name/],
    ['no observation space', bytes({ ...good, spec: { ...good.spec!, observationSpace: undefined } }), /^spec must name/],
    [
      'an unknown distribution',
      bytes({ ...good, distribution: 'beta' }),
      /^distribution must be one of categorical, multi_categorical, gaussian, got "beta"/,
    ],
    ['no distribution', bytes({ ...good, distribution: '' }), /^distribution must be one of/],
  ])('rejects %s', (_name, raw, message) => {
    expect(() => parsePolicyPointer(raw)).toThrow(message);
  });

  it('publishPolicy stores params little-endian under the standard names and points the key at them', async () => {
    const bus = new MemoryBus();
    const params = Float32Array.of(1.5, -2, 3.25);
    const program = Uint8Array.of(1, 2, 3);
    const spec = { ...good.spec!, numParameters: 3 };
    const p = await publishPolicy(bus, 'R', { version: 4, params, program, spec, distribution: 'categorical' });
    expect(p).toEqual({ version: 4, program: 'R/policy.onnx', params: 'R/params/4', spec, distribution: 'categorical' });
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
