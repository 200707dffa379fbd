/**
 * The planted-dictionary check: activations built as sparse non-negative combinations of known unit
 * directions, and how many of those directions an SAE's decoder recovers (best cosine per direction).
 * A trainer that learns the right thing finds nearly all of them; random or untrained decoders find
 * almost none, because random directions in d_in dimensions have small cosines.
 */
import type { Rng } from '@rlmesh/core';
import type { Activations } from './training';

export interface PlantedDictionary {
  /** n unit directions [n, d_in], row-major. */
  directions: Float32Array;
  n: number;
  dIn: number;
  /** A constant offset added to every row (the data's mean direction), so b_dec has work to do. */
  offset: Float32Array;
}

export function plantedDictionary(rng: Rng, dIn: number, n: number, offsetNorm = 0): PlantedDictionary {
  const unit = () => {
    const v = Float32Array.from({ length: dIn }, () => rng.normal());
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  };
  const directions = new Float32Array(n * dIn);
  for (let i = 0; i < n; i++) directions.set(unit(), i * dIn);
  const offset = unit().map((x) => x * offsetNorm);
  return { directions, n, dIn, offset };
}

export interface SparseCodeOptions {
  /** Probability that each direction is active in a row. */
  p: number;
  /** Active coefficients are uniform in [min, max]. */
  min?: number;
  max?: number;
}

/** Rows x = offset + Σ_i c_i d_i with c_i ~ U[min, max] on a random sparse set, else 0. */
export function sampleActivations(
  dict: PlantedDictionary,
  rng: Rng,
  rows: number,
  { p, min = 0.5, max = 1.5 }: SparseCodeOptions,
): Activations {
  const { dIn, n, directions, offset } = dict;
  const data = new Float32Array(rows * dIn);
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * dIn, (r + 1) * dIn);
    row.set(offset);
    for (let i = 0; i < n; i++) {
      if (rng.uniform() >= p) continue;
      const c = rng.uniformRange(min, max);
      for (let j = 0; j < dIn; j++) row[j] += c * directions[i * dIn + j];
    }
  }
  return { data, rows };
}

export interface Recovery {
  /** Fraction of planted directions whose best decoder cosine is at least the threshold. */
  fraction: number;
  /** For each planted direction, its largest cosine with any decoder row. */
  bestCosine: Float32Array;
}

/** Matches each planted direction with its closest decoder row W_dec [d_sae, d_in] by cosine. */
export function recovery(dict: PlantedDictionary, wDec: Float32Array, threshold = 0.9): Recovery {
  const { dIn, n, directions } = dict;
  const dSae = wDec.length / dIn;
  if (!Number.isInteger(dSae)) throw new Error(`recovery: W_dec has ${wDec.length} values, not rows of ${dIn}`);
  const norms = Float64Array.from({ length: dSae }, (_, r) => Math.hypot(...wDec.subarray(r * dIn, (r + 1) * dIn)) || 1);
  const bestCosine = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let best = Number.NEGATIVE_INFINITY;
    for (let r = 0; r < dSae; r++) {
      let dot = 0;
      for (let j = 0; j < dIn; j++) dot += directions[i * dIn + j] * wDec[r * dIn + j];
      best = Math.max(best, dot / norms[r]);
    }
    bestCosine[i] = best;
  }
  const found = bestCosine.reduce((k, c) => k + (c >= threshold ? 1 : 0), 0);
  return { fraction: found / n, bestCosine };
}
