/**
 * Conditional mutual information I(Z_j; A | S) between each feature's activity Z_j (binarised:
 * active or not), a discrete action A and a discrete state S, for all features at once.
 *
 * Estimator: plug-in over the (s, a, z) counts with the Miller-Madow correction of each entropy,
 *   I(Z; A | S) = H(Z, S) + H(A, S) − H(Z, A, S) − H(S)
 *   Ĥ_MM(X)     = Ĥ_plugin(X) + (m_X − 1) / 2N        (m_X: cells of X seen at least once)
 * With H = log N − (1/N) Σ n log n over a variable's cells, the log N terms cancel:
 *   Î_plugin = (Σ_{zas} n log n + Σ_s n log n − Σ_{zs} n log n − Σ_{as} n log n) / N
 *   Î_MM     = Î_plugin + (m_ZS + m_AS − m_ZAS − m_S) / 2N
 * Reported in bits. The plug-in estimate is biased upwards by about the number of (s, a) cells over
 * 2N; Miller-Madow removes that first-order term, so an independent feature reads close to 0 (it
 * can go slightly negative) rather than a positive floor that grows with the number of cells.
 */

const LN2 = Math.log(2);
const nlogn = (n: number) => (n > 0 ? n * Math.log(n) : 0);

/** Counts of (state, action) cells and, per cell, how many rows each feature was active on. */
export class MutualInformationCounter {
  private readonly cellOf = new Map<string, number>();
  private readonly stateOf = new Map<string, number>();
  private readonly actionOf = new Map<string, number>();
  /** Per cell: its state index, its action index, its row count. */
  private readonly cellState: number[] = [];
  private readonly cellAction: number[] = [];
  private readonly cellRows: number[] = [];
  /** Active counts, cell-major: [cell * dSae + j]. Grown as cells appear. */
  private active: Int32Array;
  rows = 0;

  constructor(
    readonly dSae: number,
    /** Bounds cells × d_sae so a key with a value per row (a float, an id) fails clearly, not out of memory. */
    readonly maxCounts = 64_000_000,
  ) {
    this.active = new Int32Array(16 * dSae);
  }

  get cells(): number {
    return this.cellRows.length;
  }

  get states(): number {
    return this.stateOf.size;
  }

  get actions(): number {
    return this.actionOf.size;
  }

  private index(map: Map<string, number>, key: string): number {
    let i = map.get(key);
    if (i === undefined) {
      i = map.size;
      map.set(key, i);
    }
    return i;
  }

  private cell(state: string, action: string): number {
    const s = this.index(this.stateOf, state);
    const a = this.index(this.actionOf, action);
    const key = `${s}:${a}`;
    let c = this.cellOf.get(key);
    if (c === undefined) {
      c = this.cellRows.length;
      if ((c + 1) * this.dSae > this.maxCounts)
        throw new Error(
          `mutual information: more than ${Math.floor(this.maxCounts / this.dSae)} (state, action) cells; choose a coarser state or action key`,
        );
      this.cellOf.set(key, c);
      this.cellState.push(s);
      this.cellAction.push(a);
      this.cellRows.push(0);
      if ((c + 1) * this.dSae > this.active.length) {
        const grown = new Int32Array(Math.min(this.maxCounts, Math.max(this.active.length * 2, (c + 1) * this.dSae)));
        grown.set(this.active);
        this.active = grown;
      }
    }
    return c;
  }

  /** One row: its state, its action, and the features active on it. */
  add(state: string, action: string, activeFeatures: ArrayLike<number>): void {
    const c = this.cell(state, action);
    this.cellRows[c]++;
    this.rows++;
    const at = c * this.dSae;
    for (let i = 0; i < activeFeatures.length; i++) this.active[at + activeFeatures[i]]++;
  }

  /** One row given as a dense code vector (active = value > 0). */
  addDense(state: string, action: string, codes: ArrayLike<number>): void {
    const c = this.cell(state, action);
    this.cellRows[c]++;
    this.rows++;
    const at = c * this.dSae;
    for (let j = 0; j < this.dSae; j++) if (codes[j] > 0) this.active[at + j]++;
  }

  /**
   * Per feature: I(Z; A | S) in bits with and without the Miller-Madow correction; and the ceiling
   * H(A | S) (plug-in, bits), which no feature's information can exceed.
   */
  result(): { mi: Float64Array; miPlugin: Float64Array; hActionGivenState: number } {
    const N = this.rows;
    const d = this.dSae;
    const mi = new Float64Array(d);
    const miPlugin = new Float64Array(d);
    if (N === 0) return { mi, miPlugin, hActionGivenState: 0 };
    const S = this.stateOf.size;
    const stateRows = new Float64Array(S);
    for (let c = 0; c < this.cells; c++) stateRows[this.cellState[c]] += this.cellRows[c];
    let sumS = 0;
    for (const n of stateRows) sumS += nlogn(n);
    let sumAS = 0;
    for (const n of this.cellRows) sumAS += nlogn(n);
    const mAS = this.cells;
    const hActionGivenState = (sumS - sumAS) / N / LN2;
    const stateActive = new Float64Array(S);
    for (let j = 0; j < d; j++) {
      stateActive.fill(0);
      let sumZAS = 0;
      let mZAS = 0;
      for (let c = 0; c < this.cells; c++) {
        const k = this.active[c * d + j];
        const n = this.cellRows[c];
        sumZAS += nlogn(k) + nlogn(n - k);
        mZAS += (k > 0 ? 1 : 0) + (n - k > 0 ? 1 : 0);
        stateActive[this.cellState[c]] += k;
      }
      let sumZS = 0;
      let mZS = 0;
      for (let s = 0; s < S; s++) {
        const k = stateActive[s];
        const n = stateRows[s];
        sumZS += nlogn(k) + nlogn(n - k);
        mZS += (k > 0 ? 1 : 0) + (n - k > 0 ? 1 : 0);
      }
      const plugin = (sumZAS + sumS - sumZS - sumAS) / N;
      miPlugin[j] = plugin / LN2;
      mi[j] = (plugin + (mZS + mAS - mZAS - S) / (2 * N)) / LN2;
    }
    return { mi, miPlugin, hActionGivenState };
  }
}

/** The binary entropy in bits: the information a feature that fires exactly when a = k carries, p = P(a = k). */
export function binaryEntropyBits(p: number): number {
  if (p <= 0 || p >= 1) return 0;
  return -(p * Math.log2(p) + (1 - p) * Math.log2(1 - p));
}
