/**
 * Optimisers emitted into the train-step graph. They act on the flat parameter vector, so an update
 * is a handful of element-wise ops whatever the model's size. Formulas follow torch.optim exactly
 * (SGD with momentum/nesterov, Adam with L2 weight decay, AdamW with decoupled decay), and the global
 * gradient-norm clip follows torch.nn.utils.clip_grad_norm_.
 */
import type { Value } from './graph';
import { add, div, minimum, mul, pow, sqrt, sub } from './ops/elementwise';
import { reduceSum } from './ops/reduce';

export type OptimizerConfig =
  | { kind: 'sgd'; momentum?: number; nesterov?: boolean; weightDecay?: number; maxGradNorm?: number }
  | { kind: 'adam'; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; maxGradNorm?: number }
  | { kind: 'adamw'; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; maxGradNorm?: number };

/** Names of the per-parameter state vectors the optimiser carries between steps. */
export function optimizerStateNames(cfg: OptimizerConfig): string[] {
  if (cfg.kind === 'sgd') return (cfg.momentum ?? 0) > 0 ? ['momentum'] : [];
  return ['exp_avg', 'exp_avg_sq'];
}

export interface UpdateInputs {
  params: Value;
  grad: Value;
  state: Record<string, Value>;
  /** The 1-based index of the step being taken, a float scalar (for bias correction). */
  step: Value;
  lr: Value;
}

export interface UpdateOutputs {
  params: Value;
  state: Record<string, Value>;
  /** The global L2 norm of the gradient before clipping. */
  gradNorm: Value;
}

export function emitUpdate(cfg: OptimizerConfig, inp: UpdateInputs): UpdateOutputs {
  const gradSq = mul(inp.grad, inp.grad);
  const gradNorm = sqrt(reduceSum(gradSq));
  // The clip is a scalar factor on the gradient; optimisers fold it into their own scalars rather
  // than paying a pass over the whole parameter vector for it.
  const clip = cfg.maxGradNorm === undefined ? null : minimum(div(cfg.maxGradNorm, add(gradNorm, 1e-6)), 1);
  switch (cfg.kind) {
    case 'sgd':
      return { ...sgd(cfg, { ...inp, grad: clip ? mul(inp.grad, clip) : inp.grad }), gradNorm };
    case 'adam':
    case 'adamw':
      return { ...adam(cfg, inp, gradSq, clip), gradNorm };
  }
}

function sgd(cfg: Extract<OptimizerConfig, { kind: 'sgd' }>, { params, grad, state, lr }: UpdateInputs) {
  const mu = cfg.momentum ?? 0;
  let d = cfg.weightDecay ? add(grad, mul(params, cfg.weightDecay)) : grad;
  const next: Record<string, Value> = {};
  if (mu > 0) {
    // buf starts at zero, so mu*0 + g equals torch's first-step buf = g.
    const buf = add(mul(state.momentum, mu), d);
    next.momentum = buf;
    d = cfg.nesterov ? add(d, mul(buf, mu)) : buf;
  }
  return { params: sub(params, mul(d, lr)), state: next };
}

/**
 * torch.optim.Adam / AdamW, rearranged so every scalar is folded before touching the vectors:
 *   m' = b1 m + ((1-b1) c) g,   v' = b2 v + ((1-b2) c^2) g^2        (c: the clip factor)
 *   p' = p - alpha m' / (sqrt(v') + eps sqrt(bc2)),  alpha = lr sqrt(bc2) / bc1
 * which equals p - (lr / bc1) m' / (sqrt(v') / sqrt(bc2) + eps), torch's form.
 */
function adam(cfg: Extract<OptimizerConfig, { kind: 'adam' | 'adamw' }>, inp: UpdateInputs, gradSq: Value, clip: Value | null) {
  const { params, state, step, lr } = inp;
  const b1 = cfg.beta1 ?? 0.9;
  const b2 = cfg.beta2 ?? 0.999;
  const eps = cfg.eps ?? 1e-8;
  const wd = cfg.weightDecay ?? (cfg.kind === 'adamw' ? 0.01 : 0);
  let m: Value;
  let v: Value;
  if (wd > 0 && cfg.kind === 'adam') {
    // L2 decay changes the gradient itself, so the clipped gradient is formed explicitly.
    const g = add(clip ? mul(inp.grad, clip) : inp.grad, mul(params, wd));
    m = add(mul(state.exp_avg, b1), mul(g, 1 - b1));
    v = add(mul(state.exp_avg_sq, b2), mul(mul(g, g), 1 - b2));
  } else {
    m = add(mul(state.exp_avg, b1), mul(inp.grad, clip ? mul(clip, 1 - b1) : 1 - b1));
    v = add(mul(state.exp_avg_sq, b2), mul(gradSq, clip ? mul(mul(clip, clip), 1 - b2) : 1 - b2));
  }
  const bc1 = sub(1, pow(b1, step));
  const sqrtBc2 = sqrt(sub(1, pow(b2, step)));
  const alpha = div(mul(lr, sqrtBc2), bc1);
  const p = wd > 0 && cfg.kind === 'adamw' ? mul(params, sub(1, mul(lr, wd))) : params;
  const update = mul(div(m, add(sqrt(v), mul(sqrtBc2, eps))), alpha);
  return { params: sub(p, update), state: { exp_avg: m, exp_avg_sq: v } };
}

/** Learning-rate schedules, evaluated in TypeScript and fed to the train step as its `lr` input. */
export type Schedule =
  | { kind: 'constant'; lr: number }
  | { kind: 'linear_warmup'; lr: number; warmupSteps: number }
  | { kind: 'cosine'; lr: number; totalSteps: number; warmupSteps?: number; minLr?: number };

/** The learning rate for 0-based update index `step`. */
export function scheduledLr(s: Schedule, step: number): number {
  const warm = s.kind === 'constant' ? 0 : (s.warmupSteps ?? 0);
  if (warm > 0 && step < warm) return (s.lr * (step + 1)) / warm;
  if (s.kind !== 'cosine') return s.lr;
  const minLr = s.minLr ?? 0;
  const span = Math.max(1, s.totalSteps - warm);
  const t = Math.min(1, (step - warm) / span);
  return minLr + 0.5 * (s.lr - minLr) * (1 + Math.cos(Math.PI * t));
}
