/** Losses and categorical, multi-categorical and diagonal Gaussian distributions, composed from differentiable ops. */
import type { Value } from './graph';
import { abs, add, cast, div, exp, greater, less, mul, neg, sub, where } from './ops/elementwise';
import { logSoftmax } from './ops/nn';
import { reduceMean, reduceSum } from './ops/reduce';
import { expandTo, oneHot, slice, split, squeeze } from './ops/shape';

/** Mean squared error over all elements (nn.MSELoss, reduction='mean'). */
export function mseLoss(pred: Value, target: Value): Value {
  const d = sub(pred, target);
  return reduceMean(mul(d, d));
}

/** nn.HuberLoss: 0.5 d^2 where |d| < delta, delta (|d| - delta/2) elsewhere; mean over elements. */
export function huberLoss(pred: Value, target: Value, delta = 1): Value {
  const d = sub(pred, target);
  const a = abs(d);
  const quadratic = mul(mul(d, d), 0.5);
  const linear = mul(sub(a, 0.5 * delta), delta);
  return reduceMean(where(less(a, delta), quadratic, linear));
}

/** Mean over the entries where mask is 1 (a float 0/1 tensor); 0 when the mask is empty. */
export function maskedMean(x: Value, mask: Value): Value {
  const total = reduceSum(mul(x, mask));
  const count = reduceSum(mask);
  const safe = where(greater(count, 0), count, 1);
  return div(total, safe);
}

/** log pi(a) for logits [..., K] and integer actions [...]. */
export function categoricalLogProb(logits: Value, actions: Value): Value {
  const logp = logSoftmax(logits, -1);
  return reduceSum(mul(logp, oneHot(actions, logits.dim(-1), logitsDtype(logits))), [-1]);
}

/** Entropy -sum p log p of the categorical given by logits, per row. */
export function categoricalEntropy(logits: Value): Value {
  const logp = logSoftmax(logits, -1);
  return neg(reduceSum(mul(exp(logp), logp), [-1]));
}

/** KL(p || q) = sum p (log p - log q) per row, both given as logits. */
export function categoricalKl(logitsP: Value, logitsQ: Value): Value {
  const lp = logSoftmax(logitsP, -1);
  const lq = logSoftmax(logitsQ, -1);
  return reduceSum(mul(exp(lp), sub(lp, lq)), [-1]);
}

/**
 * Cross-entropy of logits [..., K] against integer targets [...], averaged over the positions where
 * `mask` (float 0/1, same shape as targets) is 1: SFT's "loss on answer tokens only". Without a mask
 * it averages over every position, like nn.CrossEntropyLoss.
 */
export function crossEntropy(logits: Value, targets: Value, mask?: Value): Value {
  const nll = neg(categoricalLogProb(logits, targets));
  return mask ? maskedMean(nll, cast(mask, nll.dtype)) : reduceMean(nll);
}

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/**
 * Diagonal Gaussian log-density per row: sum_d -(a - mu)^2 / (2 sigma^2) - log sigma - log(2 pi)/2,
 * as torch's Normal(mean, logStd.exp()).log_prob(actions).sum(-1). mean and actions are [B, D];
 * logStd broadcasts against them ([D] or [1, D] for a state-independent parameter like CleanRL's
 * actor_logstd, or [B, D] from a network head). Returns [B].
 */
export function gaussianLogProb(mean: Value, logStd: Value, actions: Value): Value {
  // Scaling by exp(-logStd) instead of dividing by exp(2 logStd) keeps sigma^2 from under- or
  // overflowing float32 at extreme logStd.
  const z = mul(sub(actions, mean), exp(neg(logStd)));
  return reduceSum(sub(sub(mul(mul(z, z), -0.5), logStd), HALF_LOG_2PI), [-1]);
}

/**
 * Diagonal Gaussian entropy: sum_d 1/2 + log(2 pi)/2 + logStd_d per row, as torch's
 * Normal(mean, std).entropy().sum(-1). The entropy does not depend on the mean, so the batch comes
 * only from `batchLike`:
 *  - gaussianEntropy(logStd, mean) with mean [B, D]: per-row entropies [B] (logStd is broadcast to
 *    mean's shape first, so a state-independent [D] or [1, D] logStd gives B equal entries);
 *  - gaussianEntropy(logStd): the scalar mean over rows, i.e. entropy.mean() in a PPO loss. For a
 *    state-independent logStd this is the one row entropy; for a [B, D] logStd it averages the rows.
 */
export function gaussianEntropy(logStd: Value, batchLike?: Value): Value {
  const perRow = reduceSum(add(batchLike ? expandTo(logStd, batchLike) : logStd, 0.5 + HALF_LOG_2PI), [-1]);
  return batchLike || perRow.rank === 0 ? perRow : reduceMean(perRow);
}

/**
 * Multi-discrete log pi(a) = sum_k log_softmax(logits segment k)[a_k]: logits [B, sum(nvec)] cut into
 * one segment of nvec[k] logits per component, integer actions [B, k]. As CleanRL's MultiDiscrete
 * agent: the sum over torch.split(logits, nvec) of Categorical(segment).log_prob(a_k). Returns [B].
 */
export function multiCategoricalLogProb(logits: Value, actions: Value, nvec: readonly number[]): Value {
  const segments = multiCategoricalSegments(logits, nvec);
  if (actions.shape[actions.rank - 1] !== nvec.length) {
    throw new Error(`multiCategoricalLogProb: actions ${actions} must have ${nvec.length} components in the last axis`);
  }
  const terms = segments.map((seg, k) => categoricalLogProb(seg, squeeze(slice(actions, [k], [k + 1], [-1]), [-1])));
  return terms.reduce((acc, t) => add(acc, t));
}

/** Multi-discrete entropy sum_k H(softmax(logits segment k)) per row, segments as in multiCategoricalLogProb. Returns [B]. */
export function multiCategoricalEntropy(logits: Value, nvec: readonly number[]): Value {
  return multiCategoricalSegments(logits, nvec)
    .map((seg) => categoricalEntropy(seg))
    .reduce((acc, t) => add(acc, t));
}

function multiCategoricalSegments(logits: Value, nvec: readonly number[]): Value[] {
  if (nvec.length === 0 || nvec.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`multi-categorical: nvec [${nvec.join(',')}] must be a non-empty list of positive integers`);
  }
  const total = nvec.reduce((a, b) => a + b, 0);
  if (logits.dim(-1) !== total) throw new Error(`multi-categorical: logits ${logits} must have sum(nvec) = ${total} in the last axis`);
  return split(logits, nvec, -1);
}

function logitsDtype(v: Value): 'float32' | 'float64' {
  if (v.dtype !== 'float32' && v.dtype !== 'float64') throw new Error(`logits ${v} must be float32 or float64`);
  return v.dtype;
}
