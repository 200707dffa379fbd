/**
 * Initialisers matching torch.nn.init and the torch.nn module defaults in distribution. The RNG
 * differs from PyTorch's, so values are not bit-identical, but bounds, means and variances are.
 * All results are row-major Float32Arrays with one element per entry of `shape`.
 */
import type { Rng } from './rng';

export type Shape = readonly number[];

type Nonlinearity = 'leaky_relu' | 'relu' | 'linear' | 'tanh';

function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`init: shape [${shape.join(',')}] must hold non-negative integers`);
    n *= d;
  }
  return n;
}

/** Fan-in and fan-out as torch.nn.init._calculate_fan_in_and_fan_out computes them. */
export function fanInOut(shape: Shape): { fanIn: number; fanOut: number } {
  numel(shape);
  if (shape.length < 2) throw new Error(`fanInOut: fan in and fan out need a shape of rank >= 2, got [${shape.join(',')}]`);
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i];
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/** All zeros. */
export function zeros(shape: Shape): Float32Array {
  return new Float32Array(numel(shape));
}

/** All ones. */
export function ones(shape: Shape): Float32Array {
  return constant(shape, 1);
}

/** Every element set to `value`. */
export function constant(shape: Shape, value: number): Float32Array {
  return new Float32Array(numel(shape)).fill(value);
}

/** Independent U(lo, hi) samples, as torch.nn.init.uniform_. */
export function uniform(shape: Shape, lo: number, hi: number, rng: Rng): Float32Array {
  if (!(lo <= hi)) throw new Error(`init.uniform: need lo <= hi, got [${lo}, ${hi})`);
  const out = new Float32Array(numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = rng.uniformRange(lo, hi);
  return out;
}

/** Independent N(mean, std^2) samples, as torch.nn.init.normal_. */
export function normal(shape: Shape, mean: number, std: number, rng: Rng): Float32Array {
  if (!(std >= 0)) throw new Error(`init.normal: std must be >= 0, got ${std}`);
  const out = new Float32Array(numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = mean + std * rng.normal();
  return out;
}

/** torch.nn.init.calculate_gain for the nonlinearities kaimingUniform accepts. */
function gainFor(nonlinearity: Nonlinearity, a: number): number {
  switch (nonlinearity) {
    case 'linear':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu':
      return Math.sqrt(2 / (1 + a * a));
  }
}

/** torch.nn.init.kaiming_uniform_: U(-b, b) with b = gain * sqrt(3 / fan). */
export function kaimingUniform(
  shape: Shape,
  rng: Rng,
  opts: { a?: number; mode?: 'fan_in' | 'fan_out'; nonlinearity?: Nonlinearity } = {},
): Float32Array {
  const { fanIn, fanOut } = fanInOut(shape);
  // PyTorch returns an empty tensor untouched rather than dividing by a zero fan.
  if (numel(shape) === 0) return zeros(shape);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const bound = gainFor(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0) * Math.sqrt(3 / fan);
  return uniform(shape, -bound, bound, rng);
}

/** torch.nn.init.xavier_uniform_: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(shape: Shape, rng: Rng, gain = 1): Float32Array {
  const { fanIn, fanOut } = fanInOut(shape);
  if (numel(shape) === 0) return zeros(shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -bound, bound, rng);
}

/**
 * torch.nn.init.orthogonal_: shape is flattened to [shape[0], rest]; the result has orthonormal rows
 * when rows <= cols and orthonormal columns otherwise, scaled by gain.
 */
export function orthogonal(shape: Shape, rng: Rng, gain = 1): Float32Array {
  if (shape.length < 2) throw new Error(`orthogonal: needs a shape of rank >= 2, got [${shape.join(',')}]`);
  const size = numel(shape);
  const rows = shape[0];
  if (size === 0) return zeros(shape);
  const cols = size / rows;
  // Like PyTorch, factor the tall orientation: an m x n normal matrix with m >= n.
  const m = Math.max(rows, cols);
  const n = Math.min(rows, cols);
  const a = new Float64Array(m * n);
  for (let i = 0; i < a.length; i++) a[i] = rng.normal();
  const q = householderQ(a, m, n);
  const out = new Float32Array(size);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const v = gain * q[i * n + j];
      if (rows >= cols) out[i * cols + j] = v;
      else out[j * cols + i] = v;
    }
  }
  return out;
}

/**
 * The m x n Q of a Householder QR of row-major `a` (m >= n), with column k multiplied by
 * sign(R[k][k]) as PyTorch does, so Q is Haar-distributed rather than biased by the reflections.
 * Overwrites `a`.
 */
function householderQ(a: Float64Array, m: number, n: number): Float64Array {
  const vs: Float64Array[] = [];
  const signs = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const v = new Float64Array(m - k);
    let norm = 0;
    for (let i = k; i < m; i++) {
      v[i - k] = a[i * n + k];
      norm += v[i - k] * v[i - k];
    }
    norm = Math.sqrt(norm);
    // Reflect x onto -sign(x0) * |x| e0 to avoid cancellation; then R[k][k] = alpha.
    const alpha = v[0] >= 0 ? -norm : norm;
    signs[k] = alpha < 0 ? -1 : 1;
    v[0] -= alpha;
    let vnorm = 0;
    for (let i = 0; i < v.length; i++) vnorm += v[i] * v[i];
    vnorm = Math.sqrt(vnorm);
    if (vnorm > 0) for (let i = 0; i < v.length; i++) v[i] /= vnorm;
    vs.push(v);
    for (let j = k; j < n; j++) {
      let dot = 0;
      for (let i = k; i < m; i++) dot += v[i - k] * a[i * n + j];
      for (let i = k; i < m; i++) a[i * n + j] -= 2 * dot * v[i - k];
    }
  }
  // Q = H_0 ... H_{n-1} applied to the first n columns of the identity.
  const q = new Float64Array(m * n);
  for (let j = 0; j < n; j++) q[j * n + j] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const v = vs[k];
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = k; i < m; i++) dot += v[i - k] * q[i * n + j];
      for (let i = k; i < m; i++) q[i * n + j] -= 2 * dot * v[i - k];
    }
  }
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) q[i * n + j] *= signs[j];
  return q;
}

/** nn.Linear's weight: kaiming_uniform_(a=sqrt(5)), which is U(-1/sqrt(in), 1/sqrt(in)). */
export function linearWeight(outF: number, inF: number, rng: Rng): Float32Array {
  return kaimingUniform([outF, inF], rng, { a: Math.sqrt(5) });
}

/** nn.Linear's bias: U(-1/sqrt(in), 1/sqrt(in)), or zeros when in_features is 0. */
export function linearBias(outF: number, inF: number, rng: Rng): Float32Array {
  const bound = inF > 0 ? 1 / Math.sqrt(inF) : 0;
  return uniform([outF], -bound, bound, rng);
}

/** nn.Embedding's weight: N(0, 1). */
export function embeddingWeight(num: number, dim: number, rng: Rng): Float32Array {
  return normal([num, dim], 0, 1, rng);
}
