/** Root-mean-square layer normalisation (torch.nn.RMSNorm, Llama's LlamaRMSNorm): no mean, no bias. */
import type { Value } from '../graph';
import * as init from '../init';
import { Module } from '../module';
import { add, div, mul, sqrt } from '../ops/elementwise';
import { reduceMean } from '../ops/reduce';

/** x / sqrt(mean(x^2) + eps) * weight over the last axis; the gradient comes from the ops it is made of. */
export function rmsNorm(x: Value, weight: Value, eps: number): Value {
  const rms = sqrt(add(reduceMean(mul(x, x), [-1], true), eps));
  return mul(div(x, rms), weight);
}

/** RMSNorm over the last axis: weight ones. */
export class RMSNorm extends Module {
  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.register('weight', [dim], () => init.ones([dim]));
  }

  forward(x: Value): Value {
    return rmsNorm(x, this.param('weight'), this.eps);
  }
}
