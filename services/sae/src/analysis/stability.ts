/**
 * ID vs OOD stability of features: per feature, its activation frequency (fraction of rows it is
 * active on) and its mean activation where active, on the in-distribution set and on each
 * out-of-distribution set; the frequency ratio OOD / ID; and the fraction of features whose
 * frequency changes by more than `factor` (2x) either way. A feature is counted only where it fired
 * on at least `minRows` rows of the two sets together, so a latent seen once or twice is not called
 * unstable on noise; a feature that fires only on one side (and often enough) counts as changed.
 */

/** Firing counts and summed activations per feature over a set of rows. */
export class FeatureStats {
  readonly fired: Float64Array;
  readonly sum: Float64Array;
  rows = 0;

  constructor(readonly dSae: number) {
    this.fired = new Float64Array(dSae);
    this.sum = new Float64Array(dSae);
  }

  add(indices: ArrayLike<number>, values: ArrayLike<number>): void {
    this.rows++;
    for (let i = 0; i < indices.length; i++) {
      this.fired[indices[i]]++;
      this.sum[indices[i]] += values[i];
    }
  }

  frequency(j: number): number {
    return this.rows > 0 ? this.fired[j] / this.rows : 0;
  }

  meanActive(j: number): number {
    return this.fired[j] > 0 ? this.sum[j] / this.fired[j] : 0;
  }
}

export interface FeatureShift {
  feature: number;
  frequency_id: number;
  frequency_ood: number;
  /** frequency_ood / frequency_id (Infinity when the feature is silent on ID). */
  ratio: number;
  mean_id: number;
  mean_ood: number;
}

export interface StabilityResult {
  name: string;
  rows_id: number;
  rows_ood: number;
  factor: number;
  /** Features that fired on at least minRows rows of the two sets together. */
  considered: number;
  changed: number;
  changed_fraction: number;
  /** 1 − changed_fraction: 1 when every considered feature keeps its density within the factor. */
  stable_fraction: number;
  /** The considered features with the largest change (|log ratio|), largest first. */
  most_changed: FeatureShift[];
  /** Every feature's frequency on the OOD set (the ID ones are in the report's per-feature table). */
  frequency_ood: number[];
  mean_ood: number[];
}

export function compareStability(name: string, id: FeatureStats, ood: FeatureStats, factor = 2, minRows = 5, keep = 20): StabilityResult {
  const shifts: (FeatureShift & { change: number })[] = [];
  let changed = 0;
  for (let j = 0; j < id.dSae; j++) {
    if (id.fired[j] + ood.fired[j] < minRows) continue;
    const fi = id.frequency(j);
    const fo = ood.frequency(j);
    const ratio = fi > 0 ? fo / fi : Number.POSITIVE_INFINITY;
    const change = fi > 0 && fo > 0 ? Math.abs(Math.log(ratio)) : Number.POSITIVE_INFINITY;
    if (change > Math.log(factor)) changed++;
    shifts.push({ feature: j, frequency_id: fi, frequency_ood: fo, ratio, mean_id: id.meanActive(j), mean_ood: ood.meanActive(j), change });
  }
  shifts.sort((a, b) => b.change - a.change || b.frequency_id + b.frequency_ood - a.frequency_id - a.frequency_ood);
  const considered = shifts.length;
  return {
    name,
    rows_id: id.rows,
    rows_ood: ood.rows,
    factor,
    considered,
    changed,
    changed_fraction: considered > 0 ? changed / considered : 0,
    stable_fraction: considered > 0 ? 1 - changed / considered : 1,
    most_changed: shifts.slice(0, keep).map(({ change: _c, ...s }) => s),
    frequency_ood: Array.from({ length: ood.dSae }, (_, j) => ood.frequency(j)),
    mean_ood: Array.from({ length: ood.dSae }, (_, j) => ood.meanActive(j)),
  };
}
