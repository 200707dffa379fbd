/**
 * Trains one SAE on an activation store and measures it: a seeded 10% of the rows (at most 8192) is
 * held out, training draws batches from the rest at random (seeded by the config's seed), and the
 * metrics (metrics.ts, on scaled inputs) and the feature density histogram are taken on the held-out
 * rows. With the store's context, each latent's top-activating rows are kept with their context and
 * the label value most common among them (feature analysis at its simplest).
 */
import { Rng } from '@rlmesh/core';
import type { ActivationStore } from './activation-store';
import { type DensityBin, densityHistogram, type SaeMetrics } from './metrics';
import { foldedWeights, type SaeMetadata, SaeModel, type SaeWeights } from './saelens';
import { type Activations, type SaeStepMetrics, SaeTrainer } from './training';

export interface TrainOptions {
  steps: number;
  batchSize: number;
  onProgress?(step: number, m: SaeStepMetrics): void;
  signal?: AbortSignal;
  /** Progress is reported every this many steps (and at the last). */
  every?: number;
}

export interface FeatureAnalysis {
  /** Firing frequency on the held-out rows. */
  density: number;
  top: { row: number; value: number; context: Record<string, unknown> }[];
  /** "key=value" most common among the top rows' labels, and the fraction carrying it. */
  label?: string;
  label_fraction?: number;
}

export interface TrainedSae {
  weights: SaeWeights;
  metrics: SaeMetrics & { rows: number; density: DensityBin[] };
  analysis: FeatureAnalysis[] | null;
}

const TOP_EXAMPLES = 5;
const CHUNK = 512;

function split(rows: number, seed: number): { train: Int32Array; held: Int32Array } {
  const perm = Int32Array.from({ length: rows }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = rows - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const held = rows < 20 ? 0 : Math.min(8192, Math.floor(rows / 10));
  return { train: held === 0 ? perm : perm.slice(held), held: held === 0 ? perm : perm.slice(0, held) };
}

function gather(store: ActivationStore, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * store.d);
  for (let r = 0; r < idx.length; r++) out.set(store.data.subarray(idx[r] * store.d, (idx[r] + 1) * store.d), r * store.d);
  return out;
}

/** Label candidates of a context record: its `labels` entries, and the action or token it carries. */
function labelsOf(ctx: Record<string, unknown>): string[] {
  const out: string[] = [];
  const labels = ctx.labels;
  if (labels && typeof labels === 'object' && !Array.isArray(labels))
    for (const [k, v] of Object.entries(labels)) if (v !== null && typeof v !== 'object') out.push(`${k}=${v}`);
  for (const k of ['action', 'token']) if (ctx[k] !== undefined) out.push(`${k}=${ctx[k]}`);
  return out;
}

async function analyse(model: SaeModel, store: ActivationStore, fired: Float64Array, heldRows: number): Promise<FeatureAnalysis[]> {
  const dSae = model.weights.cfg.d_sae;
  const top: { row: number; value: number }[][] = Array.from({ length: dSae }, () => []);
  for (let at = 0; at < store.rows; at += CHUNK) {
    const rows = Math.min(CHUNK, store.rows - at);
    const { featureActs } = await model.forward({ data: store.data.subarray(at * store.d, (at + rows) * store.d), rows });
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < dSae; j++) {
        const v = featureActs[r * dSae + j];
        if (v <= 0) continue;
        const list = top[j];
        if (list.length === TOP_EXAMPLES && v <= list[TOP_EXAMPLES - 1].value) continue;
        list.push({ row: at + r, value: v });
        list.sort((a, b) => b.value - a.value);
        if (list.length > TOP_EXAMPLES) list.pop();
      }
  }
  const context = store.context as Record<string, unknown>[];
  return top.map((list, j) => {
    const counts = new Map<string, number>();
    for (const e of list) for (const l of labelsOf(context[e.row])) counts.set(l, (counts.get(l) ?? 0) + 1);
    const best = [...counts].sort((a, b) => b[1] - a[1])[0];
    return {
      density: fired[j] / heldRows,
      top: list.map((e) => ({ ...e, context: context[e.row] })),
      ...(best ? { label: best[0], label_fraction: best[1] / list.length } : {}),
    };
  });
}

/** Trains on `store` with `config` (d_in defaults to the store's width). */
export async function trainOnStore(store: ActivationStore, config: Record<string, unknown>, opts: TrainOptions): Promise<TrainedSae> {
  const cfg: Record<string, unknown> = { d_in: store.d, ...config };
  const seed = typeof cfg.seed === 'number' ? cfg.seed : 42;
  const { train, held } = split(store.rows, seed);
  const sample = train.slice(0, Math.min(train.length, 4096));
  const trainer = await SaeTrainer.create(cfg, { data: gather(store, sample), rows: sample.length });
  if (trainer.cfg.d_in !== store.d) {
    await trainer.release();
    throw new Error(`config d_in ${trainer.cfg.d_in} does not match the activations' width ${store.d}`);
  }
  const rng = new Rng(seed + 1);
  const every = opts.every ?? 50;
  try {
    const batch = new Int32Array(opts.batchSize);
    for (let s = 0; s < opts.steps; s++) {
      if (opts.signal?.aborted) throw new Error('training cancelled');
      for (let i = 0; i < batch.length; i++) batch[i] = train[rng.int(train.length)];
      const m = await trainer.step({ data: gather(store, batch), rows: batch.length });
      if ((s + 1) % every === 0 || s + 1 === opts.steps) opts.onProgress?.(s + 1, m);
    }
    const heldActs = { data: gather(store, held), rows: held.length };
    const { weights, metrics, fired, model } = await measureOnHeldOut(trainer, heldActs, {
      hook_name: store.metadata.hook ?? '',
      model_name: store.metadata.model ?? '',
    });
    try {
      const analysis = store.context ? await analyse(model, store, fired, held.length) : null;
      return { weights, metrics, analysis };
    } finally {
      await model.release();
    }
  } finally {
    await trainer.release();
  }
}

/**
 * The trained SAE folded for raw activations and measured on held-out rows: the metrics, the density
 * histogram, and each latent's firing count; the caller releases the returned model.
 */
export async function measureOnHeldOut(
  trainer: SaeTrainer,
  held: Activations,
  metadata: SaeMetadata,
): Promise<{ weights: SaeWeights; metrics: TrainedSae['metrics']; fired: Float64Array; model: SaeModel }> {
  const d = trainer.cfg.d_in;
  const metrics = await trainer.evaluate(held);
  const weights = foldedWeights(trainer, metadata);
  const model = await SaeModel.create(weights, { intraOpThreads: 1 });
  const fired = new Float64Array(trainer.cfg.d_sae);
  try {
    for (let at = 0; at < held.rows; at += CHUNK) {
      const rows = Math.min(CHUNK, held.rows - at);
      const { featureActs } = await model.forward({ data: held.data.subarray(at * d, (at + rows) * d), rows });
      for (let i = 0; i < featureActs.length; i++) if (featureActs[i] > 0) fired[i % trainer.cfg.d_sae]++;
    }
  } catch (e) {
    await model.release();
    throw e;
  }
  return { weights, metrics: { ...metrics, rows: held.rows, density: densityHistogram(fired, held.rows) }, fired, model };
}
