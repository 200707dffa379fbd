/**
 * The weights of a Hugging Face model directory, as `save_pretrained` writes them: one
 * `model.safetensors`, or, past the shard size, `model-00001-of-0000N.safetensors` ... with
 * `model.safetensors.index.json` ({"metadata": {"total_size": bytes}, "weight_map": {name: file}},
 * keys sorted). Shards are filled in state_dict order and a new one starts when the next tensor
 * would pass the limit (huggingface_hub's split_torch_state_dict_into_shards); a tensor larger than
 * the limit gets a shard of its own. Reading takes either layout, and F16/BF16/F64 tensors as float32.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bf16ToF32, f16ToF32, loadSafetensors, type SafeTensor, saveSafetensors } from '@rlmesh/graph';

export const HF_WEIGHTS = 'model.safetensors';
export const HF_WEIGHTS_INDEX = 'model.safetensors.index.json';
const SHARD = /^model-\d{5}-of-\d{5}\.safetensors$/;
const shardName = (i: number, n: number) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/** save_pretrained's default max_shard_size, "5GB" (decimal). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/** A directory's config.json, parsed; errors say which file and why. */
export async function readHfConfig(dir: string): Promise<unknown> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir}: no config.json (not a Hugging Face model directory)`);
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export function asFloat32(t: SafeTensor, where: string): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return t.data as Float32Array;
    case 'F64':
      return Float32Array.from(t.data as Float64Array);
    case 'F16':
      return f16ToF32(t.data as Uint16Array);
    case 'BF16':
      return bf16ToF32(t.data as Uint16Array);
    default:
      throw new Error(`${where}: dtype ${t.dtype} is not a floating-point weight`);
  }
}

/**
 * Writes float32 `tensors` (in state_dict order) as model.safetensors, or as shards with their
 * index when they exceed `maxShardBytes`; weight files of an earlier save that this one does not
 * rewrite are removed, so the directory never holds two versions.
 */
export async function writeHfWeights(
  dir: string,
  tensors: Array<[string, SafeTensor]>,
  maxShardBytes = DEFAULT_MAX_SHARD_BYTES,
): Promise<void> {
  const bytes = (t: SafeTensor) => t.data.byteLength;
  const shards: Array<Array<[string, SafeTensor]>> = [[]];
  let size = 0;
  for (const entry of tensors) {
    const n = bytes(entry[1]);
    if (shards[shards.length - 1].length > 0 && size + n > maxShardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(entry);
    size += n;
  }
  const keep = new Set<string>();
  if (shards.length === 1) {
    await saveSafetensors(join(dir, HF_WEIGHTS), Object.fromEntries(shards[0]), { format: 'pt' });
    keep.add(HF_WEIGHTS);
  } else {
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = shardName(i, shards.length);
      await saveSafetensors(join(dir, file), Object.fromEntries(shard), { format: 'pt' });
      keep.add(file);
      for (const [name] of shard) weightMap[name] = file;
    }
    const sorted = Object.fromEntries(
      Object.keys(weightMap)
        .sort()
        .map((k) => [k, weightMap[k]]),
    );
    const total = tensors.reduce((a, [, t]) => a + bytes(t), 0);
    const tmp = join(dir, `${HF_WEIGHTS_INDEX}.tmp`);
    await writeFile(tmp, `${JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2)}\n`);
    await rename(tmp, join(dir, HF_WEIGHTS_INDEX));
    keep.add(HF_WEIGHTS_INDEX);
  }
  for (const f of await readdir(dir))
    if ((f === HF_WEIGHTS || f === HF_WEIGHTS_INDEX || SHARD.test(f)) && !keep.has(f)) await rm(join(dir, f), { force: true });
}

/** Every tensor of the directory's weights by name, and the file each came from (for errors). */
export async function readHfWeights(dir: string): Promise<{ tensors: Record<string, SafeTensor>; fileOf: (name: string) => string }> {
  const single = join(dir, HF_WEIGHTS);
  if (existsSync(single)) {
    const { tensors } = await loadSafetensors(single);
    return { tensors, fileOf: () => single };
  }
  const indexPath = join(dir, HF_WEIGHTS_INDEX);
  if (!existsSync(indexPath)) throw new Error(`${dir}: no ${HF_WEIGHTS} or ${HF_WEIGHTS_INDEX} (only safetensors weights are read)`);
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new Error(`${indexPath}: weight_map must be an object of tensor name -> file`);
  const entries = Object.entries(map as Record<string, unknown>);
  const files = new Set<string>();
  for (const [name, file] of entries) {
    if (typeof file !== 'string' || !/^[\w.-]+\.safetensors$/.test(file) || file.startsWith('.'))
      throw new Error(`${indexPath}: weight_map.${name} must name a .safetensors file in the directory, got ${JSON.stringify(file)}`);
    files.add(file);
  }
  const tensors: Record<string, SafeTensor> = {};
  const from = new Map<string, string>();
  for (const file of files) {
    const path = join(dir, file);
    if (!existsSync(path)) throw new Error(`${indexPath}: shard ${file} is missing`);
    for (const [name, t] of Object.entries((await loadSafetensors(path)).tensors)) {
      tensors[name] = t;
      from.set(name, path);
    }
  }
  for (const [name, file] of entries)
    if (from.get(name) !== join(dir, file as string))
      throw new Error(`${indexPath}: tensor ${name} is not in ${file}, where weight_map puts it`);
  return { tensors, fileOf: (name) => from.get(name) ?? indexPath };
}
