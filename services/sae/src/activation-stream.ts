/**
 * Training an SAE that follows a run: activation batches arrive on rlmesh.activations.<run>.<hook>
 * (published by the learner; @rlmesh/mesh activations.ts) and fill a buffer of the most recent rows,
 * from which training draws its batches, as an activation store does from its file:
 *   1. a seeded tenth of all rows that arrive is held out for the final metrics (a uniform reservoir
 *      of at most 8192, so it spans the whole run); of the rest, the first `warmupRows` set the input
 *      scaling and b_dec (SaeTrainer.create) before the first step;
 *   2. each step draws `batchSize` rows at random from the buffer (the last `bufferRows` rows seen),
 *      while batches keep arriving, so later policy versions replace earlier ones in what it sees;
 *   3. after `steps` steps, the SAE is measured on the held-out rows (train-store.ts measureOnHeldOut).
 * Each follow reads the subject from the oldest batch the stream still holds (a run that has ended
 * can be followed too) through a consumer of its own, removed when the follow ends: a second SAE on
 * the same run sees the same batches, and no consumer is left behind.
 */
import { randomBytes } from 'node:crypto';
import { Rng } from '@rlmesh/core';
import { type Bus, decodeActivationBatch, HOOK_SUBJECT_PATTERN, RUN_ID_PATTERN, subjects } from '@rlmesh/mesh';
import { measureOnHeldOut, type TrainedSae } from './train-store';
import { type SaeStepMetrics, SaeTrainer } from './training';

export interface FollowOptions {
  run: string;
  hook: string;
  /** The SAE config (SAELens's keys); d_in defaults to the batches' width. */
  config: Record<string, unknown>;
  steps: number;
  batchSize: number;
  /** Rows (besides the held-out ones) gathered before the first step (4096). */
  warmupRows?: number;
  /** Rows kept to draw batches from (65,536): the most recent ones. */
  bufferRows?: number;
  /** The consumer's name (default: sae-<run>-<hook>-<random>); removed when the follow ends. */
  durable?: string;
  /** Gives up when no batch has arrived for this long before the warm-up is complete (120 s). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?(step: number, m: SaeStepMetrics, stream: StreamProgress): void;
  every?: number;
}

export interface StreamProgress {
  rows: number;
  batches: number;
  /** Policy versions seen, lowest and highest. */
  versions: [number, number];
}

export interface FollowedSae extends TrainedSae {
  stream: StreamProgress & { subject: string; d: number };
}

/** A ring of the most recent rows of width d. */
class RowRing {
  readonly data: Float32Array;
  private next = 0;
  size = 0;
  constructor(
    readonly capacity: number,
    readonly d: number,
  ) {
    this.data = new Float32Array(capacity * d);
  }
  push(rows: Float32Array, n: number): void {
    for (let r = 0; r < n; r++) {
      this.data.set(rows.subarray(r * this.d, (r + 1) * this.d), this.next * this.d);
      this.next = (this.next + 1) % this.capacity;
      this.size = Math.min(this.capacity, this.size + 1);
    }
  }
  sample(rng: Rng, n: number): Float32Array {
    const out = new Float32Array(n * this.d);
    for (let i = 0; i < n; i++) {
      const r = rng.int(this.size);
      out.set(this.data.subarray(r * this.d, (r + 1) * this.d), i * this.d);
    }
    return out;
  }
}

/** A consumer name of its own for one follow (NATS names take no dots). */
export function followDurable(run: string, hook: string): string {
  return `sae-${run}-${hook.replace(/\./g, '_')}-${randomBytes(4).toString('hex')}`;
}

export async function trainFromStream(bus: Bus, opts: FollowOptions): Promise<FollowedSae> {
  if (!RUN_ID_PATTERN.test(opts.run)) throw new Error(`run: must match ${RUN_ID_PATTERN}, got ${JSON.stringify(opts.run)}`);
  if (!HOOK_SUBJECT_PATTERN.test(opts.hook)) throw new Error(`hook: ${JSON.stringify(opts.hook)} is not a hook name`);
  const warmup = opts.warmupRows ?? 4096;
  const heldRows = 8192;
  const subject = subjects.activations(opts.run, opts.hook);
  const progress: StreamProgress = { rows: 0, batches: 0, versions: [Number.POSITIVE_INFINITY, 0] };
  let d = 0;
  let ring: RowRing | undefined;
  const split = new Rng(typeof opts.config.seed === 'number' ? opts.config.seed : 42);
  const held: Float32Array[] = [];
  let heldSeen = 0;
  const sample: Float32Array[] = [];
  let sampleCount = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  let lastBatchAt = Date.now();
  const durable = opts.durable ?? followDurable(opts.run, opts.hook);
  const sub = await bus.consume({ subject, durable }, async (m) => {
    let b: ReturnType<typeof decodeActivationBatch>;
    try {
      b = decodeActivationBatch(m.data, m.headers);
    } catch (e) {
      failure ??= new Error(`${subject}: ${(e as Error).message}`);
      m.term();
      wake?.();
      return;
    }
    if (d === 0) {
      d = b.d;
      ring = new RowRing(opts.bufferRows ?? 65_536, d);
    } else if (b.d !== d) failure ??= new Error(`${subject}: a batch of width ${b.d} after batches of width ${d}`);
    if (b.d === d) {
      for (let r = 0; r < b.rows; r++) {
        const row = b.data.subarray(r * d, (r + 1) * d);
        // A tenth of the rows, over the whole stream, are held-out candidates (a uniform reservoir of
        // them is kept), so the final metrics cover late versions as well as early ones.
        if (split.uniform() < 0.1) {
          heldSeen++;
          if (held.length < heldRows) held.push(row.slice());
          else {
            const j = split.int(heldSeen);
            if (j < heldRows) held[j] = row.slice();
          }
          continue;
        }
        if (sampleCount < warmup) {
          sample.push(row.slice());
          sampleCount++;
        }
        ring?.push(row, 1);
      }
      progress.rows += b.rows;
      progress.batches++;
      progress.versions = [Math.min(progress.versions[0], b.version), Math.max(progress.versions[1], b.version)];
    }
    lastBatchAt = Date.now();
    m.ack();
    wake?.();
  });
  const concat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((t, p) => t + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  let trainer: SaeTrainer | undefined;
  try {
    const idle = opts.idleTimeoutMs ?? 120_000;
    while (!failure && sampleCount < warmup) {
      if (opts.signal?.aborted) throw new Error('training cancelled');
      if (Date.now() - lastBatchAt > idle)
        throw new Error(
          `${subject}: no activation batch for ${(idle / 1000).toFixed(1)} s (${progress.rows} of ${warmup} warm-up rows so far)`,
        );
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
    if (failure) throw failure;
    const sampleData = concat(sample);
    trainer = await SaeTrainer.create({ d_in: d, ...opts.config }, { data: sampleData, rows: sampleData.length / d });
    if (trainer.cfg.d_in !== d) throw new Error(`config d_in ${trainer.cfg.d_in} does not match the stream's width ${d}`);
    const rng = new Rng((typeof opts.config.seed === 'number' ? opts.config.seed : 42) + 1);
    const every = opts.every ?? 50;
    for (let s = 0; s < opts.steps; s++) {
      if (opts.signal?.aborted) throw new Error('training cancelled');
      if (failure) throw failure;
      const m = await trainer.step({ data: (ring as RowRing).sample(rng, opts.batchSize), rows: opts.batchSize });
      if ((s + 1) % every === 0 || s + 1 === opts.steps) opts.onProgress?.(s + 1, m, progress);
    }
    if (held.length === 0) throw new Error(`${subject}: no row was held out for the metrics (${progress.rows} rows seen)`);
    const heldData = concat(held);
    const { weights, metrics, model } = await measureOnHeldOut(
      trainer,
      { data: heldData, rows: heldData.length / d },
      { hook_name: opts.hook, model_name: `rlmesh run ${opts.run}` },
    );
    await model.release();
    return { weights, metrics, analysis: null, stream: { ...progress, subject, d } };
  } finally {
    await sub.stop();
    await bus.deleteConsumer(durable);
    await trainer?.release();
  }
}
