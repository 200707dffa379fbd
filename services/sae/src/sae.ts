/**
 * A sparse autoencoder as a graph Module, and its two programs: the train step and a forward pass
 * (codes, reconstruction, per-latent firing counts). Parameter names and layouts are SAELens's:
 * W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in], and for JumpReLU the trained
 * log_threshold [d_sae] (saved as threshold = exp(log_threshold)).
 *
 *   sae_in     = x − b_dec                         (when apply_b_dec_to_input)
 *   hidden_pre = sae_in · W_enc + b_enc
 *   standard:  a = relu(hidden_pre)
 *   topk:      a = relu(hidden_pre) on the k largest pre-activations of each row, 0 elsewhere
 *   jumprelu:  a = hidden_pre · H(hidden_pre − θ),  θ = exp(log_threshold)
 *   sae_out    = a · W_dec + b_dec
 *
 * Losses (per row summed over d_in, then averaged over the batch, as SAELens):
 *   mse_loss   = mean_b ‖x − sae_out‖²
 *   standard:  l1_loss = mean_b ‖a ⊙ ‖W_dec‖_rows‖_p · c_t         (c_t: the warmed-up coefficient)
 *   topk:      auxiliary_reconstruction_loss = s · mean_b ‖decode(aux) − stop(x − sae_out)‖²,
 *              aux = the top min(d_in/2, n_dead) pre-activations among dead latents, s = aux coef · min(n_dead/(d_in/2), 1)
 *   jumprelu:  l0_loss = c_t · mean_b Σ_j H(hidden_pre − θ)         (straight-through θ gradient)
 */
import { Rng } from '@rlmesh/core';
import {
  add,
  affine,
  buildForwardProgram,
  buildTrainProgram,
  cast,
  exp,
  type Graph,
  greater,
  greaterOrEqual,
  heavisideStep,
  type InputSpec,
  init,
  jumpRelu,
  logicalAnd,
  Module,
  mul,
  type ParamLayout,
  pow,
  reduceMean,
  reduceSum,
  relu,
  slice,
  sqrt,
  stopGradient,
  sub,
  type TrainProgram,
  topk,
  unitNormRows,
  type Value,
  where,
} from '@rlmesh/graph';
import type { SaeConfig } from './config';

export class SparseAutoencoder extends Module {
  constructor(readonly cfg: SaeConfig) {
    super();
    const { d_in, d_sae } = cfg;
    // Real initial values come from initialSaeParameters (the encoder starts as the decoder's
    // transpose, which per-parameter initialisers cannot express); these only fix the shapes.
    this.register('W_enc', [d_in, d_sae], () => init.zeros([d_in, d_sae]));
    this.register('b_enc', [d_sae], () => init.zeros([d_sae]));
    this.register('W_dec', [d_sae, d_in], () => init.zeros([d_sae, d_in]));
    this.register('b_dec', [d_in], () => init.zeros([d_in]));
    if (cfg.architecture === 'jumprelu') this.register('log_threshold', [d_sae], () => init.zeros([d_sae]));
  }

  /** W_dec as the decoder uses it: under normalize_sae_decoder its gradient stays tangent to the unit rows. */
  private decoderWeight(): Value {
    const w = this.param('W_dec');
    return this.cfg.normalize_sae_decoder ? unitNormRows(w) : w;
  }

  hiddenPre(x: Value): Value {
    const sae_in = this.cfg.apply_b_dec_to_input ? sub(x, this.param('b_dec')) : x;
    return affine(sae_in, this.param('W_enc'), this.param('b_enc'));
  }

  threshold(): Value {
    return exp(this.param('log_threshold'));
  }

  activate(hiddenPre: Value): Value {
    switch (this.cfg.architecture) {
      case 'standard':
        return relu(hiddenPre);
      case 'topk':
        return mul(relu(hiddenPre), keepTopK(hiddenPre, this.cfg.k));
      case 'jumprelu':
        return jumpRelu(hiddenPre, this.threshold(), this.cfg.jumprelu_bandwidth);
    }
  }

  decode(acts: Value): Value {
    return affine(acts, this.decoderWeight(), this.param('b_dec'));
  }

  /** The training losses and logged terms for a batch `x` [batch, d_in] (already scaled). */
  losses(x: Value, coef: Value, deadMask: Value, auxScale: Value): { loss: Value; metrics: Record<string, Value> } {
    const pre = this.hiddenPre(x);
    const acts = this.activate(pre);
    const out = this.decode(acts);
    const mse_loss = reduceMean(reduceSum(square(sub(out, x)), [1]));
    const l0 = reduceMean(reduceSum(cast(greater(acts, 0), x.dtype), [1]));
    const metrics: Record<string, Value> = { mse_loss, l0 };
    let loss = mse_loss;
    switch (this.cfg.architecture) {
      case 'standard': {
        const weighted = this.cfg.scale_sparsity_penalty_by_decoder_norm
          ? mul(acts, sqrt(reduceSum(square(this.param('W_dec')), [1])))
          : acts;
        // acts >= 0, so the p-norm needs no abs; p = 1 is a plain sum.
        const p = this.cfg.lp_norm;
        const norm = p === 1 ? reduceSum(weighted, [1]) : pow(reduceSum(pow(weighted, p), [1]), 1 / p);
        metrics.l1_loss = mul(reduceMean(norm), coef);
        loss = add(loss, metrics.l1_loss);
        break;
      }
      case 'topk': {
        metrics.auxiliary_reconstruction_loss = mul(this.auxKLoss(x, out, pre, deadMask), auxScale);
        loss = add(loss, metrics.auxiliary_reconstruction_loss);
        break;
      }
      case 'jumprelu': {
        const steps = heavisideStep(pre, this.threshold(), this.cfg.jumprelu_bandwidth);
        metrics.l0_loss = mul(reduceMean(reduceSum(steps, [1])), coef);
        loss = add(loss, metrics.l0_loss);
        break;
      }
    }
    return { loss, metrics };
  }

  /**
   * AuxK (Gao et al. 2024): the dead latents' largest pre-activations reconstruct what the live ones
   * missed. Live latents are set to −inf before the top-k, and a pick is kept only if it is dead, so
   * with fewer dead latents than k_aux exactly the dead ones are used (SAELens's k_aux = min(k_aux, n_dead)).
   */
  private auxKLoss(x: Value, out: Value, pre: Value, deadMask: Value): Value {
    const kAux = Math.min(Math.floor(this.cfg.d_in / 2), this.cfg.d_sae);
    if (kAux < 1) return mul(reduceSum(x), 0);
    const dead = greater(deadMask, 0.5);
    const masked = where(dead, pre, Number.NEGATIVE_INFINITY);
    const picked = logicalAnd(greaterOrEqual(masked, kthLargest(masked, kAux)), dead);
    const auxActs = where(picked, pre, 0);
    const residual = stopGradient(sub(x, out));
    return reduceMean(reduceSum(square(sub(this.decode(auxActs), residual)), [1]));
  }
}

const square = (v: Value) => mul(v, v);

/** The k-th largest value of each row [batch, n] as [batch, 1], with no gradient (it only selects). */
function kthLargest(x: Value, k: number): Value {
  const { values } = topk(stopGradient(x), k, -1);
  return slice(values, [k - 1], [k], [1]);
}

/** 1 on each row's k largest entries, else 0: a selection, so it carries no gradient. */
function keepTopK(x: Value, k: number): Value {
  return cast(greaterOrEqual(x, kthLargest(x, k)), x.dtype);
}

/**
 * Initial parameters in SAELens's way: decoder rows drawn Kaiming-uniform then scaled to
 * decoder_init_norm, the encoder their transpose, then (under normalize_sae_decoder) the decoder rows
 * alone brought to unit norm; b_enc = 0,
 * JumpReLU thresholds at jumprelu_init_threshold, b_dec as given (the data's mean or geometric median).
 */
export function initialSaeParameters(cfg: SaeConfig, bDec?: Float32Array, rng = new Rng(cfg.seed)): Map<string, Float32Array> {
  const { d_in, d_sae } = cfg;
  const wDec = init.kaimingUniform([d_sae, d_in], rng);
  const scaleRows = (norm: number) => {
    for (let r = 0; r < d_sae; r++) {
      const row = wDec.subarray(r * d_in, (r + 1) * d_in);
      const n = Math.hypot(...row) || 1;
      for (let j = 0; j < d_in; j++) row[j] *= norm / n;
    }
  };
  scaleRows(cfg.decoder_init_norm);
  const wEnc = new Float32Array(d_in * d_sae);
  for (let r = 0; r < d_sae; r++) for (let j = 0; j < d_in; j++) wEnc[j * d_sae + r] = wDec[r * d_in + j];
  // The encoder keeps the small initial norm; only the decoder goes to the unit sphere, as SAELens orders it.
  if (cfg.normalize_sae_decoder) scaleRows(1);
  if (bDec && bDec.length !== d_in) throw new Error(`b_dec has ${bDec.length} values, d_in is ${d_in}`);
  const params = new Map<string, Float32Array>([
    ['W_enc', wEnc],
    ['b_enc', new Float32Array(d_sae)],
    ['W_dec', wDec],
    ['b_dec', bDec ? Float32Array.from(bDec) : new Float32Array(d_in)],
  ]);
  if (cfg.architecture === 'jumprelu') params.set('log_threshold', new Float32Array(d_sae).fill(Math.log(cfg.jumprelu_init_threshold)));
  return params;
}

/** Batch inputs of the train step besides `x`: the scalars and mask the host computes each step. */
export const SAE_BATCH = {
  x: 'x',
  /** The sparsity coefficient after warm-up (L1 for standard, L0 for jumprelu). */
  coefficient: 'coefficient',
  /** 1 for latents dead over the window, else 0 [d_sae] (topk's AuxK reads it). */
  deadMask: 'dead_mask',
  /** aux_loss_coefficient · min(n_dead / k_aux, 1) (topk). */
  auxScale: 'aux_scale',
} as const;

export function buildSaeTrainProgram(cfg: SaeConfig): TrainProgram {
  const sae = new SparseAutoencoder(cfg);
  const batch: InputSpec[] = [
    { name: SAE_BATCH.x, dtype: 'float32', shape: ['batch', cfg.d_in] },
    { name: SAE_BATCH.coefficient, dtype: 'float32', shape: [] },
    { name: SAE_BATCH.deadMask, dtype: 'float32', shape: [cfg.d_sae] },
    { name: SAE_BATCH.auxScale, dtype: 'float32', shape: [] },
  ];
  return buildTrainProgram({
    module: sae,
    batch,
    optimizer: { kind: 'adam', beta1: cfg.adam_beta1, beta2: cfg.adam_beta2 },
    loss: (b) => sae.losses(b.x, b.coefficient, b.dead_mask, b.aux_scale),
    name: `sae_${cfg.architecture}_train_step`,
  });
}

/**
 * The forward pass with flat parameters: feature_acts [batch, d_sae], sae_out [batch, d_in] and
 * fired [d_sae] (how many rows each latent fired on), the last for dead-latent tracking.
 */
export function buildSaeForwardProgram(cfg: SaeConfig): { onnx: Uint8Array; layout: ParamLayout } {
  const sae = new SparseAutoencoder(cfg);
  return buildForwardProgram({
    module: sae,
    inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', cfg.d_in] }],
    forward: ({ x }, _g: Graph) => {
      const acts = sae.activate(sae.hiddenPre(x));
      return { feature_acts: acts, sae_out: sae.decode(acts), fired: reduceSum(cast(greater(acts, 0), 'float32'), [0]) };
    },
    name: `sae_${cfg.architecture}_forward`,
  });
}
