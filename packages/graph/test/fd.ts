/**
 * Finite-difference gradient checks in float64. The loss is sum(y * w) with a fixed random w, so the
 * whole Jacobian is exercised, not just its column sums. One session serves the analytic gradients
 * and every perturbed evaluation.
 */
import { Graph as G, type Graph, gradients, mul, reduceSum, Session, type Value } from '../src';

export interface FdInput {
  shape: number[];
  /** float64 values; int64 inputs (indices) are held fixed and not checked. */
  data?: number[];
  dtype?: 'float64' | 'int64';
}

export interface FdResult {
  maxError: number;
  worst: { input: number; index: number; analytic: number; numeric: number };
}

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function finiteDifference(
  build: (g: Graph, xs: Value[]) => Value,
  inputs: FdInput[],
  seed = 1,
  eps = 1e-6,
): Promise<FdResult> {
  const rand = mulberry32(seed);
  const g = new G('fd');
  const xs = inputs.map((inp, i) => g.input(`x${i}`, inp.dtype ?? 'float64', inp.shape));
  const y = build(g, xs);
  const n = y.shape.reduce((a: number, b) => a * (b as number), 1);
  const w = g.constant({ dtype: 'float64', shape: y.shape as number[], data: Float64Array.from({ length: n }, () => rand() * 2 - 1) });
  const loss = reduceSum(mul(y, w));
  const checked = xs.filter((_, i) => (inputs[i].dtype ?? 'float64') === 'float64');
  const grads = gradients(loss, checked);
  g.output('loss', loss);
  for (const [i, d] of grads.entries()) g.output(`grad${i}`, d);
  const session = await Session.create(g.toOnnx(), { intraOpThreads: 1 });
  const datas = inputs.map((inp) => {
    const size = inp.shape.reduce((a, b) => a * b, 1);
    const values = inp.data ?? Array.from({ length: size }, () => rand() * 2 - 1);
    return (inp.dtype ?? 'float64') === 'int64' ? BigInt64Array.from(values.map(BigInt)) : Float64Array.from(values);
  });
  const feeds = () => Object.fromEntries(datas.map((d, i) => [`x${i}`, { data: d, shape: inputs[i].shape }]));
  const analytic = await session.run(feeds());
  const lossAt = async () => (await session.run(feeds(), ['loss'])).loss.data[0] as number;
  let worst = { input: -1, index: -1, analytic: 0, numeric: 0 };
  let maxError = 0;
  let k = 0;
  for (let i = 0; i < inputs.length; i++) {
    if ((inputs[i].dtype ?? 'float64') !== 'float64') continue;
    const d = datas[i] as Float64Array;
    const a = analytic[`grad${k++}`].data as Float64Array;
    for (let j = 0; j < d.length; j++) {
      const orig = d[j];
      d[j] = orig + eps;
      const up = await lossAt();
      d[j] = orig - eps;
      const down = await lossAt();
      d[j] = orig;
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(a[j] - numeric) / (1 + Math.abs(numeric));
      if (err > maxError) {
        maxError = err;
        worst = { input: i, index: j, analytic: a[j], numeric };
      }
    }
  }
  await session.release();
  return { maxError, worst };
}
