/**
 * SAEs on disk in SAELens's layout, so its users load what rlmesh trains (and the reverse):
 *   <dir>/sae_weights.safetensors  W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc [d_sae], b_dec [d_in]
 *                                  (+ threshold [d_sae] for jumprelu), float32
 *   <dir>/cfg.json                 architecture, d_in, d_sae, dtype, device, apply_b_dec_to_input,
 *                                  normalize_activations, reshape_activations, metadata (+ k for topk)
 * Weights are saved for raw activations: the training-time input scaling is folded in, as SAELens
 * does before saving (W_enc · s, W_dec / s, b_dec / s), so cfg says normalize_activations "none".
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSafetensors, ParamLayout, type SafeTensor, Session, type SessionOptions, saveSafetensors } from '@rlmesh/graph';
import { type SaeConfig, saeConfig } from './config';
import { buildSaeForwardProgram, SparseAutoencoder } from './sae';
import type { Activations, SaeTrainer } from './training';

export const SAE_WEIGHTS_FILENAME = 'sae_weights.safetensors';
export const SAE_CFG_FILENAME = 'cfg.json';

/** Where the activations came from; SAELens keeps these under cfg.metadata. */
export interface SaeMetadata {
  model_name?: string;
  hook_name?: string;
  [key: string]: unknown;
}

/** An SAE ready to use on raw activations: config and weights under PyTorch/SAELens names. */
export interface SaeWeights {
  cfg: SaeConfig;
  /** W_enc, b_enc, W_dec, b_dec, and log_threshold for jumprelu (the module's parameter). */
  params: Map<string, Float32Array>;
  metadata: SaeMetadata;
}

/** The trainer's SAE with its input scaling folded into the weights. */
export function foldedWeights(trainer: SaeTrainer, metadata: SaeMetadata = {}): SaeWeights {
  const s = trainer.scalingFactor;
  const params = trainer.parameters();
  const scaled = (name: string, by: number) => Float32Array.from(params.get(name) as Float32Array, (v) => v * by);
  params.set('W_enc', scaled('W_enc', s));
  params.set('W_dec', scaled('W_dec', 1 / s));
  params.set('b_dec', scaled('b_dec', 1 / s));
  // Decoder rows are no longer unit norm once scaled, so the saved SAE does not claim they are.
  const cfg = { ...trainer.cfg, normalize_activations: 'none' as const, normalize_sae_decoder: false };
  return { cfg, params, metadata };
}

export function saeLensConfig(w: SaeWeights): Record<string, unknown> {
  const { cfg } = w;
  return {
    architecture: cfg.architecture,
    d_in: cfg.d_in,
    d_sae: cfg.d_sae,
    dtype: 'float32',
    device: 'cpu',
    apply_b_dec_to_input: cfg.apply_b_dec_to_input,
    normalize_activations: cfg.normalize_activations,
    reshape_activations: 'none',
    ...(cfg.architecture === 'topk' ? { k: cfg.k } : {}),
    metadata: { ...w.metadata },
    // SAELens ignores keys it does not know; rlmesh reads its full training config back from here.
    rlmesh_training: cfg,
  };
}

export async function saveSaeLens(dir: string, w: SaeWeights): Promise<void> {
  const { d_in, d_sae } = w.cfg;
  const get = (name: string) => {
    const v = w.params.get(name);
    if (!v) throw new Error(`save: parameter ${name} missing`);
    return v;
  };
  const f32 = (data: Float32Array, shape: number[]): SafeTensor => ({ dtype: 'F32', shape, data });
  const tensors: Record<string, SafeTensor> = {
    W_enc: f32(get('W_enc'), [d_in, d_sae]),
    W_dec: f32(get('W_dec'), [d_sae, d_in]),
    b_enc: f32(get('b_enc'), [d_sae]),
    b_dec: f32(get('b_dec'), [d_in]),
  };
  if (w.cfg.architecture === 'jumprelu') tensors.threshold = f32(get('log_threshold').map(Math.exp), [d_sae]);
  await mkdir(dir, { recursive: true });
  await saveSafetensors(join(dir, SAE_WEIGHTS_FILENAME), tensors);
  await writeFile(join(dir, SAE_CFG_FILENAME), `${JSON.stringify(saeLensConfig(w), null, 2)}\n`);
}

/** Reads an SAE in SAELens's layout (one rlmesh wrote, or SAELens itself for these architectures). */
export async function loadSaeLens(dir: string): Promise<SaeWeights> {
  const raw = JSON.parse(await readFile(join(dir, SAE_CFG_FILENAME), 'utf8')) as Record<string, unknown>;
  const training = (raw.rlmesh_training ?? {}) as Record<string, unknown>;
  const cfg = saeConfig({
    ...training,
    architecture: raw.architecture,
    d_in: raw.d_in,
    d_sae: raw.d_sae,
    apply_b_dec_to_input: raw.apply_b_dec_to_input ?? true,
    ...(raw.architecture === 'topk' ? { k: raw.k } : {}),
    normalize_activations: 'none',
    normalize_sae_decoder: false,
  });
  if (raw.normalize_activations !== undefined && raw.normalize_activations !== 'none')
    throw new Error(
      `${SAE_CFG_FILENAME}: normalize_activations ${JSON.stringify(raw.normalize_activations)} is not supported; fold it into the weights first`,
    );
  const file = await loadSafetensors(join(dir, SAE_WEIGHTS_FILENAME));
  const want: Record<string, number[]> = {
    W_enc: [cfg.d_in, cfg.d_sae],
    W_dec: [cfg.d_sae, cfg.d_in],
    b_enc: [cfg.d_sae],
    b_dec: [cfg.d_in],
    ...(cfg.architecture === 'jumprelu' ? { threshold: [cfg.d_sae] } : {}),
  };
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of Object.entries(want)) {
    const t = file.tensors[name];
    if (!t) throw new Error(`${SAE_WEIGHTS_FILENAME}: tensor ${name} missing`);
    if (t.dtype !== 'F32' || t.shape.join(',') !== shape.join(','))
      throw new Error(`${SAE_WEIGHTS_FILENAME}: ${name} must be F32 [${shape}], got ${t.dtype} [${t.shape}]`);
    const data = t.data as Float32Array;
    if (name === 'threshold') params.set('log_threshold', data.map(Math.log));
    else params.set(name, data);
  }
  return { cfg, params, metadata: (raw.metadata ?? {}) as SaeMetadata };
}

/** Encodes and reconstructs raw activations with saved weights (one ONNX session). */
export class SaeModel {
  private constructor(
    readonly weights: SaeWeights,
    private readonly session: Session,
    private readonly flat: Float32Array,
  ) {}

  static async create(weights: SaeWeights, options: SessionOptions = {}): Promise<SaeModel> {
    const { onnx } = buildSaeForwardProgram(weights.cfg);
    const flat = new ParamLayout(new SparseAutoencoder(weights.cfg)).pack(weights.params);
    return new SaeModel(weights, await Session.create(onnx, options), flat);
  }

  /** Codes [rows, d_sae] and reconstructions [rows, d_in]. */
  async forward(acts: Activations): Promise<{ featureActs: Float32Array; saeOut: Float32Array }> {
    const { d_in } = this.weights.cfg;
    if (acts.data.length !== acts.rows * d_in)
      throw new Error(`activations: ${acts.data.length} values is not ${acts.rows} rows of d_in ${d_in}`);
    const out = await this.session.run({
      params: { data: this.flat, shape: [this.flat.length] },
      x: { data: acts.data, shape: [acts.rows, d_in] },
    });
    return { featureActs: out.feature_acts.data as Float32Array, saeOut: out.sae_out.data as Float32Array };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
