/**
 * Trains one SAE: input scaling, b_dec initialisation, the warmed-up sparsity coefficient, dead-latent
 * tracking over a window (which feeds AuxK), the unit-norm decoder kept after each step, and metrics.
 * Everything in-graph is the train-step program (sae.ts); this class holds what lives between steps.
 */
import { Session, type SessionOptions, Trainer, type TrainerOptions } from '@rlmesh/graph';
import { type SaeConfig, saeConfig } from './config';
import { type SaeMetrics, saeMetrics } from './metrics';
import { buildSaeForwardProgram, buildSaeTrainProgram, initialSaeParameters, SAE_BATCH } from './sae';

/** Rows [n, d_in] of activations, row-major. */
export interface Activations {
  data: Float32Array;
  rows: number;
}

export interface SaeStepMetrics {
  loss: number;
  mse_loss: number;
  /** Mean active latents per row on this batch. */
  l0: number;
  /** Latents that have not fired for more than dead_feature_window steps. */
  dead_fraction: number;
  [term: string]: number;
}

/** sqrt(d_in) / mean row norm: the factor that brings inputs to mean norm sqrt(d_in). */
export function normScalingFactor(acts: Activations, dIn: number): number {
  let sum = 0;
  for (let r = 0; r < acts.rows; r++) {
    let s = 0;
    for (let j = 0; j < dIn; j++) s += acts.data[r * dIn + j] ** 2;
    sum += Math.sqrt(s);
  }
  const mean = sum / acts.rows;
  if (!(mean > 0)) throw new Error('activations: every row is zero, so there is no norm to scale to');
  return Math.sqrt(dIn) / mean;
}

export function meanRow(acts: Activations, dIn: number): Float32Array {
  const m = new Float64Array(dIn);
  for (let i = 0; i < acts.rows * dIn; i++) m[i % dIn] += acts.data[i];
  return Float32Array.from(m, (v) => v / acts.rows);
}

/** The geometric median by Weiszfeld's iteration from the mean (what SAELens initialises b_dec with). */
export function geometricMedian(acts: Activations, dIn: number, maxIter = 100, tol = 1e-6): Float32Array {
  let y = Float64Array.from(meanRow(acts, dIn));
  for (let it = 0; it < maxIter; it++) {
    const next = new Float64Array(dIn);
    let wsum = 0;
    for (let r = 0; r < acts.rows; r++) {
      let d2 = 0;
      for (let j = 0; j < dIn; j++) d2 += (acts.data[r * dIn + j] - y[j]) ** 2;
      const w = 1 / Math.max(Math.sqrt(d2), 1e-8);
      wsum += w;
      for (let j = 0; j < dIn; j++) next[j] += w * acts.data[r * dIn + j];
    }
    let move = 0;
    for (let j = 0; j < dIn; j++) {
      next[j] /= wsum;
      move += (next[j] - y[j]) ** 2;
    }
    y = next;
    if (Math.sqrt(move) < tol) break;
  }
  return Float32Array.from(y);
}

function checkActivations(acts: Activations, dIn: number, what: string): void {
  if (!Number.isInteger(acts.rows) || acts.rows < 1) throw new Error(`${what}: rows must be an integer >= 1, got ${acts.rows}`);
  if (acts.data.length !== acts.rows * dIn) throw new Error(`${what}: ${acts.data.length} values is not ${acts.rows} rows of d_in ${dIn}`);
  for (let i = 0; i < acts.data.length; i++)
    if (!Number.isFinite(acts.data[i])) throw new Error(`${what}: value ${i} (row ${Math.floor(i / dIn)}) is ${acts.data[i]}`);
}

export class SaeTrainer {
  private readonly sinceFired: Int32Array;
  private statsSession: Session | null = null;

  private constructor(
    readonly cfg: SaeConfig,
    private readonly trainer: Trainer,
    /** Inputs are multiplied by this before the SAE sees them (1 without normalize_activations). */
    readonly scalingFactor: number,
    private readonly sessionOptions: SessionOptions,
  ) {
    this.sinceFired = new Int32Array(cfg.d_sae);
  }

  /**
   * A trainer at initial weights. `sample` (raw activations) sets the input scaling and b_dec; give
   * enough rows to represent the data (SAELens estimates both from a few batches).
   */
  static async create(config: unknown, sample: Activations, options: TrainerOptions = {}): Promise<SaeTrainer> {
    const cfg = saeConfig(config);
    checkActivations(sample, cfg.d_in, 'sample');
    const scale = cfg.normalize_activations === 'expected_average_only_in' ? normScalingFactor(sample, cfg.d_in) : 1;
    const scaled = { data: Float32Array.from(sample.data, (v) => v * scale), rows: sample.rows };
    const bDec =
      cfg.b_dec_init_method === 'mean'
        ? meanRow(scaled, cfg.d_in)
        : cfg.b_dec_init_method === 'geometric_median'
          ? geometricMedian(scaled, cfg.d_in)
          : undefined;
    const program = buildSaeTrainProgram(cfg);
    const trainer = await Trainer.create(program, initialSaeParameters(cfg, bDec), options);
    const { inWorker: _w, ...sessionOptions } = options;
    return new SaeTrainer(cfg, trainer, scale, sessionOptions);
  }

  get stepCount(): number {
    return this.trainer.stepCount;
  }

  /** Parameters in the scaled input space, by SAELens name (log_threshold for JumpReLU). */
  parameters(): Map<string, Float32Array> {
    return this.trainer.parameters();
  }

  /** The coefficient at SAELens's warm-up: value · min(1, (step + 1) / warm_up_steps). */
  private coefficient(): number {
    const { architecture, l1_coefficient, l1_warm_up_steps, l0_coefficient, l0_warm_up_steps } = this.cfg;
    const [value, warm] = architecture === 'jumprelu' ? [l0_coefficient, l0_warm_up_steps] : [l1_coefficient, l1_warm_up_steps];
    return warm > 0 ? value * Math.min(1, (this.trainer.stepCount + 1) / warm) : value;
  }

  private deadMask(): { mask: Float32Array; dead: number } {
    const mask = new Float32Array(this.cfg.d_sae);
    let dead = 0;
    for (let j = 0; j < mask.length; j++)
      if (this.sinceFired[j] > this.cfg.dead_feature_window) {
        mask[j] = 1;
        dead++;
      }
    return { mask, dead };
  }

  /** One update on a batch of raw activations. */
  async step(batch: Activations, lr = this.cfg.lr): Promise<SaeStepMetrics> {
    checkActivations(batch, this.cfg.d_in, 'batch');
    const x = this.scale(batch.data);
    const { mask, dead } = this.deadMask();
    const kAux = Math.floor(this.cfg.d_in / 2);
    const auxScale = kAux > 0 ? this.cfg.aux_loss_coefficient * Math.min(dead / kAux, 1) : 0;
    // Which latents fire on this batch under the parameters the step starts from: the same forward
    // pass the loss sees, as SAELens counts it.
    const { fired } = await this.run(x, batch.rows, this.trainer.flatParams);
    const m = await this.trainer.step(
      {
        [SAE_BATCH.x]: { data: x, shape: [batch.rows, this.cfg.d_in] },
        [SAE_BATCH.coefficient]: { data: Float32Array.of(this.coefficient()), shape: [] },
        [SAE_BATCH.deadMask]: { data: mask, shape: [this.cfg.d_sae] },
        [SAE_BATCH.auxScale]: { data: Float32Array.of(auxScale), shape: [] },
      },
      lr,
    );
    if (this.cfg.normalize_sae_decoder) this.renormaliseDecoder();
    for (let j = 0; j < fired.length; j++) this.sinceFired[j] = fired[j] > 0 ? 0 : this.sinceFired[j] + 1;
    return { ...m, dead_fraction: this.deadMask().dead / this.cfg.d_sae } as SaeStepMetrics;
  }

  /** Metrics of the current SAE on raw activations (reconstruction compared in the scaled space). */
  async evaluate(acts: Activations, denseThreshold?: number): Promise<SaeMetrics> {
    checkActivations(acts, this.cfg.d_in, 'activations');
    const x = this.scale(acts.data);
    const { sae_out, fired } = await this.run(x, acts.rows, this.trainer.flatParams);
    return saeMetrics({ x, xHat: sae_out, dIn: this.cfg.d_in, fired, denseThreshold });
  }

  private scale(data: Float32Array): Float32Array {
    return this.scalingFactor === 1 ? data : Float32Array.from(data, (v) => v * this.scalingFactor);
  }

  private async run(x: Float32Array, rows: number, params: Float32Array | Float64Array) {
    // This session takes turns with the train step's on the same cores: a spinning idle pool in one
    // starves the other, so it does not spin.
    this.statsSession ??= await Session.create(buildSaeForwardProgram(this.cfg).onnx, { spinning: false, ...this.sessionOptions });
    const out = await this.statsSession.run(
      { params: { data: params, shape: [params.length] }, x: { data: x, shape: [rows, this.cfg.d_in] } },
      ['sae_out', 'fired'],
    );
    return { sae_out: out.sae_out.data as Float32Array, fired: out.fired.data as Float32Array };
  }

  /** Decoder rows back to unit norm after the optimiser step (the projected gradient keeps drift second-order). */
  private renormaliseDecoder(): void {
    const entry = this.trainer.program.layout.entries.find((e) => e.name === 'W_dec');
    if (!entry) throw new Error('W_dec missing from the parameter layout');
    const flat = this.trainer.flatParams;
    const dIn = this.cfg.d_in;
    for (let r = 0; r < this.cfg.d_sae; r++) {
      const at = entry.offset + r * dIn;
      let s = 0;
      for (let j = 0; j < dIn; j++) s += flat[at + j] ** 2;
      const n = Math.sqrt(s);
      if (n > 0) for (let j = 0; j < dIn; j++) flat[at + j] /= n;
    }
  }

  async release(): Promise<void> {
    await this.trainer.release();
    await this.statsSession?.release();
  }
}
