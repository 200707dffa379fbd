/**
 * Reading an activation store as `rlmesh sae capture` writes it (capture.ts): activations.safetensors
 * with `activations` F32 [rows, d], and context.jsonl with one line per row (optional). Errors name
 * the file and the rule, so a service can pass them on as a bad request.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadSafetensors, saveSafetensors } from '@rlmesh/graph';

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
  return { data, rows, d, metadata: st.metadata, context };
}

/** Writes a store: `data` [rows, d] row-major, with one context record per row (or none). */
export async function writeActivationStore(
  dir: string,
  acts: { data: Float32Array; rows: number; d: number },
  metadata: Record<string, string>,
  context: readonly Record<string, unknown>[] | null,
): Promise<void> {
  if (acts.data.length !== acts.rows * acts.d) throw new Error(`store: ${acts.data.length} values is not ${acts.rows} rows of ${acts.d}`);
  if (context && context.length !== acts.rows) throw new Error(`store: ${context.length} context records for ${acts.rows} rows`);
  await mkdir(dir, { recursive: true });
  await saveSafetensors(
    join(dir, ACTIVATIONS_FILE),
    { activations: { dtype: 'F32', shape: [acts.rows, acts.d], data: acts.data } },
    metadata,
  );
  if (context) await writeFile(join(dir, CONTEXT_FILE), context.map((x) => `${JSON.stringify(x)}\n`).join(''));
}
