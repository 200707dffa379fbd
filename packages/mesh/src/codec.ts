/**
 * Core types <-> proto messages, one implementation for every service: spaces (EnvInfo, PolicySpec)
 * and rollouts (TrajectoryChunk). An actor encodes a Rollout, the learner decodes it back, checked
 * against the run's shapes so that a malformed chunk is a TensorError naming the field.
 */
import { Box, Discrete, MultiDiscrete, type Rollout, type Space, TokenSequence } from '@rlmesh/core';
import { decodeTensor, encodeTensor, type Space as PbSpace, type Tensor, TrajectoryChunk } from '@rlmesh/proto';

export function spaceToProto(s: Space): PbSpace {
  switch (s.kind) {
    case 'discrete':
      return { kind: { $case: 'discrete', discrete: { n: s.n } } };
    case 'box':
      return { kind: { $case: 'box', box: { shape: [...s.shape], low: [...s.low], high: [...s.high] } } };
    case 'multi_discrete':
      return { kind: { $case: 'multiDiscrete', multiDiscrete: { nvec: [...s.nvec] } } };
    case 'token_sequence':
      return { kind: { $case: 'tokenSequence', tokenSequence: { vocabSize: s.vocabSize, maxLength: s.maxLength, padId: s.padId } } };
  }
}

export function spaceFromProto(s: PbSpace | undefined): Space {
  const k = s?.kind;
  switch (k?.$case) {
    case 'discrete':
      return new Discrete(k.discrete.n);
    case 'box':
      return new Box(k.box.low, k.box.high, k.box.shape);
    case 'multiDiscrete':
      return new MultiDiscrete(k.multiDiscrete.nvec);
    case 'tokenSequence':
      return new TokenSequence(k.tokenSequence.vocabSize, k.tokenSequence.maxLength, k.tokenSequence.padId);
    default:
      throw new Error('space: no kind set');
  }
}

export function encodeRollout(runId: string, r: Rollout): TrajectoryChunk {
  const T = r.numSteps;
  const N = r.numEnvs;
  const tn = [T, N];
  const actionShape = r.actions instanceof Float32Array || r.actionWidth > 1 ? [T, N, r.actionWidth] : tn;
  return {
    runId,
    actorId: r.actorId,
    sequence: r.sequence,
    policyVersion: r.policyVersion,
    groupId: `${r.actorId}/${r.sequence}`,
    numSteps: T,
    numEnvs: N,
    level: r.level,
    obs: encodeTensor(r.obs, [T, N, r.obsDim]),
    actions: encodeTensor(r.actions, actionShape),
    logProbs: encodeTensor(r.logProbs, tn),
    values: encodeTensor(r.values, tn),
    rewards: Object.fromEntries(Object.entries(r.rewards).map(([c, x]): [string, Tensor] => [c, encodeTensor(x, tn)])),
    terminated: encodeTensor(r.terminated, tn),
    truncated: encodeTensor(r.truncated, tn),
    success: encodeTensor(r.success, tn),
    nextObs: encodeTensor(r.nextObs, [T, N, r.obsDim]),
    episodes: r.episodes.map((e) => ({ length: e.length, returns: e.returns, success: e.success })),
  };
}

export interface RolloutShape {
  numSteps: number;
  numEnvs: number;
  obsDim: number;
  actionSpace: Space;
  components: readonly string[];
}

/** Decodes a chunk into a Rollout of the run's shapes; throws TensorError (or Error) naming the bad field. */
export function decodeRollout(c: TrajectoryChunk, want: RolloutShape): Rollout {
  const { numSteps: T, numEnvs: N, obsDim: S, actionSpace } = want;
  if (c.numEnvs !== N || c.numSteps !== T) throw new Error(`chunk is [${c.numSteps}, ${c.numEnvs}], run expects [${T}, ${N}]`);
  const tn = [T, N];
  const W = actionSpace.flatSize;
  const actionShape = actionSpace.dtype === 'float32' || W > 1 ? [T, N, W] : tn;
  const actions =
    actionSpace.dtype === 'float32'
      ? decodeTensor('actions', c.actions, { dtype: 'float32', shape: actionShape }).data
      : decodeTensor('actions', c.actions, { dtype: 'int32', shape: actionShape }).data;
  const rewards: Record<string, Float32Array> = {};
  for (const comp of want.components)
    rewards[comp] = decodeTensor(`rewards.${comp}`, c.rewards[comp], { dtype: 'float32', shape: tn }).data;
  return {
    actorId: c.actorId,
    sequence: c.sequence,
    policyVersion: c.policyVersion,
    level: c.level,
    numSteps: T,
    numEnvs: N,
    obsDim: S,
    actionWidth: W,
    obs: decodeTensor('obs', c.obs, { dtype: 'float32', shape: [T, N, S] }).data,
    actions,
    logProbs: decodeTensor('log_probs', c.logProbs, { dtype: 'float32', shape: tn }).data,
    values: decodeTensor('values', c.values, { dtype: 'float32', shape: tn }).data,
    rewards,
    terminated: decodeTensor('terminated', c.terminated, { dtype: 'uint8', shape: tn }).data,
    truncated: decodeTensor('truncated', c.truncated, { dtype: 'uint8', shape: tn }).data,
    success: decodeTensor('success', c.success, { dtype: 'uint8', shape: tn }).data,
    nextObs: decodeTensor('next_obs', c.nextObs, { dtype: 'float32', shape: [T, N, S] }).data,
    episodes: c.episodes.map((e) => ({ length: e.length, returns: { ...e.returns }, success: e.success })),
  };
}

/** Serialises a chunk for the bus. */
export const chunkBytes = (c: TrajectoryChunk): Uint8Array => TrajectoryChunk.encode(c).finish();
