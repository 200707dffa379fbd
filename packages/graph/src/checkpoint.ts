/**
 * Checkpoints as safetensors with PyTorch state_dict names and layouts, so that
 * `model.load_state_dict(safetensors.torch.load_file(path))` reads rlmesh weights, and back.
 * A training checkpoint adds the optimiser state as `optimizer.<state>.<param>` (torch's
 * exp_avg / exp_avg_sq / momentum_buffer naming) and the step count in the metadata.
 */
import type { Module } from './module';
import { loadSafetensors, type SafeTensor, saveSafetensors } from './safetensors';
import type { Trainer } from './trainer';

export async function saveWeights(
  path: string,
  module: Module,
  params: ReadonlyMap<string, Float32Array>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const tensors: Record<string, SafeTensor> = {};
  for (const p of module.namedParameters()) {
    const data = params.get(p.name);
    if (!data) throw new Error(`saveWeights: no value for parameter ${p.name}`);
    tensors[p.name] = { dtype: 'F32', shape: p.shape, data };
  }
  await saveSafetensors(path, tensors, { format: 'pt', ...metadata });
}

/** Reads weights for `module`, checking that every parameter is present with its shape. */
export async function loadWeights(
  path: string,
  module: Module,
): Promise<{ params: Map<string, Float32Array>; metadata: Record<string, string> }> {
  const { tensors, metadata } = await loadSafetensors(path);
  return { params: pickParams(tensors, module, '', path), metadata };
}

function pickParams(tensors: Record<string, SafeTensor>, module: Module, prefix: string, path: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const p of module.namedParameters()) {
    const t = tensors[prefix + p.name];
    if (!t) throw new Error(`${path}: tensor ${prefix + p.name} is missing`);
    if (t.shape.join(',') !== p.shape.join(',')) {
      throw new Error(`${path}: tensor ${prefix + p.name} has shape [${t.shape.join(',')}], the model expects [${p.shape.join(',')}]`);
    }
    if (t.dtype !== 'F32' && t.dtype !== 'F64') throw new Error(`${path}: tensor ${prefix + p.name} is ${t.dtype}, expected F32`);
    out.set(p.name, Float32Array.from(t.data as Float32Array));
  }
  return out;
}

export async function saveTrainingCheckpoint(path: string, trainer: Trainer, metadata: Record<string, string> = {}): Promise<void> {
  const { layout, stateNames } = trainer.program;
  const snap = trainer.snapshot();
  const tensors: Record<string, SafeTensor> = {};
  const flats: Array<[string, Float32Array | Float64Array]> = [
    ['', snap.params],
    ...stateNames.map((s) => [`optimizer.${s}.`, snap.state[s]] as [string, Float32Array | Float64Array]),
  ];
  for (const [prefix, flat] of flats) {
    for (const e of layout.entries) {
      const slice = flat.slice(e.offset, e.offset + e.size);
      tensors[prefix + e.name] =
        slice instanceof Float64Array ? { dtype: 'F64', shape: e.shape, data: slice } : { dtype: 'F32', shape: e.shape, data: slice };
    }
  }
  await saveSafetensors(path, tensors, { format: 'pt', step: String(snap.step), optimizer_state: stateNames.join(','), ...metadata });
}

/** Restores parameters, optimiser state and step count into `trainer`; returns the metadata. */
export async function loadTrainingCheckpoint(path: string, trainer: Trainer): Promise<Record<string, string>> {
  const { tensors, metadata } = await loadSafetensors(path);
  const { layout, stateNames } = trainer.program;
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new Error(`${path}: metadata.step must be a non-negative integer, got ${metadata.step}`);
  const flatOf = (prefix: string) => {
    const flat = new Float64Array(layout.total);
    for (const e of layout.entries) {
      const t = tensors[prefix + e.name];
      if (!t) throw new Error(`${path}: tensor ${prefix + e.name} is missing`);
      if (t.shape.join(',') !== e.shape.join(','))
        throw new Error(`${path}: tensor ${prefix + e.name} has shape [${t.shape.join(',')}], expected [${e.shape.join(',')}]`);
      flat.set(t.data as Float32Array | Float64Array, e.offset);
    }
    return flat;
  };
  trainer.restore({ params: flatOf(''), state: Object.fromEntries(stateNames.map((s) => [s, flatOf(`optimizer.${s}.`)])), step });
  return metadata;
}
