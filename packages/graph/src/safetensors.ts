/**
 * The safetensors format: u64 little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw little-endian bytes. Written as Python's writer does (tensors in
 * sorted-name order, header space-padded to 8 bytes), so files move between rlmesh and PyTorch.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export type SafeData = Float32Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: SafeData;
}

const BYTES: Record<SafeDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

function view(dtype: SafeDType, buf: ArrayBuffer): SafeData {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buf);
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf);
  }
}

export function serializeSafetensors(tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (!(t.dtype in BYTES)) throw new Error(`safetensors: tensor ${name} has unknown dtype ${t.dtype}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n)
      throw new Error(`safetensors: tensor ${name} has ${t.data.length} values, shape [${t.shape.join(',')}] needs ${n}`);
    const bytes = n * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors[name].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

export function parseSafetensors(bytes: Uint8Array): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new Error('safetensors: file shorter than its 8-byte header length');
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + headerLen > bytes.length)
    throw new Error(`safetensors: header length ${headerLen} runs past the end of the file (${bytes.length} bytes)`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: Record<string, SafeTensor> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Error(`safetensors: metadata ${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = entry as { dtype: SafeDType; shape: number[]; data_offsets: [number, number] };
    if (!(dtype in BYTES)) throw new Error(`safetensors: tensor ${name} has unknown dtype ${dtype}`);
    const [begin, end] = offsets;
    if (!(begin >= 0 && end >= begin && end <= dataLen))
      throw new Error(`safetensors: tensor ${name} has offsets [${begin},${end}] outside the ${dataLen}-byte buffer`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== n * BYTES[dtype])
      throw new Error(
        `safetensors: tensor ${name} spans ${end - begin} bytes, shape [${shape.join(',')}] of ${dtype} needs ${n * BYTES[dtype]}`,
      );
    const copy = bytes.slice(dataStart + begin, dataStart + end);
    tensors[name] = { dtype, shape: [...shape], data: view(dtype, copy.buffer) };
    ranges.push([begin, end, name]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  let expected = 0;
  for (const [begin, end, name] of ranges) {
    if (begin !== expected)
      throw new Error(
        `safetensors: tensor ${name} starts at ${begin}; tensors must tile the buffer without gaps or overlaps (expected ${expected})`,
      );
    expected = end;
  }
  if (expected !== dataLen) throw new Error(`safetensors: tensors cover ${expected} of ${dataLen} data bytes`);
  return { tensors, metadata };
}

/** Writes via a temporary file and a rename, so a crash never leaves half a checkpoint. */
export async function saveSafetensors(path: string, tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Promise<void> {
  await writeFile(`${path}.tmp`, serializeSafetensors(tensors, metadata));
  await rename(`${path}.tmp`, path);
}

export async function loadSafetensors(path: string): Promise<{ tensors: Record<string, SafeTensor>; metadata: Record<string, string> }> {
  return parseSafetensors(new Uint8Array(await readFile(path)));
}
