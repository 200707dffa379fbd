/**
 * Rows of a SequenceRollout as the LM batch every sequence loss reads (prompt ++ completion,
 * right-padded, models/gpt2-step.ts LM_BATCH_INPUTS), and the one mapping between a completion's
 * token j and its slot in that batch: position t predicts token t + 1, so completion token j is
 * scored at prompt length - 1 + j. Per-token inputs (behaviour log-probs, advantages) go in through
 * `place`; per-position outputs (values, reference log-probs) come back out through `take`.
 */
import { type SequenceRollout, sequenceRows } from '@rlmesh/core';
import type { HostTensor } from '@rlmesh/graph';
import { collate } from '../sft/data';

export interface RolloutLmBatch {
  /** input_ids, attention_mask, labels, loss_mask [B, T]. */
  feeds: Record<string, HostTensor>;
  /** Completion tokens scored (the loss mask's ones). */
  tokens: number;
  /** [B, T] with row k's completion tokens from `perToken` ([rollout rows, Lc]) at their slots, 0 elsewhere. */
  place(perToken: ArrayLike<number>): Float32Array;
  /** Writes the completion slots of an output [B, T] back into `into` ([rollout rows, Lc]). */
  take(out: ArrayLike<number>, into: Float32Array | Float64Array): void;
}

/** Completion tokens of every rollout row (EOS included). */
export function completionLengths(r: SequenceRollout): Int32Array {
  const Lc = r.completionLength;
  const rows = sequenceRows(r);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) for (let t = 0; t < Lc; t++) out[i] += r.completionMask[i * Lc + t];
  return out;
}

export function rolloutLmBatch(r: SequenceRollout, rows: readonly number[], padId: number): RolloutLmBatch {
  const Lp = r.promptLength;
  const Lc = r.completionLength;
  const all = completionLengths(r);
  const lengths = rows.map((i) => all[i]);
  const lm = collate(
    rows.map((i, k) => {
      const pl = r.promptLengths[i];
      return {
        ids: [...r.promptIds.subarray(i * Lp, i * Lp + pl), ...r.completionIds.subarray(i * Lc, i * Lc + lengths[k])],
        promptLength: pl,
      };
    }),
    padId,
  );
  const [B, T] = lm.feeds.input_ids.shape;
  const slot = (k: number) => k * T + r.promptLengths[rows[k]] - 1;
  return {
    feeds: lm.feeds,
    tokens: lm.tokens,
    place(perToken) {
      const out = new Float32Array(B * T);
      rows.forEach((i, k) => {
        for (let j = 0; j < lengths[k]; j++) out[slot(k) + j] = perToken[i * Lc + j];
      });
      return out;
    },
    take(out, into) {
      rows.forEach((i, k) => {
        for (let j = 0; j < lengths[k]; j++) into[i * Lc + j] = out[slot(k) + j];
      });
    },
  };
}
