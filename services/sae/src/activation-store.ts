/**
 * Reading an activation store as `rlmesh sae capture` writes it (capture.ts): activations.safetensors
 * with `activations` F32 [rows, d] (and, when rows are observations, `observations` F32 [rows, obs_dim]),
 * and context.jsonl with one line per row (optional). Errors name
 * the file and the rule, so a service can pass them on as a bad request.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadSafetensors, type SafeTensor, saveSafetensors } from '@rlmesh/graph';

export const ACTIVATIONS_FILE = 'activations.safetensors';
export const CONTEXT_FILE = 'context.jsonl';

export interface ActivationStore {
  data: Float32Array;
  rows: number;
  d: number;
  /** The file's metadata: hook, model, checkpoint, source. */
  metadata: Record<string, string>;
  /** One record per row, or null when the store has no context.jsonl. */
  context: Record<string, unknown>[] | null;
  /** The policy observation each row was read on (capture writes them when rows are observations). */
  observations: { data: Float32Array; d: number } | null;
}

export class StoreError extends Error {}

/** `path` is a store directory or its activations file. */
export async function readActivationStore(path: string): Promise<ActivationStore> {
  if (!existsSync(path)) throw new StoreError(`${path} does not exist`);
  const file = statSync(path).isDirectory() ? join(path, ACTIVATIONS_FILE) : path;
  if (!existsSync(file)) throw new StoreError(`${path} holds no ${ACTIVATIONS_FILE}`);
  let st: Awaited<ReturnType<typeof loadSafetensors>>;
  try {
    st = await loadSafetensors(file);
  } catch (e) {
    throw new StoreError(`${file}: ${(e as Error).message}`);
  }
  const t = st.tensors.activations;
  if (!t) throw new StoreError(`${file}: no tensor named activations`);
  if (t.dtype !== 'F32' || t.shape.length !== 2)
    throw new StoreError(`${file}: activations must be F32 [rows, d], got ${t.dtype} [${t.shape}]`);
  const [rows, d] = t.shape;
  if (rows < 1 || d < 1) throw new StoreError(`${file}: activations are empty ([${t.shape}])`);
  const data = t.data as Float32Array;
  for (let i = 0; i < data.length; i++)
    if (!Number.isFinite(data[i]))
      throw new StoreError(`${file}: activations row ${Math.floor(i / d)} holds ${data[i]} at column ${i % d}`);
  const ctxPath = join(dirname(file), CONTEXT_FILE);
  let context: Record<string, unknown>[] | null = null;
  if (existsSync(ctxPath)) {
    const lines = (await readFile(ctxPath, 'utf8')).split('\n').filter((l) => l.trim() !== '');
    // Context that does not line up with the rows would label features wrongly: left out instead.
    if (lines.length === rows) context = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  const o = st.tensors.observations;
  if (o && (o.dtype !== 'F32' || o.shape.length !== 2 || o.shape[0] !== rows))
    throw new StoreError(`${file}: observations must be F32 [${rows}, obs_dim], got ${o.dtype} [${o.shape}]`);
  const observations = o ? { data: o.data as Float32Array, d: o.shape[1] } : null;
  return { data, rows, d, metadata: st.metadata, context, observations };
}

/** Writes a store: `data` [rows, d] row-major, with one context record per row (or none) and optionally each row's observation. */
export async function writeActivationStore(
  dir: string,
  acts: { data: Float32Array; rows: number; d: number },
  metadata: Record<string, string>,
  context: readonly Record<string, unknown>[] | null,
  observations?: { data: Float32Array; d: number },
): Promise<void> {
  if (acts.data.length !== acts.rows * acts.d) throw new Error(`store: ${acts.data.length} values is not ${acts.rows} rows of ${acts.d}`);
  if (context && context.length !== acts.rows) throw new Error(`store: ${context.length} context records for ${acts.rows} rows`);
  await mkdir(dir, { recursive: true });
  const tensors: Record<string, SafeTensor> = { activations: { dtype: 'F32', shape: [acts.rows, acts.d], data: acts.data } };
  if (observations) {
    if (observations.data.length !== acts.rows * observations.d)
      throw new Error(`store: ${observations.data.length} observation values is not ${acts.rows} rows of ${observations.d}`);
    tensors.observations = { dtype: 'F32', shape: [acts.rows, observations.d], data: observations.data };
  }
  await saveSafetensors(join(dir, ACTIVATIONS_FILE), tensors, metadata);
  if (context) await writeFile(join(dir, CONTEXT_FILE), context.map((x) => `${JSON.stringify(x)}\n`).join(''));
}
