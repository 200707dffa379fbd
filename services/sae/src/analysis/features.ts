/**
 * Feature analysis of one SAE over an activation store (and optionally OOD stores and a second SAE):
 *   - I(z_j; a | s) per feature (information.ts: plug-in with Miller-Madow, bits), with the state and
 *     action read by row keys (row-keys.ts);
 *   - correlation of each feature with the labels rows carry (correlation.ts), top features per label;
 *   - each feature's top-activating rows with their context (text: the token and a window around it);
 *   - ID vs OOD stability per OOD store (stability.ts);
 *   - matching against a second SAE's decoder (matching.ts).
 * Everything is accumulated in one pass over the store's rows in chunks, so a store larger than
 * rows × d_sae floats is never held as codes.
 */
import type { ActivationStore } from '../activation-store';
import { SaeModel, type SaeWeights } from '../saelens';
import { LabelCorrelator, labelVariables } from './correlation';
import { MutualInformationCounter } from './information';
import { type FeatureMatching, matchFeatures } from './matching';
import { RowKeys } from './row-keys';
import { compareStability, FeatureStats, type StabilityResult } from './stability';

export const MI_ESTIMATOR =
  'plug-in over the discrete (s, a, z) counts with the Miller-Madow correction of each entropy (I = H(Z,S) + H(A,S) - H(Z,A,S) - H(S)), z = the feature active (> 0) or not, in bits';

export interface FeatureAnalysisInput {
  sae: SaeWeights;
  store: ActivationStore;
  ood?: { name: string; store: ActivationStore }[];
  compare?: { name: string; sae: SaeWeights };
  /** Row keys (row-keys.ts); defaults: state `level` and action `action` on episode stores, state `record.family` (or `none`) and action `next_token` on text stores. */
  state?: string;
  action?: string;
  /** `last`: only rows at a text line's last token (its answer position). */
  positions?: 'all' | 'last';
  /** Top-activating rows kept per feature (8). */
  examples?: number;
  /** Tokens shown on each side of an example's token (8). */
  window?: number;
  /** Token ids to text, for examples of text rows. */
  decode?: (ids: number[]) => string;
}

export interface FeatureExample {
  row: number;
  value: number;
  context: Record<string, unknown>;
  /** Text rows: the line's text, and the token with its window. */
  text?: string;
  window?: { before: string; token: string; after: string };
  /** Episode rows: the observation. */
  observation?: number[];
}

export interface FeatureRow {
  feature: number;
  frequency: number;
  mean_active: number;
  mi_bits: number;
  mi_plugin_bits: number;
  /** The label this feature correlates with most strongly, with r. */
  best_label?: { label: string; r: number };
  examples: FeatureExample[];
}

export interface FeaturesReport {
  sae: { d_in: number; d_sae: number; architecture: string; hook: string };
  store: { rows: number; rows_used: number; positions: 'all' | 'last'; hook: string; source: string };
  mutual_information: {
    estimator: string;
    state: string;
    action: string;
    rows: number;
    states: number;
    actions: number;
    cells: number;
    /** H(A | S), plug-in, bits: no feature can carry more. */
    h_action_given_state_bits: number;
    /** Features by I(z; a | s), largest first (the first 50). */
    top: { feature: number; mi_bits: number; frequency: number }[];
  };
  correlations: { label: string; kind: 'numeric' | 'indicator'; rows: number; top: { feature: number; r: number }[] }[];
  stability: StabilityResult[];
  matching?: FeatureMatching & { other: string };
  features: FeatureRow[];
}

const CHUNK = 512;

function defaultKeys(keys: RowKeys): { state: string; action: string } {
  const ctx = keys.context(0);
  if (typeof ctx.position === 'number')
    return { state: keys.records.of(ctx)?.family !== undefined ? 'record.family' : 'none', action: 'next_token' };
  // Not the observation: the features are a function of it, so I(z; a | obs) is 0 for every feature
  // of a deterministic network; the task context (the curriculum level) is what they may not explain.
  return { state: ctx.level !== undefined ? 'level' : 'none', action: 'action' };
}

function selectRows(store: ActivationStore, positions: 'all' | 'last', what: string): Int32Array {
  if (positions === 'all') return Int32Array.from({ length: store.rows }, (_, i) => i);
  if (!store.context || typeof store.context[0]?.position !== 'number')
    throw new Error(`positions last: ${what} rows are not token positions of text lines`);
  const ctx = store.context;
  return Int32Array.from(ctx.flatMap((c, i) => (c.last === true ? [i] : [])));
}

/** Runs the SAE over `rows` of `store` in chunks; `each(row, indices, values)` sees each row's nonzero codes. */
async function encodeRows(
  model: SaeModel,
  store: ActivationStore,
  rows: Int32Array,
  each: (row: number, indices: Int32Array, values: Float32Array) => void,
): Promise<void> {
  const d = store.d;
  const dSae = model.weights.cfg.d_sae;
  const idx = new Int32Array(dSae);
  const val = new Float32Array(dSae);
  for (let at = 0; at < rows.length; at += CHUNK) {
    const n = Math.min(CHUNK, rows.length - at);
    const x = new Float32Array(n * d);
    for (let r = 0; r < n; r++) x.set(store.data.subarray(rows[at + r] * d, (rows[at + r] + 1) * d), r * d);
    const { featureActs } = await model.forward({ data: x, rows: n });
    for (let r = 0; r < n; r++) {
      let k = 0;
      for (let j = 0; j < dSae; j++) {
        const v = featureActs[r * dSae + j];
        if (v > 0) {
          idx[k] = j;
          val[k++] = v;
        }
      }
      each(rows[at + r], idx.subarray(0, k), val.subarray(0, k));
    }
  }
}

/** Keeps each feature's `k` largest activations (row, value), largest first. */
class TopRows {
  private readonly lists: { row: number; value: number }[][];
  constructor(
    dSae: number,
    readonly k: number,
  ) {
    this.lists = Array.from({ length: dSae }, () => []);
  }
  add(row: number, indices: ArrayLike<number>, values: ArrayLike<number>): void {
    for (let i = 0; i < indices.length; i++) {
      const list = this.lists[indices[i]];
      const v = values[i];
      if (list.length === this.k && v <= list[this.k - 1].value) continue;
      let p = list.length;
      while (p > 0 && list[p - 1].value < v) p--;
      list.splice(p, 0, { row, value: v });
      if (list.length > this.k) list.pop();
    }
  }
  of(j: number): { row: number; value: number }[] {
    return this.lists[j];
  }
}

function example(keys: RowKeys, lengths: Map<string, number>, row: number, value: number, input: FeatureAnalysisInput): FeatureExample {
  const context = keys.context(row);
  const obs = keys.observation(row);
  const out: FeatureExample = { row, value, context };
  if (typeof context.position === 'number' && obs) {
    const p = context.position;
    const len = lengths.get(`${context.source}:${context.line}`) ?? obs.length;
    const ids = Array.from(obs.subarray(0, len));
    const w = input.window ?? 8;
    const decode = input.decode ?? ((t: number[]) => t.map((x) => `<${x}>`).join(''));
    out.text = decode(ids);
    out.window = { before: decode(ids.slice(Math.max(0, p - w), p)), token: decode([ids[p]]), after: decode(ids.slice(p + 1, p + 1 + w)) };
  } else if (obs) out.observation = Array.from(obs);
  return out;
}

export async function analyseFeatures(input: FeatureAnalysisInput): Promise<FeaturesReport> {
  const { sae, store } = input;
  const { d_in, d_sae } = sae.cfg;
  const hook = store.metadata.hook ?? '';
  if (store.d !== d_in) throw new Error(`activations: the store's rows have ${store.d} values, the SAE reads d_in ${d_in}`);
  for (const o of input.ood ?? []) {
    if (o.store.d !== d_in) throw new Error(`ood ${o.name}: rows have ${o.store.d} values, the SAE reads d_in ${d_in}`);
    if ((o.store.metadata.hook ?? '') !== hook)
      throw new Error(`ood ${o.name}: captured at hook ${JSON.stringify(o.store.metadata.hook)}, the ID store at ${JSON.stringify(hook)}`);
  }
  if (input.compare && input.compare.sae.cfg.d_in !== d_in)
    throw new Error(`compare ${input.compare.name}: d_in ${input.compare.sae.cfg.d_in}, this SAE's is ${d_in}`);
  const positions = input.positions ?? 'all';
  const keys = new RowKeys(store);
  const defaults = defaultKeys(keys);
  const stateKey = input.state ?? defaults.state;
  const actionKey = input.action ?? defaults.action;
  keys.check(stateKey, 'state');
  keys.check(actionKey, 'action');
  const rows = selectRows(store, positions, 'the store');
  if (rows.length === 0) throw new Error('no rows to analyse');

  // Labels: the row's labels, its action or token, and its data line's rule family.
  const records = Array.from(rows, (r) => {
    const ctx = keys.context(r);
    const rec = keys.records.of(ctx);
    const labels = ctx.labels && typeof ctx.labels === 'object' ? { ...(ctx.labels as Record<string, unknown>) } : {};
    for (const k of ['action', 'token']) if (ctx[k] !== undefined) labels[k] = ctx[k];
    if (rec?.family !== undefined) labels.family = rec.family;
    return labels;
  });
  const variables = labelVariables(records);
  const slot = new Map<number, number>();
  for (const [i, r] of rows.entries()) slot.set(r, i);
  const lengths = new Map<string, number>();
  for (const c of store.context ?? [])
    if (c.last === true && typeof c.position === 'number') lengths.set(`${c.source}:${c.line}`, c.position + 1);

  const model = await SaeModel.create(sae, { intraOpThreads: 1 });
  const mi = new MutualInformationCounter(d_sae);
  const correlator = new LabelCorrelator(variables, d_sae);
  const stats = new FeatureStats(d_sae);
  const top = new TopRows(d_sae, input.examples ?? 8);
  const stability: StabilityResult[] = [];
  try {
    await encodeRows(model, store, rows, (row, idx, val) => {
      const s = keys.value(stateKey, row);
      const a = keys.value(actionKey, row);
      if (s !== null && a !== null) mi.add(s, a, idx);
      correlator.add(slot.get(row) as number, idx, val);
      stats.add(idx, val);
      top.add(row, idx, val);
    });
    for (const o of input.ood ?? []) {
      const oodStats = new FeatureStats(d_sae);
      await encodeRows(model, o.store, selectRows(o.store, positions, `ood ${o.name}`), (_r, idx, val) => oodStats.add(idx, val));
      stability.push(compareStability(o.name, stats, oodStats));
    }
  } finally {
    await model.release();
  }

  const { mi: miBits, miPlugin, hActionGivenState } = mi.result();
  const r = correlator.result();
  const correlations = variables.map((v, l) => {
    const order = Array.from({ length: d_sae }, (_, j) => j).sort((x, y) => Math.abs(r[l * d_sae + y]) - Math.abs(r[l * d_sae + x]));
    return {
      label: v.name,
      kind: v.kind,
      rows: correlator.rowsOf(l),
      top: order.slice(0, 10).map((j) => ({ feature: j, r: r[l * d_sae + j] })),
    };
  });
  const features: FeatureRow[] = Array.from({ length: d_sae }, (_, j) => {
    let best: { label: string; r: number } | undefined;
    for (let l = 0; l < variables.length; l++) {
      const v = r[l * d_sae + j];
      if (v !== 0 && (!best || Math.abs(v) > Math.abs(best.r))) best = { label: variables[l].name, r: v };
    }
    return {
      feature: j,
      frequency: stats.frequency(j),
      mean_active: stats.meanActive(j),
      mi_bits: miBits[j],
      mi_plugin_bits: miPlugin[j],
      ...(best ? { best_label: best } : {}),
      examples: top.of(j).map((e) => example(keys, lengths, e.row, e.value, input)),
    };
  });
  const byMi = Array.from({ length: d_sae }, (_, j) => j).sort((x, y) => miBits[y] - miBits[x]);
  let matching: FeaturesReport['matching'];
  if (input.compare) {
    const other = input.compare.sae;
    const m = await matchFeatures(
      sae.params.get('W_dec') as Float32Array,
      d_sae,
      other.params.get('W_dec') as Float32Array,
      other.cfg.d_sae,
      d_in,
    );
    matching = { other: input.compare.name, ...m };
  }
  return {
    sae: { d_in, d_sae, architecture: sae.cfg.architecture, hook: String(sae.metadata.hook_name ?? hook) },
    store: { rows: store.rows, rows_used: rows.length, positions, hook, source: store.metadata.source ?? '' },
    mutual_information: {
      estimator: MI_ESTIMATOR,
      state: stateKey,
      action: actionKey,
      rows: mi.rows,
      states: mi.states,
      actions: mi.actions,
      cells: mi.cells,
      h_action_given_state_bits: hActionGivenState,
      top: byMi.slice(0, 50).map((j) => ({ feature: j, mi_bits: miBits[j], frequency: stats.frequency(j) })),
    },
    correlations,
    stability,
    ...(matching ? { matching } : {}),
    features,
  };
}
