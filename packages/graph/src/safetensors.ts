/**
 * The safetensors format (huggingface/safetensors): a little-endian u64 header length N, N bytes of
 * UTF-8 JSON header giving each tensor's dtype, shape and byte range, then the little-endian data.
 * Written the way the Python/Rust writer lays files out (tensors by descending dtype alignment,
 * then name; `__metadata__` first; header space-padded to 8 bytes) so files move between rlmesh
 * and PyTorch, and checked on read as strictly as that reader checks them.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export type SafeData = Float32Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** One tensor; F16 and BF16 data are raw bits in a Uint16Array (see f16ToF32 / bf16ToF32). */
export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: SafeData;
}

export interface SafetensorsFile {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

type ArrayCtor = { new (n: number): SafeData; BYTES_PER_ELEMENT: number; name: string };

const ARRAY: Record<SafeDType, ArrayCtor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

// The writer's Dtype enum order (safetensors/src/tensor.rs), which is ascending alignment.
const RANK: Record<SafeDType, number> = { BOOL: 0, U8: 1, I8: 2, I16: 3, F16: 4, BF16: 5, I32: 6, F32: 7, F64: 8, I64: 9 };

// The Rust reader's limit; a larger header is corruption, not a model.
const MAX_HEADER = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(x: unknown): x is SafeDType {
  return typeof x === 'string' && Object.hasOwn(ARRAY, x);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function validShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Byte-swaps each element in place; only needed on big-endian hosts. */
function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

/** Code-point order, which is the byte order of UTF-8 that the Rust writer sorts names by. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The bytes of a file holding `tensors` (and `metadata`, if non-empty), laid out as Python's writer lays them out. */
export function serializeSafetensors(tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors);
  for (const name of names) checkTensor(name, tensors[name]);
  names.sort((a, b) => RANK[tensors[b].dtype] - RANK[tensors[a].dtype] || compareNames(a, b));

  // Entries are joined by hand: a plain object would move integer-like names to the front.
  const entries: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata ${JSON.stringify(k)} must be a string, got ${typeof v}`);
    }
    // A file without metadata must round-trip to the same bytes, so an empty map writes no key.
    if (Object.keys(metadata).length > 0) entries.push(`"__metadata__":${jsonObject(Object.entries(metadata))}`);
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    entries.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += t.data.byteLength;
  }

  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let at = 8 + headerLen;
  for (const name of names) {
    const d = tensors[name].data;
    const bytes = out.subarray(at, at + d.byteLength);
    bytes.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    if (!LITTLE_ENDIAN) swapBytes(bytes, d.BYTES_PER_ELEMENT);
    at += d.byteLength;
  }
  return out;
}

function jsonObject(entries: Array<[string, string]>): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
}

function checkTensor(name: string, t: SafeTensor): void {
  if (name === '__metadata__') throw new Error('safetensors: "__metadata__" is reserved and cannot name a tensor');
  if (!isDType(t.dtype)) throw new Error(`safetensors: tensor ${name} has unknown dtype ${String(t.dtype)}`);
  if (!validShape(t.shape)) throw new Error(`safetensors: tensor ${name} has shape ${String(t.shape)}; dims must be non-negative integers`);
  const ctor = ARRAY[t.dtype];
  if (!(t.data instanceof ctor)) {
    throw new Error(`safetensors: tensor ${name} of dtype ${t.dtype} needs its data in a ${ctor.name}, got ${t.data?.constructor?.name}`);
  }
  const n = numel(t.shape);
  if (t.data.length !== n) {
    throw new Error(`safetensors: tensor ${name} has ${t.data.length} values but shape ${fmtShape(t.shape)} needs ${n}`);
  }
}

/** Reads a whole safetensors file from memory, copying each tensor into its own aligned typed array. */
export function parseSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) throw new Error(`safetensors: file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8))
    throw new Error(`safetensors: header length ${n} is larger than the ${bytes.length - 8} bytes after it`);
  if (n > BigInt(MAX_HEADER)) throw new Error(`safetensors: header length ${n} exceeds the ${MAX_HEADER}-byte limit`);
  const headerEnd = 8 + Number(n);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd));
  } catch {
    throw new Error('safetensors: header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new Error(`safetensors: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('safetensors: header must be a JSON object');

  const buffer = bytes.subarray(headerEnd);
  const metadata: Array<[string, string]> = [];
  const entries: Array<{ name: string; dtype: SafeDType; shape: number[]; begin: number; end: number }> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
        throw new Error('safetensors: __metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new Error(`safetensors: metadata ${JSON.stringify(k)} must be a string, got ${JSON.stringify(v)}`);
        metadata.push([k, v]);
      }
      continue;
    }
    entries.push(readEntry(name, entry, buffer.length));
  }

  // Tensors must tile the byte buffer exactly: no gaps, no overlaps, nothing left over.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev = '';
  for (const e of entries) {
    if (e.begin < covered)
      throw new Error(`safetensors: tensor ${e.name} data_offsets [${e.begin},${e.end}] overlap tensor ${prev}, which ends at ${covered}`);
    if (e.begin > covered)
      throw new Error(`safetensors: bytes [${covered},${e.begin}) of the byte buffer belong to no tensor (gap before tensor ${e.name})`);
    covered = e.end;
    prev = e.name;
  }
  if (covered !== buffer.length)
    throw new Error(
      `safetensors: tensors cover ${covered} of the ${buffer.length}-byte buffer; bytes [${covered},${buffer.length}) belong to no tensor`,
    );

  const tensors: Array<[string, SafeTensor]> = [];
  for (const e of entries) {
    const ctor = ARRAY[e.dtype];
    const data = new ctor((e.end - e.begin) / ctor.BYTES_PER_ELEMENT);
    const dst = new Uint8Array(data.buffer);
    dst.set(buffer.subarray(e.begin, e.end));
    if (!LITTLE_ENDIAN) swapBytes(dst, ctor.BYTES_PER_ELEMENT);
    tensors.push([e.name, { dtype: e.dtype, shape: e.shape, data }]);
  }
  // fromEntries defines own properties, so a name like "__proto__" cannot reach the prototype.
  return { tensors: Object.fromEntries(tensors), metadata: Object.fromEntries(metadata) };
}

function readEntry(name: string, entry: unknown, bufferLen: number) {
  if (typeof entry !== 'object' || entry === null) throw new Error(`safetensors: tensor ${name} header entry must be an object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isDType(dtype)) throw new Error(`safetensors: tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
  if (!validShape(shape))
    throw new Error(`safetensors: tensor ${name} has shape ${JSON.stringify(shape)}; dims must be non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new Error(`safetensors: tensor ${name} data_offsets ${JSON.stringify(offsets)} must be two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new Error(`safetensors: tensor ${name} data_offsets [${begin},${end}] end before they begin`);
  if (end > bufferLen)
    throw new Error(`safetensors: tensor ${name} data_offsets [${begin},${end}] run past the end of the ${bufferLen}-byte buffer`);
  const need = numel(shape) * ARRAY[dtype].BYTES_PER_ELEMENT;
  if (end - begin !== need) {
    throw new Error(
      `safetensors: tensor ${name} data_offsets [${begin},${end}] span ${end - begin} bytes but ${dtype} shape ${fmtShape(shape)} needs ${need}`,
    );
  }
  return { name, dtype, shape: [...shape], begin, end };
}

/** Writes a safetensors file through `path + '.tmp'` and a rename, so a crash never leaves half a file at `path`. */
export async function saveSafetensors(path: string, tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      // Flush before the rename so the new name never points at unwritten blocks after a power loss.
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Reads a safetensors file; errors name the file. */
export async function loadSafetensors(path: string): Promise<SafetensorsFile> {
  const bytes = await readFile(path);
  try {
    return parseSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** IEEE half bits to float32 values (exact). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) out[i] = (sign ? -1 : 1) * mant * 2 ** -24;
    else if (exp === 0x1f) outBits[i] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    else outBits[i] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  }
  return out;
}

/** Float32 values to IEEE half bits, rounding to nearest even; overflow gives ±Inf, NaN stays NaN. */
export function f32ToF16(values: ArrayLike<number>): Uint16Array {
  const src = f32Bits(values);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfBits(src[i]);
  return out;
}

/** The float32 bit patterns of `values`; a Float32Array is viewed, not read, so NaN payloads survive. */
function f32Bits(values: ArrayLike<number>): Uint32Array {
  if (values instanceof Float32Array) return new Uint32Array(values.buffer, values.byteOffset, values.length);
  return new Uint32Array(Float32Array.from(values).buffer);
}

function halfBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  // Keep the top payload bits and force a mantissa bit so NaN cannot collapse to Inf.
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: shift the 24-bit significand so one unit is 2^-24.
    const shift = 14 - e;
    if (shift > 25) return sign;
    return sign | roundShift(mant | 0x800000, shift);
  }
  // A carry out of the mantissa correctly bumps the exponent, up to Inf.
  return sign | roundShift((e << 23) | mant, 13);
}

/** x >> shift, rounded to nearest with ties to even. */
function roundShift(x: number, shift: number): number {
  const q = x >>> shift;
  const rem = x & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rem > half || (rem === half && q & 1) ? q + 1 : q;
}

/** bfloat16 bits to float32 values (exact). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** Float32 values to bfloat16 bits, rounding to nearest even; NaN stays NaN. */
export function f32ToBf16(values: ArrayLike<number>): Uint16Array {
  const src = f32Bits(values);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = src[i];
    if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) out[i] = (b >>> 16) | 0x40;
    else out[i] = roundShift(b, 16) & 0xffff;
  }
  return out;
}
