/**
 * Correlation of each feature's activation with labels the environment provides, over all rows.
 * A numeric label (the card game's total, each colour's sum) gives Pearson's r; a categorical one
 * (the answer label, the action, the rule family) gives one indicator per frequent value, whose
 * Pearson r with the activation is the point-biserial correlation. Rows without the label are left
 * out of that label's sums. Sums are accumulated from sparse codes (a zero code adds nothing but
 * the row count), so the cost is rows × active features × labels.
 */

export interface LabelVariable {
  /** `total`, `colour_sums.red`, or `label=BIG` for an indicator. */
  name: string;
  kind: 'numeric' | 'indicator';
  /** One value per row; NaN where the row has no such label. */
  values: Float64Array;
}

/** Leaves of a record as dotted paths: numbers, and strings or booleans as categories (arrays are skipped). */
function leaves(v: unknown, prefix: string, out: Map<string, number | string>): void {
  if (v === null || v === undefined || Array.isArray(v)) return;
  if (typeof v === 'number') {
    if (Number.isFinite(v)) out.set(prefix, v);
  } else if (typeof v === 'string' || typeof v === 'boolean') out.set(prefix, String(v));
  else if (typeof v === 'object') for (const [k, x] of Object.entries(v)) leaves(x, prefix ? `${prefix}.${k}` : k, out);
}

/**
 * The label variables of `rows` records (each the row's labels, flattened): a key numeric on every
 * row that has it is numeric, unless named in `categorical` (ids such as an action or a token, whose
 * order means nothing); otherwise each value seen on at least `minCount` rows (at most `maxValues`,
 * most frequent first) becomes an indicator.
 */
export function labelVariables(
  records: readonly (Record<string, unknown> | null)[],
  categorical: readonly string[] = ['action', 'token'],
  minCount = 5,
  maxValues = 20,
): LabelVariable[] {
  const rows = records.length;
  const flat = records.map((r) => {
    const m = new Map<string, number | string>();
    if (r) leaves(r, '', m);
    return m;
  });
  const keys = new Map<string, { numeric: boolean; counts: Map<string, number> }>();
  for (const m of flat)
    for (const [k, v] of m) {
      let e = keys.get(k);
      if (!e) keys.set(k, (e = { numeric: true, counts: new Map() }));
      if (typeof v !== 'number') e.numeric = false;
      e.counts.set(String(v), (e.counts.get(String(v)) ?? 0) + 1);
    }
  const out: LabelVariable[] = [];
  for (const [key, e] of [...keys].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (e.counts.size < 2) continue; // a constant says nothing
    if (e.numeric && !categorical.includes(key)) {
      out.push({ name: key, kind: 'numeric', values: Float64Array.from(flat, (m) => (m.has(key) ? (m.get(key) as number) : Number.NaN)) });
      continue;
    }
    const frequent = [...e.counts].filter(([, n]) => n >= minCount && n < rows).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    for (const [value] of frequent.slice(0, maxValues))
      out.push({
        name: `${key}=${value}`,
        kind: 'indicator',
        values: Float64Array.from(flat, (m) => (m.has(key) ? (String(m.get(key)) === value ? 1 : 0) : Number.NaN)),
      });
  }
  return out;
}

/** Streaming Pearson r between every feature and every label variable. */
export class LabelCorrelator {
  private readonly sx: Float64Array;
  private readonly sxx: Float64Array;
  private readonly sxy: Float64Array;
  private readonly n: Float64Array;
  private readonly sy: Float64Array;
  private readonly syy: Float64Array;

  constructor(
    readonly variables: readonly LabelVariable[],
    readonly dSae: number,
  ) {
    const L = variables.length;
    this.sx = new Float64Array(L * dSae);
    this.sxx = new Float64Array(L * dSae);
    this.sxy = new Float64Array(L * dSae);
    this.n = new Float64Array(L);
    this.sy = new Float64Array(L);
    this.syy = new Float64Array(L);
  }

  /** Row `row`'s nonzero codes (indices and values). */
  add(row: number, indices: ArrayLike<number>, values: ArrayLike<number>): void {
    const d = this.dSae;
    for (let l = 0; l < this.variables.length; l++) {
      const y = this.variables[l].values[row];
      if (Number.isNaN(y)) continue;
      this.n[l]++;
      this.sy[l] += y;
      this.syy[l] += y * y;
      const at = l * d;
      for (let i = 0; i < indices.length; i++) {
        const j = at + indices[i];
        const x = values[i];
        this.sx[j] += x;
        this.sxx[j] += x * x;
        this.sxy[j] += x * y;
      }
    }
  }

  /** r[l * dSae + j]; 0 where either side is constant over the label's rows. */
  result(): Float64Array {
    const d = this.dSae;
    const r = new Float64Array(this.variables.length * d);
    for (let l = 0; l < this.variables.length; l++) {
      const n = this.n[l];
      const vy = n * this.syy[l] - this.sy[l] ** 2;
      for (let j = 0; j < d; j++) {
        const i = l * d + j;
        const vx = n * this.sxx[i] - this.sx[i] ** 2;
        const cov = n * this.sxy[i] - this.sx[i] * this.sy[l];
        r[i] = vx > 1e-12 * n * n && vy > 1e-12 * n * n ? cov / Math.sqrt(vx * vy) : 0;
      }
    }
    return r;
  }

  rowsOf(l: number): number {
    return this.n[l];
  }
}
