/**
 * Core types <-> proto messages, one implementation for every service: spaces (EnvInfo, PolicySpec)
 * and rollouts (TrajectoryChunk). An actor encodes a Rollout, the learner decodes it back, checked
 * against the run's shapes so that a malformed chunk is a TensorError naming the field.
 */
import { Box, Discrete, MultiDiscrete, type Rollout, type SequenceRollout, type Space, sequenceRows, TokenSequence } from '@rlmesh/core';
import { decodeTensor, encodeTensor, type Space as PbSpace, type Tensor, TensorError, TrajectoryChunk } from '@rlmesh/proto';

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
    rewards,
    terminated: decodeTensor('terminated', c.terminated, { dtype: 'uint8', shape: tn }).data,
    truncated: decodeTensor('truncated', c.truncated, { dtype: 'uint8', shape: tn }).data,
    success: decodeTensor('success', c.success, { dtype: 'uint8', shape: tn }).data,
    nextObs: decodeTensor('next_obs', c.nextObs, { dtype: 'float32', shape: [T, N, S] }).data,
    episodes: c.episodes.map((e) => ({ length: e.length, returns: { ...e.returns }, success: e.success })),
  };
}

/**
 * A token-sequence rollout as a chunk: the sequences fields, with log_probs, rewards, success and
 * truncated per row; a multi-turn rollout adds its rows' episodes and which episodes a limit ended.
 */
export function encodeSequenceRollout(runId: string, r: SequenceRollout): TrajectoryChunk {
  const rows = sequenceRows(r);
  const Lp = r.promptLength;
  const Lc = r.completionLength;
  return TrajectoryChunk.fromPartial({
    runId,
    actorId: r.actorId,
    sequence: r.sequence,
    policyVersion: r.policyVersion,
    groupId: `${r.actorId}/${r.sequence}`,
    numSteps: 1,
    numEnvs: rows,
    logProbs: encodeTensor(r.logProbs, [rows, Lc]),
    rewards: Object.fromEntries(Object.entries(r.rewards).map(([c, x]): [string, Tensor] => [c, encodeTensor(x, [rows])])),
    success: encodeTensor(r.success, [rows]),
    truncated: encodeTensor(r.truncated, [rows]),
    episodes: r.episodes.map((e) => ({ length: e.length, returns: e.returns, success: e.success })),
    sequences: {
      numPrompts: r.numPrompts,
      groupSize: r.groupSize,
      promptIds: encodeTensor(r.promptIds, [rows, Lp]),
      promptLengths: encodeTensor(r.promptLengths, [rows]),
      completionIds: encodeTensor(r.completionIds, [rows, Lc]),
      completionMask: encodeTensor(r.completionMask, [rows, Lc]),
      refused: encodeTensor(r.refused, [rows]),
      groupIds: encodeTensor(r.groupIds, [rows]),
      ...(r.episodeIds && r.episodeTruncated
        ? {
            episodeIds: encodeTensor(r.episodeIds, [rows]),
            episodeTruncated: encodeTensor(r.episodeTruncated, [r.episodeTruncated.length]),
          }
        : {}),
    },
  });
}

export interface SequenceRolloutShape {
  numPrompts: number;
  groupSize: number;
  /** Completion tokens a row may hold (the run's max_completion_length). */
  maxCompletionLength: number;
  /** Token ids must be below it. */
  vocabSize: number;
  components: readonly string[];
}

/** Decodes a sequence chunk for a run of these shapes; TensorError names the field that breaks a rule. */
export function decodeSequenceRollout(c: TrajectoryChunk, want: SequenceRolloutShape): SequenceRollout {
  const s = c.sequences;
  if (!s) throw new TensorError('sequences', 'is required in a chunk of a text-env run');
  if (s.numPrompts !== want.numPrompts || s.groupSize !== want.groupSize)
    throw new TensorError(
      'sequences',
      `holds ${s.numPrompts} prompts x ${s.groupSize}; the run expects ${want.numPrompts} x ${want.groupSize}`,
    );
  const episodes = want.numPrompts * want.groupSize;
  const turns = decodeEpisodes(s, episodes, want.groupSize);
  const rows = turns?.episodeIds.length ?? episodes;
  const promptIds = decodeTensor('sequences.prompt_ids', s.promptIds, { dtype: 'int32', shape: [rows, -1] });
  const Lp = promptIds.shape[1];
  const completionIds = decodeTensor('sequences.completion_ids', s.completionIds, { dtype: 'int32', shape: [rows, -1] });
  const Lc = completionIds.shape[1];
  if (Lc > want.maxCompletionLength)
    throw new TensorError('sequences.completion_ids', `has ${Lc} tokens per row; the run allows ${want.maxCompletionLength}`);
  const inVocab = (field: string, ids: Int32Array) => {
    const bad = ids.findIndex((id) => id < 0 || id >= want.vocabSize);
    if (bad >= 0) throw new TensorError(field, `element ${bad} is ${ids[bad]}, not a token id below ${want.vocabSize}`);
  };
  inVocab('sequences.prompt_ids', promptIds.data);
  inVocab('sequences.completion_ids', completionIds.data);
  const promptLengths = decodeTensor('sequences.prompt_lengths', s.promptLengths, { dtype: 'int32', shape: [rows] }).data;
  const badLength = promptLengths.findIndex((n) => n < 1 || n > Lp);
  if (badLength >= 0)
    throw new TensorError('sequences.prompt_lengths', `element ${badLength} is ${promptLengths[badLength]}, not in 1..${Lp}`);
  const groupIds = decodeTensor('sequences.group_ids', s.groupIds, { dtype: 'int32', shape: [rows] }).data;
  const groupOf = (r: number) => Math.floor((turns ? turns.episodeIds[r] : r) / want.groupSize);
  const badGroup = groupIds.findIndex((g, r) => g !== groupOf(r));
  if (badGroup >= 0)
    throw new TensorError(
      'sequences.group_ids',
      `row ${badGroup} is in group ${groupIds[badGroup]}; rows run group after group${turns ? ' (the group of their episode)' : ''}`,
    );
  const rewards: Record<string, Float32Array> = {};
  for (const comp of want.components)
    rewards[comp] = decodeTensor(`rewards.${comp}`, c.rewards[comp], { dtype: 'float32', shape: [rows] }).data;
  return {
    actorId: c.actorId,
    sequence: c.sequence,
    policyVersion: c.policyVersion,
    numPrompts: want.numPrompts,
    groupSize: want.groupSize,
    promptLength: Lp,
    completionLength: Lc,
    promptIds: promptIds.data,
    promptLengths,
    completionIds: completionIds.data,
    completionMask: decodeTensor('sequences.completion_mask', s.completionMask, { dtype: 'uint8', shape: [rows, Lc] }).data,
    logProbs: decodeTensor('log_probs', c.logProbs, { dtype: 'float32', shape: [rows, Lc] }).data,
    rewards,
    success: decodeTensor('success', c.success, { dtype: 'uint8', shape: [rows] }).data,
    refused: decodeTensor('sequences.refused', s.refused, { dtype: 'uint8', shape: [rows] }).data,
    truncated: decodeTensor('truncated', c.truncated, { dtype: 'uint8', shape: [rows] }).data,
    groupIds,
    ...(turns ?? {}),
    episodes: c.episodes.map((e) => ({ length: e.length, returns: { ...e.returns }, success: e.success })),
  };
}

/**
 * A multi-turn chunk's episode fields, or null for a single-turn chunk: every episode 0..E-1 holds
 * at least one row, its rows contiguous and in order (ids never fall, and rise by one at a time).
 */
function decodeEpisodes(
  s: NonNullable<TrajectoryChunk['sequences']>,
  episodes: number,
  groupSize: number,
): { episodeIds: Int32Array; episodeTruncated: Uint8Array } | null {
  if (!s.episodeIds && !s.episodeTruncated) return null;
  const episodeIds = decodeTensor('sequences.episode_ids', s.episodeIds, { dtype: 'int32', shape: [-1] }).data;
  const episodeTruncated = decodeTensor('sequences.episode_truncated', s.episodeTruncated, { dtype: 'uint8', shape: [episodes] }).data;
  const bad = episodeIds.findIndex((e, r) => e !== (r === 0 ? 0 : episodeIds[r - 1]) && e !== episodeIds[r - 1] + 1);
  if (bad >= 0)
    throw new TensorError(
      'sequences.episode_ids',
      `row ${bad} is in episode ${episodeIds[bad]}; episodes run in order, each row after row`,
    );
  if (episodeIds.length === 0 || episodeIds[episodeIds.length - 1] !== episodes - 1)
    throw new TensorError(
      'sequences.episode_ids',
      `must cover episodes 0..${episodes - 1} (${episodes / groupSize} prompts x ${groupSize}), got ${episodeIds.length ? `0..${episodeIds[episodeIds.length - 1]}` : 'none'}`,
    );
  return { episodeIds, episodeTruncated };
}

/** Serialises a chunk for the bus. */
export const chunkBytes = (c: TrajectoryChunk): Uint8Array => TrajectoryChunk.encode(c).finish();
