/** Core types <-> proto: spaces survive the wire (per-element and infinite Box bounds included), rollouts round-trip, and announcements are proto messages. */
import { Box, Discrete, MultiDiscrete, type Rollout, type Space, TokenSequence } from '@rlmesh/core';
import { encodeTensor, TensorError, TrajectoryChunk } from '@rlmesh/proto';
import { describe, expect, it } from 'vitest';
import { chunkBytes, decodeAnnouncement, decodeRollout, encodeAnnouncement, encodeRollout, spaceFromProto, spaceToProto } from '../src';

const wire = (s: Space) => spaceFromProto(spaceToProto(s));

describe('spaces', () => {
  it.each([
    ['Discrete', new Discrete(5)],
    ['Box with scalar bounds', new Box(0, 1, [2, 3])],
    ['Box with per-element and infinite bounds', new Box([-2.4, -Infinity, -0.5, -Infinity], [2.4, Infinity, 0.5, Infinity], [4])],
    ['MultiDiscrete', new MultiDiscrete([3, 4, 2])],
    ['TokenSequence', new TokenSequence(100, 16, 3)],
  ])('round-trips %s', (_name, s) => {
    expect(wire(s)).toEqual(s);
  });

  it('writes Box bounds per element', () => {
    expect(spaceToProto(new Box(-1, 1, [2]))).toEqual({ kind: { $case: 'box', box: { shape: [2], low: [-1, -1], high: [1, 1] } } });
  });

  it('rejects a space with no kind', () => {
    expect(() => spaceFromProto(undefined)).toThrow(/no kind set/);
    expect(() => spaceFromProto({ kind: undefined })).toThrow(/no kind set/);
  });
});

function rollout(T: number, N: number, S: number, actions: Int32Array | Float32Array, width: number): Rollout {
  const f = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => i * k);
  return {
    actorId: 'a1',
    sequence: 4,
    policyVersion: 2,
    level: 1,
    numSteps: T,
    numEnvs: N,
    obsDim: S,
    actionWidth: width,
    obs: f(T * N * S, 0.5),
    actions,
    logProbs: f(T * N, -0.1),
    rewards: { goal: f(T * N, 1), pred: f(T * N, -1) },
    terminated: Uint8Array.from({ length: T * N }, (_, i) => i % 2),
    truncated: Uint8Array.from({ length: T * N }, (_, i) => (i === 3 ? 1 : 0)),
    success: Uint8Array.from({ length: T * N }, (_, i) => (i % 3 === 0 ? 1 : 0)),
    nextObs: f(T * N * S, 0.25),
    episodes: [{ length: 3, returns: { goal: 2, pred: 0 }, success: true }],
  };
}

describe('rollouts', () => {
  const cases: [string, Space, Int32Array | Float32Array][] = [
    ['Discrete', new Discrete(4), Int32Array.from({ length: 6 }, (_, i) => i % 4)],
    ['Box', new Box(-2, 2, [2]), Float32Array.from({ length: 12 }, (_, i) => i / 10)],
    ['Box of one dimension', new Box(-2, 2, [1]), Float32Array.from({ length: 6 }, (_, i) => i / 10)],
    ['MultiDiscrete', new MultiDiscrete([2, 3]), Int32Array.from({ length: 12 }, (_, i) => i % 2)],
  ];
  it.each(cases)('round-trips a %s rollout through the wire', (_name, space, actions) => {
    const r = rollout(3, 2, 4, actions, space.flatSize);
    const chunk = TrajectoryChunk.decode(chunkBytes(encodeRollout('R', r)));
    expect(chunk.runId).toBe('R');
    expect(chunk.groupId).toBe('a1/4');
    const back = decodeRollout(chunk, { numSteps: 3, numEnvs: 2, obsDim: 4, actionSpace: space, components: ['goal', 'pred'] });
    expect(back).toEqual(r);
  });

  it('names the bad field of a malformed chunk', () => {
    const want = { numSteps: 3, numEnvs: 2, obsDim: 4, actionSpace: new Discrete(4), components: ['goal', 'pred'] };
    const chunk = encodeRollout('R', rollout(3, 2, 4, new Int32Array(6), 1));
    expect(() => decodeRollout({ ...chunk, numEnvs: 3 }, want)).toThrow('chunk is [3, 3], run expects [3, 2]');
    expect(() => decodeRollout({ ...chunk, actions: encodeTensor(new Float32Array(6), [3, 2]) }, want)).toThrow(TensorError);
    expect(() => decodeRollout({ ...chunk, actions: encodeTensor(new Float32Array(6), [3, 2]) }, want)).toThrow(/^actions: /);
    expect(() => decodeRollout({ ...chunk, rewards: { goal: chunk.rewards.goal } }, want)).toThrow(/^rewards\.pred: /);
    expect(() => decodeRollout({ ...chunk, obs: encodeTensor(new Float32Array(8), [2, 4]) }, want)).toThrow(/^obs: /);
  });
});

describe('run announcements', () => {
  it('round-trip as proto messages', () => {
    const a = {
      runId: 'R',
      state: 'running',
      seed: 7,
      envId: 'CartPole-v1',
      envOptions: JSON.stringify({ max_episode_steps: 500 }),
      numEnvs: 8,
      numSteps: 128,
      level: 0,
      actorsPerReplica: 2,
      maxChunksInFlight: 4,
      inference: 'central',
      config: '{}',
      checkpoint: '',
    };
    expect(decodeAnnouncement(encodeAnnouncement(a))).toEqual(a);
  });
});
