/**
 * A trained policy read back from a file any mode writes (a training checkpoint or a run's
 * model.safetensors): the run config travels in the file's metadata, so the registered model is
 * rebuilt for the run's environment and the weights are loaded into it by name.
 */
import { loadSafetensors, loadWeights } from '@rlmesh/graph';
import type { PolicyModel } from '../registry';
import { parseRunConfig, type RunConfig } from './config';
import { buildModel, type EnvShape, envShape } from './learner-run';

export interface PolicyFile {
  cfg: RunConfig;
  shape: EnvShape;
  model: PolicyModel;
  params: Map<string, Float32Array>;
  /** The file's safetensors metadata (config, counters, ...). */
  metadata: Record<string, string>;
}

/** Errors say which file and what is wrong with it: unreadable, not an rlmesh file, or weights that do not fit. */
export async function loadPolicyFile(path: string): Promise<PolicyFile> {
  let metadata: Record<string, string>;
  try {
    metadata = (await loadSafetensors(path)).metadata;
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (!metadata.config) throw new Error(`${path} carries no run config in its metadata: not an rlmesh checkpoint or model file`);
  const cfg = parseRunConfig(JSON.parse(metadata.config));
  const shape = envShape(cfg);
  const model = buildModel(cfg, shape);
  try {
    return { cfg, shape, model, params: (await loadWeights(path, model.module)).params, metadata };
  } catch (e) {
    throw new Error(`${path} does not fit its own config: ${(e as Error).message}`);
  }
}
