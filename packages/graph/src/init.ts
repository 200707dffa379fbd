/** Initialisers matching PyTorch's defaults in distribution (the RNG differs, so not bit for bit). */
import type { Rng } from './rng';

export type Shape = readonly number[];

const size = (shape: Shape) => shape.reduce((a, b) => a * b, 1);

/** torch.nn.init._calculate_fan_in_and_fan_out. */
export function fanInOut(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`fan in/out needs a tensor of rank >= 2, got [${shape.join(',')}]`);
  const receptive = size(shape.slice(2));
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

export function zeros(shape: Shape): Float32Array {
  return new Float32Array(size(shape));
}

export function ones(shape: Shape): Float32Array {
  return new Float32Array(size(shape)).fill(1);
}

export function constant(shape: Shape, value: number): Float32Array {
  return new Float32Array(size(shape)).fill(value);
}

export function uniform(shape: Shape, lo: number, hi: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: size(shape) }, () => rng.uniformRange(lo, hi));
}

export function normal(shape: Shape, mean: number, std: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: size(shape) }, () => mean + std * rng.normal());
}

/** torch.nn.init.kaiming_uniform_: bound = gain * sqrt(3 / fan). */
export function kaimingUniform(
  shape: Shape,
  rng: Rng,
  opts: { a?: number; mode?: 'fan_in' | 'fan_out'; nonlinearity?: 'leaky_relu' | 'relu' | 'linear' | 'tanh' } = {},
): Float32Array {
  const { fanIn, fanOut } = fanInOut(shape);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const a = opts.a ?? 0;
  const gain = { leaky_relu: Math.sqrt(2 / (1 + a * a)), relu: Math.SQRT2, linear: 1, tanh: 5 / 3 }[opts.nonlinearity ?? 'leaky_relu'];
  const bound = gain * Math.sqrt(3 / fan);
  return uniform(shape, -bound, bound, rng);
}

/** torch.nn.init.xavier_uniform_: bound = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(shape: Shape, rng: Rng, gain = 1): Float32Array {
  const { fanIn, fanOut } = fanInOut(shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -bound, bound, rng);
}

/** torch.nn.init.orthogonal_ for a 2-D [rows, cols] matrix (Gram-Schmidt on a normal matrix). */
export function orthogonal(shape: Shape, rng: Rng, gain = 1): Float32Array {
  if (shape.length !== 2) throw new Error(`orthogonal: expected a 2-D shape, got [${shape.join(',')}]`);
  const [rows, cols] = shape;
  // Orthonormalise the longer side's vectors: rows when rows <= cols, else columns.
  const [n, m] = rows <= cols ? [rows, cols] : [cols, rows];
  const q: number[][] = [];
  for (let i = 0; i < n; i++) {
    const v = Array.from({ length: m }, () => rng.normal());
    for (const u of q) {
      const d = v.reduce((s, x, k) => s + x * u[k], 0);
      for (let k = 0; k < m; k++) v[k] -= d * u[k];
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < n; i++) for (let k = 0; k < m; k++) out[rows <= cols ? i * cols + k : k * cols + i] = gain * q[i][k];
  return out;
}

/** nn.Linear weight: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)). */
export function linearWeight(outF: number, inF: number, rng: Rng): Float32Array {
  return kaimingUniform([outF, inF], rng, { a: Math.sqrt(5) });
}

/** nn.Linear bias: U(-1/sqrt(in), 1/sqrt(in)). */
export function linearBias(outF: number, inF: number, rng: Rng): Float32Array {
  const bound = 1 / Math.sqrt(inF);
  return uniform([outF], -bound, bound, rng);
}

/** nn.Embedding weight: N(0, 1). */
export function embeddingWeight(num: number, dim: number, rng: Rng): Float32Array {
  return normal([num, dim], 0, 1, rng);
}
