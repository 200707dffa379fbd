/**
 * A minimal ONNX ModelProto writer. Only the fields rlmesh emits are encoded; field numbers follow
 * onnx/onnx.proto3. Hand-encoding keeps the package free of a protobuf runtime and its codegen.
 */

export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool';
export type Dim = number | string;

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] } | TensorData;

export interface TensorData {
  dtype: DType;
  shape: readonly number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
}

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attrs: Record<string, AttrValue>;
}

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: readonly Dim[];
}

export interface ModelSpec {
  name: string;
  opset: number;
  nodes: NodeSpec[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Array<{ name: string } & TensorData>;
  docString?: string;
}

class Writer {
  private chunks: Uint8Array[] = [];
  private size = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.size += bytes.length;
  }

  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(value.length);
    this.push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: Writer) => void): void {
    const inner = new Writer();
    build(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}

function writeTensor(w: Writer, name: string, t: TensorData): void {
  for (const d of t.shape) w.int(1, d);
  w.int(2, ONNX_DTYPE[t.dtype]);
  w.string(8, name);
  w.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

function isTensorData(v: AttrValue): v is TensorData {
  return typeof v === 'object' && v !== null && 'dtype' in v && 'data' in v;
}

// AttributeProto.AttributeType codes.
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 };

function writeAttr(w: Writer, name: string, value: AttrValue): void {
  w.string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use {float: x} for float attributes`);
    w.int(3, value);
    w.int(20, ATTR.INT);
  } else if (typeof value === 'string') {
    w.string(4, value);
    w.int(20, ATTR.STRING);
  } else if (Array.isArray(value)) {
    for (const v of value) w.int(8, v);
    w.int(20, ATTR.INTS);
  } else if (isTensorData(value)) {
    w.message(5, (t) => writeTensor(t, name, value));
    w.int(20, ATTR.TENSOR);
  } else if ('float' in value) {
    w.float(2, value.float);
    w.int(20, ATTR.FLOAT);
  } else {
    for (const v of value.floats) w.float(7, v);
    w.int(20, ATTR.FLOATS);
  }
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, ONNX_DTYPE[v.dtype]);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

/** IR version 8 is the one that pairs with opset 17 and that every onnxruntime since 1.13 reads. */
export function encodeModel(spec: ModelSpec): Uint8Array {
  const w = new Writer();
  w.int(1, 8);
  w.string(2, 'rlmesh-graph');
  w.string(3, '0.1.0');
  if (spec.docString) w.string(6, spec.docString);
  w.message(7, (g) => {
    for (const n of spec.nodes) {
      g.message(1, (nw) => {
        for (const i of n.inputs) nw.string(1, i);
        for (const o of n.outputs) nw.string(2, o);
        nw.string(3, n.name);
        nw.string(4, n.opType);
        for (const [k, v] of Object.entries(n.attrs)) nw.message(5, (a) => writeAttr(a, k, v));
      });
    }
    g.string(2, spec.name);
    for (const t of spec.initializers) g.message(5, (tw) => writeTensor(tw, t.name, t));
    for (const v of spec.inputs) g.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of spec.outputs) g.message(12, (vw) => writeValueInfo(vw, v));
  });
  w.message(8, (o) => {
    o.string(1, '');
    o.int(2, spec.opset);
  });
  return w.finish();
}
