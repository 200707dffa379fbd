/**
 * Tensor <-> typed array. Encoding shares the typed array's memory; decoding copies only when the
 * received bytes are not aligned for the element type (protobuf gives no alignment guarantee).
 * `decodeTensor` checks dtype, rank and byte length and names the field it was given, so that every
 * service reports a malformed tensor the same way.
 */
import { DType, type Tensor } from './gen/rlmesh/v1/common';

export type TypedArray = Float32Array | Int32Array | BigInt64Array | Uint8Array;

const ELEMENT = {
  [DType.DTYPE_FLOAT32]: { size: 4, name: 'float32' },
  [DType.DTYPE_INT32]: { size: 4, name: 'int32' },
  [DType.DTYPE_INT64]: { size: 8, name: 'int64' },
  [DType.DTYPE_UINT8]: { size: 1, name: 'uint8' },
} as const;

export type DTypeName = (typeof ELEMENT)[keyof typeof ELEMENT]['name'];

/** Thrown for a malformed tensor; `field` is the request field, `message` the rule it broke. */
export class TensorError extends Error {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
    this.name = 'TensorError';
  }
}

function dtypeOf(a: TypedArray): DType {
  if (a instanceof Float32Array) return DType.DTYPE_FLOAT32;
  if (a instanceof Int32Array) return DType.DTYPE_INT32;
  if (a instanceof BigInt64Array) return DType.DTYPE_INT64;
  return DType.DTYPE_UINT8;
}

export function encodeTensor(a: TypedArray, shape: readonly number[]): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  if (n !== a.length) throw new Error(`encodeTensor: shape [${shape}] holds ${n} elements, array has ${a.length}`);
  return { dtype: dtypeOf(a), shape: [...shape], data: Buffer.from(a.buffer, a.byteOffset, a.byteLength) };
}

export interface DecodeRule {
  dtype: DTypeName;
  /** Expected dimensions; -1 matches any size. The rank must match. */
  shape: readonly number[];
}

export function decodeTensor(
  field: string,
  t: Tensor | undefined,
  rule: { dtype: 'float32'; shape: readonly number[] },
): { data: Float32Array; shape: number[] };
export function decodeTensor(
  field: string,
  t: Tensor | undefined,
  rule: { dtype: 'int32'; shape: readonly number[] },
): { data: Int32Array; shape: number[] };
export function decodeTensor(
  field: string,
  t: Tensor | undefined,
  rule: { dtype: 'uint8'; shape: readonly number[] },
): { data: Uint8Array; shape: number[] };
export function decodeTensor(
  field: string,
  t: Tensor | undefined,
  rule: { dtype: 'int64'; shape: readonly number[] },
): { data: BigInt64Array; shape: number[] };
export function decodeTensor(field: string, t: Tensor | undefined, rule: DecodeRule): { data: TypedArray; shape: number[] } {
  if (!t) throw new TensorError(field, 'is required');
  const el = ELEMENT[t.dtype as keyof typeof ELEMENT];
  if (!el) throw new TensorError(field, `dtype ${DType[t.dtype] ?? t.dtype} is not a tensor dtype`);
  if (el.name !== rule.dtype) throw new TensorError(field, `must be ${rule.dtype}, got ${el.name}`);
  const shape = t.shape.map(Number);
  const want = rule.shape;
  const shapeOk =
    shape.length === want.length && want.every((d, i) => d < 0 || d === shape[i]) && shape.every((d) => Number.isInteger(d) && d >= 0);
  if (!shapeOk) throw new TensorError(field, `shape must be [${want.map((d) => (d < 0 ? '*' : d)).join(', ')}], got [${shape.join(', ')}]`);
  const n = shape.reduce((p, d) => p * d, 1);
  if (t.data.byteLength !== n * el.size)
    throw new TensorError(field, `shape [${shape.join(', ')}] needs ${n * el.size} bytes of ${el.name}, got ${t.data.byteLength}`);
  const bytes = t.data.byteOffset % el.size === 0 ? t.data : Uint8Array.prototype.slice.call(t.data);
  const { buffer, byteOffset } = bytes;
  switch (el.name) {
    case 'float32':
      return { data: new Float32Array(buffer, byteOffset, n), shape };
    case 'int32':
      return { data: new Int32Array(buffer, byteOffset, n), shape };
    case 'int64':
      return { data: new BigInt64Array(buffer, byteOffset, n), shape };
    default:
      return { data: new Uint8Array(buffer, byteOffset, n), shape };
  }
}
