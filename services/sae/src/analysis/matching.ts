/**
 * Matching the features of two SAEs on the same hook (e.g. trained on two policy versions) by the
 * cosine similarity of their decoder rows (each feature's direction in activation space).
 *   best match: for each feature of A, the largest cosine with any feature of B (many-to-one);
 *   one-to-one: the assignment maximising the summed cosine (the Hungarian algorithm, O(n³), up to
 *               HUNGARIAN_MAX features a side), or greedily by descending cosine beyond that.
 * A feature counts as matched above a threshold (0.9, 0.7) by its cosine under either rule.
 */
import { Graph, matmul, Session } from '@rlmesh/graph';

export const HUNGARIAN_MAX = 1024;
/** The one-to-one rule needs the whole cosine matrix: beyond this many entries it is skipped. */
export const ASSIGNMENT_MAX_ENTRIES = 2048 * 2048;

function unitRows(w: Float32Array, rows: number, d: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += w[r * d + k] ** 2;
    const n = Math.sqrt(s) || 1;
    for (let k = 0; k < d; k++) out[r * d + k] = w[r * d + k] / n;
  }
  return out;
}

/** Rows of A per matmul: 256 x 16,384 cosines is 16 MB of output. */
const COSINE_CHUNK = 256;

/**
 * Cosines of A's rows with B's rows ([nA, nB], row-major), a chunk of A's rows at a time as one ONNX
 * MatMul (16k x 16k x 768 is 2e11 multiply-adds: hours in a JS loop, a minute or so here);
 * `each(i, row)` sees each row as it is made.
 */
async function cosines(
  a: Float32Array,
  nA: number,
  b: Float32Array,
  nB: number,
  d: number,
  each: (i: number, row: Float32Array) => void,
): Promise<void> {
  const ua = unitRows(a, nA, d);
  const ub = unitRows(b, nB, d);
  const bt = new Float32Array(d * nB);
  for (let j = 0; j < nB; j++) for (let k = 0; k < d; k++) bt[k * nB + j] = ub[j * d + k];
  const g = new Graph('decoder_cosines');
  g.output('cos', matmul(g.input('a', 'float32', ['rows', d]), g.input('bt', 'float32', [d, nB])));
  const session = await Session.create(g.toOnnx(), { intraOpThreads: 2 });
  try {
    for (let at = 0; at < nA; at += COSINE_CHUNK) {
      const rows = Math.min(COSINE_CHUNK, nA - at);
      const out = await session.run({
        a: { data: ua.subarray(at * d, (at + rows) * d), shape: [rows, d] },
        bt: { data: bt, shape: [d, nB] },
      });
      const cos = out.cos.data as Float32Array;
      for (let r = 0; r < rows; r++) each(at + r, cos.subarray(r * nB, (r + 1) * nB));
    }
  } finally {
    await session.release();
  }
}

/**
 * The assignment of rows to columns minimising the summed cost of an [n, m] matrix (n <= m): the
 * shortest augmenting path form of the Hungarian algorithm with potentials. Returns each row's column.
 */
export function hungarian(cost: Float64Array, n: number, m: number): Int32Array {
  if (n > m) throw new Error(`hungarian: ${n} rows exceed ${m} columns`);
  const INF = Number.POSITIVE_INFINITY;
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const p = new Int32Array(m + 1); // p[j]: the row (1-based) assigned to column j
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(INF);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      let delta = INF;
      let j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = cost[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const rowCol = new Int32Array(n).fill(-1);
  for (let j = 1; j <= m; j++) if (p[j] > 0) rowCol[p[j] - 1] = j - 1;
  return rowCol;
}

export interface MatchSummary {
  /** Features of A. */
  features: number;
  above_0_9: number;
  above_0_7: number;
  mean_cosine: number;
}

export interface FeatureMatching {
  d_in: number;
  features_a: number;
  features_b: number;
  best: MatchSummary & { match: number[]; cosine: number[] };
  /** Absent when the cosine matrix would exceed ASSIGNMENT_MAX_ENTRIES. */
  one_to_one?: MatchSummary & { method: 'hungarian' | 'greedy'; match: number[]; cosine: number[] };
}

function summary(cos: ArrayLike<number>): MatchSummary {
  let a9 = 0;
  let a7 = 0;
  let sum = 0;
  for (let i = 0; i < cos.length; i++) {
    if (cos[i] > 0.9) a9++;
    if (cos[i] > 0.7) a7++;
    sum += cos[i];
  }
  const n = cos.length;
  return { features: n, above_0_9: a9 / n, above_0_7: a7 / n, mean_cosine: sum / n };
}

/** Matches A's decoder rows W_dec [nA, d] against B's [nB, d]. */
export async function matchFeatures(a: Float32Array, nA: number, b: Float32Array, nB: number, d: number): Promise<FeatureMatching> {
  if (a.length !== nA * d || b.length !== nB * d) throw new Error(`matching: decoders must be [features, ${d}]`);
  const bestMatch = new Array<number>(nA).fill(-1);
  const bestCos = new Array<number>(nA).fill(Number.NEGATIVE_INFINITY);
  const full = nA * nB <= ASSIGNMENT_MAX_ENTRIES ? new Float32Array(nA * nB) : null;
  await cosines(a, nA, b, nB, d, (i, row) => {
    for (let j = 0; j < nB; j++)
      if (row[j] > bestCos[i]) {
        bestCos[i] = row[j];
        bestMatch[i] = j;
      }
    full?.set(row, i * nB);
  });
  const out: FeatureMatching = {
    d_in: d,
    features_a: nA,
    features_b: nB,
    best: { ...summary(bestCos), match: bestMatch, cosine: bestCos },
  };
  if (!full) return out;
  let match: number[];
  let method: 'hungarian' | 'greedy';
  if (Math.max(nA, nB) <= HUNGARIAN_MAX) {
    method = 'hungarian';
    // Rows must not outnumber columns: solve on the transpose when B is the smaller side.
    if (nA <= nB)
      match = Array.from(
        hungarian(
          Float64Array.from(full, (c) => -c),
          nA,
          nB,
        ),
      );
    else {
      const t = new Float64Array(nB * nA);
      for (let i = 0; i < nA; i++) for (let j = 0; j < nB; j++) t[j * nA + i] = -full[i * nB + j];
      const colOfB = hungarian(t, nB, nA);
      match = new Array<number>(nA).fill(-1);
      for (let j = 0; j < nB; j++) match[colOfB[j]] = j;
    }
  } else {
    method = 'greedy';
    const order = Array.from({ length: nA * nB }, (_, k) => k).sort((x, y) => full[y] - full[x]);
    match = new Array<number>(nA).fill(-1);
    const taken = new Uint8Array(nB);
    let left = Math.min(nA, nB);
    for (const k of order) {
      if (left === 0) break;
      const i = Math.floor(k / nB);
      const j = k % nB;
      if (match[i] >= 0 || taken[j]) continue;
      match[i] = j;
      taken[j] = 1;
      left--;
    }
  }
  // An unmatched feature of A (A larger than B) has cosine 0 with nothing: it counts as unmatched.
  const cosine = match.map((j, i) => (j >= 0 ? full[i * nB + j] : 0));
  out.one_to_one = { ...summary(cosine), method, match, cosine };
  return out;
}
