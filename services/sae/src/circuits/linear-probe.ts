/**
 * Linear probes in plain TypeScript: does a linear readout of an activation predict a label on
 * held-out examples better than a constant does?
 *   regression      ridge, w = argmin ‖y − Xw‖² + λ‖w‖² in closed form (the primal d×d system, or
 *                   the dual n×n one when there are fewer rows than features), λ picked from a grid by
 *                   5-fold cross-validation on the training rows; scored by R² = 1 − SS_res / SS_tot
 *                   on the validation rows, against the training mean as the baseline predictor
 *   classification  multinomial logistic regression, mean cross-entropy + (λ/2)‖W‖², full-batch
 *                   Adam; scored by accuracy on the validation rows, against the training majority class
 * Features are standardised with the training rows' mean and deviation; the intercept is not penalised.
 * Rows carry a group (the example they come from), and folds and the train/val split keep a group whole.
 */
import { Rng } from '@rlmesh/core';

export interface ProbeRows {
  /** Row-major [rows, d]. */
  x: Float32Array;
  d: number;
  /** The example each row comes from. */
  group: number[];
}

export interface RegressionScore {
  r2: number;
  baseline_r2: number;
  lambda: number;
  train_rows: number;
  val_rows: number;
}

export interface ClassificationScore {
  accuracy: number;
  baseline_accuracy: number;
  classes: number;
  train_rows: number;
  val_rows: number;
}

export const RIDGE_LAMBDAS = [1e-2, 1e-1, 1, 10, 100, 1000];

/** Marks each of `groups` groups as validation (true) with probability about `fraction`, seeded. */
export function valGroups(groups: number, fraction: number, seed: number): boolean[] {
  const order = new Rng(seed).shuffle([...Array(groups).keys()]);
  const nVal = Math.max(1, Math.round(groups * fraction));
  const isVal = new Array<boolean>(groups).fill(false);
  for (const g of order.slice(0, nVal)) isVal[g] = true;
  return isVal;
}

/** Standardised copies of the rows picked by `rows`, with the statistics of `fit`'s rows. */
function standardise(p: ProbeRows, fit: number[], rows: number[][]): Float64Array[] {
  const { d, x } = p;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const r of fit) for (let j = 0; j < d; j++) mean[j] += x[r * d + j] / fit.length;
  for (const r of fit) for (let j = 0; j < d; j++) sd[j] += (x[r * d + j] - mean[j]) ** 2 / fit.length;
  for (let j = 0; j < d; j++) sd[j] = sd[j] > 1e-12 ? Math.sqrt(sd[j]) : 1;
  return rows.map((rs) => {
    const out = new Float64Array(rs.length * d);
    for (const [i, r] of rs.entries()) for (let j = 0; j < d; j++) out[i * d + j] = (x[r * d + j] - mean[j]) / sd[j];
    return out;
  });
}

/** Solves A z = b for symmetric positive definite A [m, m] (Cholesky); A is overwritten. */
export function solveSpd(a: Float64Array, b: Float64Array, m: number): Float64Array {
  for (let j = 0; j < m; j++) {
    let s = a[j * m + j];
    for (let k = 0; k < j; k++) s -= a[j * m + k] ** 2;
    if (!(s > 0)) throw new Error('solveSpd: the matrix is not positive definite');
    const l = Math.sqrt(s);
    a[j * m + j] = l;
    for (let i = j + 1; i < m; i++) {
      let t = a[i * m + j];
      for (let k = 0; k < j; k++) t -= a[i * m + k] * a[j * m + k];
      a[i * m + j] = t / l;
    }
  }
  const z = Float64Array.from(b);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < i; k++) z[i] -= a[i * m + k] * z[k];
    z[i] /= a[i * m + i];
  }
  for (let i = m - 1; i >= 0; i--) {
    for (let k = i + 1; k < m; k++) z[i] -= a[k * m + i] * z[k];
    z[i] /= a[i * m + i];
  }
  return z;
}

/** Ridge weights for standardised x [n, d] and centred y. */
export function ridgeWeights(x: Float64Array, y: Float64Array, n: number, d: number, lambda: number): Float64Array {
  if (n < d) {
    // Dual: w = Xᵀ (X Xᵀ + λI)⁻¹ y.
    const k = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let f = 0; f < d; f++) s += x[i * d + f] * x[j * d + f];
        k[i * n + j] = k[j * n + i] = s + (i === j ? lambda : 0);
      }
    const alpha = solveSpd(k, y, n);
    const w = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let f = 0; f < d; f++) w[f] += x[i * d + f] * alpha[i];
    return w;
  }
  const a = new Float64Array(d * d);
  const b = new Float64Array(d);
  for (let i = 0; i < n; i++)
    for (let f = 0; f < d; f++) {
      const xf = x[i * d + f];
      b[f] += xf * y[i];
      for (let g = 0; g <= f; g++) a[f * d + g] += xf * x[i * d + g];
    }
  for (let f = 0; f < d; f++) {
    a[f * d + f] += lambda;
    for (let g = 0; g < f; g++) a[g * d + f] = a[f * d + g];
  }
  return solveSpd(a, b, d);
}

function predict(x: Float64Array, w: Float64Array, bias: number, n: number, d: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = bias;
    for (let f = 0; f < d; f++) s += x[i * d + f] * w[f];
    out[i] = s;
  }
  return out;
}

/** R² of predictions against targets: 1 − SS_res / SS_tot (SS_tot around the targets' own mean). */
export function rSquared(pred: ArrayLike<number>, y: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < y.length; i++) mean += y[i] / y.length;
  let res = 0;
  let tot = 0;
  for (let i = 0; i < y.length; i++) {
    res += (y[i] - pred[i]) ** 2;
    tot += (y[i] - mean) ** 2;
  }
  // A constant target: a perfect fit scores 1, anything else 0, rather than dividing by zero.
  return tot > 0 ? 1 - res / tot : res < 1e-12 ? 1 : 0;
}

function fitRidge(p: ProbeRows, y: readonly number[], train: number[], test: number[], lambda: number): Float64Array {
  const [xt, xv] = standardise(p, train, [train, test]);
  const mean = train.reduce((s, r) => s + y[r], 0) / train.length;
  const w = ridgeWeights(
    xt,
    Float64Array.from(train, (r) => y[r] - mean),
    train.length,
    p.d,
    lambda,
  );
  return predict(xv, w, mean, test.length, p.d);
}

/** Rows of the groups marked true / false in `isVal`. */
function splitRows(p: ProbeRows, isVal: readonly boolean[]): { train: number[]; val: number[] } {
  const train: number[] = [];
  const val: number[] = [];
  for (const [r, g] of p.group.entries()) (isVal[g] ? val : train).push(r);
  if (train.length === 0 || val.length === 0)
    throw new Error(`probe: needs rows on both sides of the split (train ${train.length}, val ${val.length})`);
  return { train, val };
}

export function ridgeProbe(p: ProbeRows, y: readonly number[], isVal: readonly boolean[], folds = 5): RegressionScore {
  const { train, val } = splitRows(p, isVal);
  // Cross-validation folds by group, in the order groups first appear among the training rows.
  const groups = [...new Set(train.map((r) => p.group[r]))];
  const foldOf = new Map(groups.map((g, i) => [g, i % folds]));
  let best = { lambda: RIDGE_LAMBDAS[0], err: Number.POSITIVE_INFINITY };
  if (groups.length >= folds)
    for (const lambda of RIDGE_LAMBDAS) {
      let err = 0;
      for (let f = 0; f < folds; f++) {
        const inner = train.filter((r) => foldOf.get(p.group[r]) !== f);
        const held = train.filter((r) => foldOf.get(p.group[r]) === f);
        const pred = fitRidge(p, y, inner, held, lambda);
        for (const [i, r] of held.entries()) err += (pred[i] - y[r]) ** 2;
      }
      if (err < best.err) best = { lambda, err };
    }
  else best.lambda = 1;
  const pred = fitRidge(p, y, train, val, best.lambda);
  const yVal = val.map((r) => y[r]);
  const trainMean = train.reduce((s, r) => s + y[r], 0) / train.length;
  return {
    r2: rSquared(pred, yVal),
    baseline_r2: rSquared(new Float64Array(val.length).fill(trainMean), yVal),
    lambda: best.lambda,
    train_rows: train.length,
    val_rows: val.length,
  };
}

export function logisticProbe(
  p: ProbeRows,
  labels: readonly string[],
  isVal: readonly boolean[],
  o: { steps?: number; lr?: number; l2?: number } = {},
): ClassificationScore {
  const { train, val } = splitRows(p, isVal);
  const classes = [...new Set(train.map((r) => labels[r]))].sort();
  const index = new Map(classes.map((c, i) => [c, i]));
  const counts = classes.map((c) => train.filter((r) => labels[r] === c).length);
  const majority = classes[counts.indexOf(Math.max(...counts))];
  const [xt, xv] = standardise(p, train, [train, val]);
  const { d } = p;
  const C = classes.length;
  const n = train.length;
  const yt = train.map((r) => index.get(labels[r]) as number);
  // Parameters [W (d x C), b (C)] as one vector, so one Adam loop updates both.
  const size = d * C + C;
  const theta = new Float64Array(size);
  const m = new Float64Array(size);
  const v = new Float64Array(size);
  const grad = new Float64Array(size);
  const logits = new Float64Array(C);
  const [steps, lr, l2] = [o.steps ?? 300, o.lr ?? 0.05, o.l2 ?? 1e-2];
  const scores = (x: Float64Array, i: number) => {
    for (let c = 0; c < C; c++) logits[c] = theta[d * C + c];
    for (let f = 0; f < d; f++) {
      const xf = x[i * d + f];
      if (xf !== 0) for (let c = 0; c < C; c++) logits[c] += xf * theta[f * C + c];
    }
    return logits;
  };
  for (let step = 1; step <= steps && C > 1; step++) {
    grad.fill(0);
    for (let i = 0; i < n; i++) {
      const z = scores(xt, i);
      const max = Math.max(...z);
      let sum = 0;
      for (let c = 0; c < C; c++) sum += z[c] = Math.exp(z[c] - max);
      for (let c = 0; c < C; c++) {
        const g = (z[c] / sum - (c === yt[i] ? 1 : 0)) / n;
        grad[d * C + c] += g;
        for (let f = 0; f < d; f++) grad[f * C + c] += g * xt[i * d + f];
      }
    }
    for (let k = 0; k < d * C; k++) grad[k] += l2 * theta[k];
    for (let k = 0; k < size; k++) {
      m[k] = 0.9 * m[k] + 0.1 * grad[k];
      v[k] = 0.999 * v[k] + 0.001 * grad[k] ** 2;
      theta[k] -= (lr * (m[k] / (1 - 0.9 ** step))) / (Math.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8);
    }
  }
  let right = 0;
  let base = 0;
  for (const [i, r] of val.entries()) {
    const z = scores(xv, i);
    if (classes[z.indexOf(Math.max(...z))] === labels[r]) right++;
    if (majority === labels[r]) base++;
  }
  return { accuracy: right / val.length, baseline_accuracy: base / val.length, classes: C, train_rows: n, val_rows: val.length };
}
