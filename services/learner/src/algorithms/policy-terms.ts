/**
 * What every algorithm needs of a policy, whatever its action distribution: the `actions` input of a
 * train step, log pi(a|s) and the entropy traced from a model's forward, the act program the policy
 * service and actors run, and the feed of a rollout's actions.
 */
import { endianness } from 'node:os';
import { type ActionDistribution, actionWidth, distributionOutputs } from '@rlmesh/core';
import {
  buildForwardProgram,
  categoricalEntropy,
  categoricalLogProb,
  concat,
  type ForwardProgram,
  gaussianEntropy,
  gaussianLogProb,
  type InputSpec,
  logSoftmax,
  multiCategoricalEntropy,
  multiCategoricalLogProb,
  slice,
  type Value,
} from '@rlmesh/graph';
import type { Feed, PolicyForward, PolicyModel } from '../registry';

/** The train step's `actions` input: int64 [B] (categorical), int64 [B, k], or float32 [B, D]. */
export function actionInput(d: ActionDistribution): InputSpec {
  if (d.kind === 'categorical') return { name: 'actions', dtype: 'int64', shape: ['batch'] };
  if (d.kind === 'multi_categorical') return { name: 'actions', dtype: 'int64', shape: ['batch', d.nvec.length] };
  return { name: 'actions', dtype: 'float32', shape: ['batch', d.dim] };
}

function need(v: Value | undefined, what: string): Value {
  if (!v) throw new Error(`policy forward has no ${what}`);
  return v;
}

/** log pi(a|s) [B] and entropy [B] of a traced forward. */
export function policyTerms(d: ActionDistribution, f: PolicyForward, actions: Value): { logProb: Value; entropy: Value } {
  switch (d.kind) {
    case 'categorical': {
      const logits = need(f.logits, 'logits');
      return { logProb: categoricalLogProb(logits, actions), entropy: categoricalEntropy(logits) };
    }
    case 'multi_categorical': {
      const logits = need(f.logits, 'logits');
      return { logProb: multiCategoricalLogProb(logits, actions, d.nvec), entropy: multiCategoricalEntropy(logits, d.nvec) };
    }
    case 'gaussian': {
      const mean = need(f.mean, 'mean');
      const logStd = need(f.logStd, 'logStd');
      return { logProb: gaussianLogProb(mean, logStd, actions), entropy: gaussianEntropy(logStd, mean) };
    }
  }
}

/** The act program's outputs traced on obs: the distribution's (see @rlmesh/core's distributions.ts) and `value`. */
export function actOutputs(model: PolicyModel, obs: Value): Record<string, Value> {
  const f = model.forward(obs);
  return { ...distributionHeads(model.distribution, f), value: f.value };
}

function distributionHeads(d: ActionDistribution, f: PolicyForward): Record<string, Value> {
  if (d.kind === 'gaussian') return { mean: need(f.mean, 'mean'), log_std: need(f.logStd, 'logStd') };
  const logits = need(f.logits, 'logits');
  if (d.kind === 'categorical') return { log_probs: logSoftmax(logits, -1) };
  let at = 0;
  const segments = d.nvec.map((n) => {
    const seg = logSoftmax(slice(logits, [at], [at + n], [-1]), -1);
    at += n;
    return seg;
  });
  return { log_probs: concat(segments, -1) };
}

/**
 * The act program served to actors: inputs `params` [P] and `obs` [batch, S]; outputs `value`
 * [batch] and the distribution's outputs (distributionOutputs in @rlmesh/core). Without `value`
 * (`{ value: false }`) it is the sampling program of an actor that needs no value estimates: its
 * `params` are only those the distribution heads use (`pick` takes them from the model's vector),
 * so a separate critic costs nothing per env step. `usedParametersOnly: false` keeps the model's
 * whole vector as `params` (the published sampling program: actors hold only that vector).
 */
export function buildActProgram(
  model: PolicyModel,
  opts: { value?: boolean; usedParametersOnly?: boolean } = {},
): ForwardProgram & { outputs: string[] } {
  const value = opts.value ?? true;
  const program = buildForwardProgram({
    module: model.module,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', model.obsDim] }],
    forward: (i) => {
      const { value: v, ...heads } = actOutputs(model, i.obs);
      return value ? { ...heads, value: v } : heads;
    },
    usedParametersOnly: opts.usedParametersOnly ?? !value,
  });
  return { ...program, outputs: [...distributionOutputs(model.distribution), ...(value ? ['value'] : [])] };
}

/** V(s) alone: input `obs` [batch, S], output `value` [batch], over the parameters the value uses. */
export function buildValueProgram(model: PolicyModel): ForwardProgram {
  return buildForwardProgram({
    module: model.module,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', model.obsDim] }],
    forward: (i) => ({ value: model.forward(i.obs).value }),
    usedParametersOnly: true,
  });
}

/** A rollout's actions [rows, width] as the train step's `actions` feed. */
export function actionsFeed(d: ActionDistribution, actions: Int32Array | Float32Array, rows: number): Feed[string] {
  const w = actionWidth(d);
  const shape = d.kind === 'categorical' ? [rows] : [rows, w];
  if (d.kind === 'gaussian') return { data: actions as Float32Array, shape };
  return { data: toInt64(actions as Int32Array), shape };
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** int32 values widened to int64 by their 32-bit words (a BigInt per value costs more than the copy). */
function toInt64(values: Int32Array): BigInt64Array {
  const wide = new BigInt64Array(values.length);
  if (!LITTLE_ENDIAN) {
    for (let k = 0; k < values.length; k++) wide[k] = BigInt(values[k]);
    return wide;
  }
  const words = new Int32Array(wide.buffer);
  for (let k = 0; k < values.length; k++) {
    words[2 * k] = values[k];
    words[2 * k + 1] = values[k] >> 31; // the sign extension
  }
  return wide;
}
