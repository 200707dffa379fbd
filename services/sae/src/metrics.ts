/**
 * Reconstruction and sparsity metrics, from inputs, reconstructions and per-latent firing counts.
 *   l0                 mean over rows of the number of latents with a > 0
 *   mse                mean over all elements of (x − x̂)²  (torch's F.mse_loss)
 *   normalized_mse     Σ‖x − x̂‖² / Σ‖x‖²   (error relative to the inputs' own energy)
 *   explained_variance 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²,  x̄ the batch mean (variance about the batch mean)
 *   dead_fraction      latents that fired on none of the rows
 *   dense_fraction     latents that fired on more than `denseThreshold` of the rows
 */
export interface SaeMetrics {
  l0: number;
  mse: number;
  normalized_mse: number;
  explained_variance: number;
  dead_fraction: number;
  dense_fraction: number;
}

export interface MetricInputs {
  x: Float32Array;
  xHat: Float32Array;
  dIn: number;
  /** Rows each latent fired on, over the same rows as x. */
  fired: ArrayLike<number>;
  /** Fraction of rows above which a latent counts as dense; 0.1 by default. */
  denseThreshold?: number;
}

export function saeMetrics({ x, xHat, dIn, fired, denseThreshold = 0.1 }: MetricInputs): SaeMetrics {
  if (x.length !== xHat.length) throw new Error(`metrics: x has ${x.length} values, x̂ has ${xHat.length}`);
  const rows = x.length / dIn;
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`metrics: ${x.length} values do not make rows of ${dIn}`);
  const mean = new Float64Array(dIn);
  for (let i = 0; i < x.length; i++) mean[i % dIn] += x[i] / rows;
  let resid = 0;
  let energy = 0;
  let total = 0;
  for (let i = 0; i < x.length; i++) {
    const e = x[i] - xHat[i];
    resid += e * e;
    energy += x[i] * x[i];
    const c = x[i] - mean[i % dIn];
    total += c * c;
  }
  let firings = 0;
  let dead = 0;
  let dense = 0;
  for (let j = 0; j < fired.length; j++) {
    firings += fired[j];
    if (fired[j] === 0) dead++;
    if (fired[j] / rows > denseThreshold) dense++;
  }
  return {
    l0: firings / rows,
    mse: resid / x.length,
    normalized_mse: energy > 0 ? resid / energy : Number.NaN,
    explained_variance: total > 0 ? 1 - resid / total : Number.NaN,
    dead_fraction: dead / fired.length,
    dense_fraction: dense / fired.length,
  };
}

export interface DensityBin {
  /** Latents with lo <= log10(firing frequency) < hi. */
  lo: number;
  hi: number;
  count: number;
}

/**
 * The feature density histogram (SAELens's log10 feature density plot) over `rows` rows: one bin per
 * `width` decades from 10^`from` up to 1, and a first bin (lo = -Infinity) for latents that never
 * fired. Frequencies below 10^from fall in the lowest finite bin.
 */
export function densityHistogram(fired: ArrayLike<number>, rows: number, from = -5, width = 0.5): DensityBin[] {
  const n = Math.round(-from / width);
  const bins: DensityBin[] = [{ lo: Number.NEGATIVE_INFINITY, hi: from, count: 0 }];
  for (let i = 0; i < n; i++) bins.push({ lo: from + i * width, hi: from + (i + 1) * width, count: 0 });
  for (let j = 0; j < fired.length; j++) {
    if (fired[j] === 0) {
      bins[0].count++;
      continue;
    }
    const at = Math.floor((Math.log10(fired[j] / rows) - from) / width);
    bins[1 + Math.min(n - 1, Math.max(0, at))].count++;
  }
  return bins;
}
