/**
 * The graph builder: symbolic tensors (Value), raw ONNX nodes, and the tape of differentiable op
 * applications that autodiff walks backwards. Ops live in ops/*.ts, each with its gradient rule
 * written next to its forward as a closure on the tape, micrograd style.
 */
import { type AttrValue, type Dim, type DType, encodeModel, type NodeSpec, type TensorData } from './onnx';

export type { Dim, DType } from './onnx';

export const OPSET = 17;

export class Value {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: readonly Dim[],
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** The static size of axis `axis` (negative counts from the end); throws if it is symbolic. */
  dim(axis: number): number {
    const d = this.shape[axis < 0 ? this.rank + axis : axis];
    if (typeof d !== 'number') throw new Error(`${this.name}: axis ${axis} is symbolic (${String(d)}), a static size is needed`);
    return d;
  }

  isStatic(): boolean {
    return this.shape.every((d) => typeof d === 'number');
  }

  toString(): string {
    return `${this.name}:${this.dtype}[${this.shape.join(',')}]`;
  }
}

/** Maps output gradients to input gradients; null means "no gradient flows here". */
export type BackwardRule = (dOutputs: (Value | null)[]) => (Value | null)[];

export interface TapeEntry {
  op: string;
  inputs: Value[];
  outputs: Value[];
  backward: BackwardRule | null;
}

export interface OutInfo {
  dtype: DType;
  shape: readonly Dim[];
}

export class Graph {
  readonly nodes: NodeSpec[] = [];
  readonly tape: TapeEntry[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, TensorData>();
  private readonly outputSources = new Map<string, Value>();
  private nextId = 0;
  private readonly usedNames = new Set<string>();
  private readonly constCache = new Map<string, Value>();
  private readonly shapeCache = new Map<number, Value>();

  constructor(readonly name = 'rlmesh') {}

  private fresh(prefix: string): string {
    let name = prefix;
    while (this.usedNames.has(name)) name = `${prefix}_${this.nextId++}`;
    this.usedNames.add(name);
    return name;
  }

  private value(name: string, info: OutInfo): Value {
    return new Value(this, this.nextId++, name, info.dtype, [...info.shape]);
  }

  /** Declares a graph input. Symbolic dims are strings, e.g. ['batch', 8]. */
  input(name: string, dtype: DType, shape: readonly Dim[]): Value {
    if (this.usedNames.has(name)) throw new Error(`graph input ${name}: name already used`);
    this.usedNames.add(name);
    const v = this.value(name, { dtype, shape });
    this.inputs.push(v);
    return v;
  }

  /**
   * Marks `v` as a graph output under `name`. The producing node's output is renamed when the
   * model is written, rather than copied through an Identity (a copy of the whole parameter vector
   * per output in a train step).
   */
  output(name: string, v: Value): Value {
    if (this.usedNames.has(name)) throw new Error(`graph output ${name}: name already used`);
    this.usedNames.add(name);
    const out = this.value(name, v);
    this.outputs.push(out);
    this.outputSources.set(name, v);
    return out;
  }

  /** Adds a named initializer (a weight baked into the model). */
  initializer(name: string, t: TensorData): Value {
    if (this.usedNames.has(name)) throw new Error(`initializer ${name}: name already used`);
    this.usedNames.add(name);
    return this.addInitializer(name, t);
  }

  private addInitializer(name: string, t: TensorData): Value {
    this.initializers.set(name, t);
    return this.value(name, t);
  }

  /** A constant tensor; identical small constants are shared. */
  constant(t: TensorData): Value {
    const key =
      t.data.length <= 16 ? `${t.dtype}|${t.shape.join(',')}|${Array.from(t.data as ArrayLike<number | bigint>).join(',')}` : null;
    const hit = key ? this.constCache.get(key) : undefined;
    if (hit) return hit;
    const v = this.addInitializer(this.fresh('const'), t);
    if (key) this.constCache.set(key, v);
    return v;
  }

  scalar(x: number, dtype: DType): Value {
    return this.constant({ dtype, shape: [], data: typedArray(dtype, [x]) });
  }

  ints(xs: readonly number[]): Value {
    return this.constant({ dtype: 'int64', shape: [xs.length], data: BigInt64Array.from(xs.map((x) => BigInt(x))) });
  }

  /** The runtime shape of `v` as an int64 vector: a constant when static, a Shape node otherwise. */
  shapeOf(v: Value): Value {
    if (v.isStatic()) return this.ints(v.shape as number[]);
    const hit = this.shapeCache.get(v.id);
    if (hit) return hit;
    const [s] = this.node('Shape', [v], {}, [{ dtype: 'int64', shape: [v.rank] }]);
    this.shapeCache.set(v.id, s);
    return s;
  }

  /** Emits one raw ONNX node. Prefer the differentiable ops in ops/*; this is their building block. */
  node(opType: string, inputs: (Value | null)[], attrs: Record<string, AttrValue>, outs: OutInfo[]): Value[] {
    for (const i of inputs) if (i && i.graph !== this) throw new Error(`${opType}: input ${i.name} belongs to another graph`);
    const outputs = outs.map((o) => this.value(this.fresh(`${opType.toLowerCase()}`), o));
    this.nodes.push({
      opType,
      inputs: inputs.map((i) => (i ? i.name : '')),
      outputs: outputs.map((o) => o.name),
      name: this.fresh(`n_${opType}`),
      attrs,
    });
    return outputs;
  }

  /** Records a differentiable application on the tape; `backward` null marks it non-differentiable. */
  record(op: string, inputs: Value[], outputs: Value[], backward: BackwardRule | null): void {
    this.tape.push({ op, inputs, outputs, backward });
  }

  /** Names of every value `values` depend on (themselves included), through the nodes emitted so far. */
  dependencies(values: readonly Value[]): Set<string> {
    const needed = new Set(values.map((v) => v.name));
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i];
      if (!n.outputs.some((o) => needed.has(o))) continue;
      for (const inp of n.inputs) if (inp) needed.add(inp);
    }
    return needed;
  }

  /** Serialises the graph as an ONNX model; only nodes the outputs depend on are kept. */
  toOnnx(docString?: string): Uint8Array {
    if (this.outputs.length === 0) throw new Error(`graph ${this.name}: no outputs declared`);
    const { nodes, renames } = this.withOutputsNamed();
    const rn = (n: string) => renames.get(n) ?? n;
    const needed = new Set(this.outputs.map((o) => o.name));
    const kept: NodeSpec[] = [];
    for (let i = nodes.length - 1; i >= 0; i--) {
      const n = nodes[i];
      if (!n.outputs.some((o) => needed.has(o))) continue;
      kept.push(n);
      for (const inp of n.inputs) if (inp) needed.add(inp);
    }
    kept.reverse();
    return encodeModel({
      name: this.name,
      opset: OPSET,
      nodes: kept,
      inputs: this.inputs.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape })),
      outputs: this.outputs.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape })),
      initializers: [...this.initializers].filter(([n]) => needed.has(rn(n))).map(([name, t]) => ({ name, ...t })),
      docString,
    });
  }

  /**
   * Node list in which each output's producing node writes the output name directly. A value that
   * is a graph input or initializer, or that feeds two outputs, goes through an Identity instead.
   */
  private withOutputsNamed(): { nodes: NodeSpec[]; renames: Map<string, string> } {
    const produced = new Set(this.nodes.flatMap((n) => n.outputs));
    const renames = new Map<string, string>();
    const extra: NodeSpec[] = [];
    for (const [name, v] of this.outputSources) {
      if (produced.has(v.name) && !renames.has(v.name)) renames.set(v.name, name);
      else extra.push({ opType: 'Identity', inputs: [v.name], outputs: [name], name: `out_${name}`, attrs: {} });
    }
    const rn = (n: string) => renames.get(n) ?? n;
    const nodes = this.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rn), outputs: n.outputs.map(rn) }));
    return { nodes: [...nodes, ...extra.map((n) => ({ ...n, inputs: n.inputs.map(rn) }))], renames };
  }
}

export function typedArray(dtype: DType, xs: readonly number[]): TensorData['data'] {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(xs);
    case 'float64':
      return Float64Array.from(xs);
    case 'int64':
      return BigInt64Array.from(xs.map((x) => BigInt(Math.trunc(x))));
    case 'int32':
      return Int32Array.from(xs);
    case 'bool':
      return Uint8Array.from(xs.map((x) => (x ? 1 : 0)));
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

/** NumPy broadcasting over static and symbolic dims. */
export function broadcastShapes(a: readonly Dim[], b: readonly Dim[], op: string): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (typeof da === 'string' && typeof db === 'number') out.push(db);
    else if (typeof db === 'string' && typeof da === 'number') out.push(da);
    else throw new Error(`${op}: shapes [${a.join(',')}] and [${b.join(',')}] do not broadcast at axis ${i}`);
  }
  return out;
}

export function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}
