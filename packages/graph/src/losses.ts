/** Losses and categorical distributions, composed from differentiable ops. */
import type { Value } from './graph';
import { abs, cast, div, exp, greater, less, mul, neg, sub, where } from './ops/elementwise';
import { logSoftmax } from './ops/nn';
import { reduceMean, reduceSum } from './ops/reduce';
import { oneHot } from './ops/shape';

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

function logitsDtype(v: Value): 'float32' | 'float64' {
  if (v.dtype !== 'float32' && v.dtype !== 'float64') throw new Error(`logits ${v} must be float32 or float64`);
  return v.dtype;
}
