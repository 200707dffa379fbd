/** Reductions. The backward of each broadcasts the incoming gradient back over the reduced axes. */
import { type Dim, type Graph, normAxis, typedArray, type Value } from '../graph';
import { cast, div, equal, mul } from './elementwise';
import { expandTo, unsqueeze } from './shape';

function reducedShape(x: Value, axes: number[], keepdims: boolean): Dim[] {
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

function normAxes(x: Value, axes: readonly number[] | undefined, op: string): number[] {
  const all = axes ?? [...Array(x.rank).keys()];
  return [...new Set(all.map((a) => normAxis(a, x.rank, op)))].sort((a, b) => a - b);
}

/** The gradient of a reduced value, shaped back like the input (keepdims restored, then expanded). */
function spread(g: Value, x: Value, axes: number[], keepdims: boolean): Value {
  // A full reduction's scalar broadcasts as it is.
  if (!keepdims && axes.length === x.rank) return expandTo(g, x);
  return expandTo(keepdims ? g : unsqueeze(g, axes), x);
}

/** The number of elements reduced over, as a scalar of x's dtype (dynamic if an axis is symbolic). */
export function reducedCount(x: Value, axes: number[]): Value | number {
  const dims = axes.map((a) => x.shape[a]);
  if (dims.every((d) => typeof d === 'number')) return (dims as number[]).reduce((p, d) => p * d, 1);
  const g = x.graph;
  if (axes.length === x.rank) return cast(g.node('Size', [x], {}, [{ dtype: 'int64', shape: [] }])[0], x.dtype);
  const [picked] = g.node('Gather', [g.shapeOf(x), g.ints(axes)], { axis: 0 }, [{ dtype: 'int64', shape: [axes.length] }]);
  const [prod] = g.node('ReduceProd', [picked], { keepdims: 0 }, [{ dtype: 'int64', shape: [] }]);
  return cast(prod, x.dtype);
}

// d sum(x) = broadcast(g)
export function reduceSum(x: Value, axes?: readonly number[], keepdims = false): Value {
  const ax = normAxes(x, axes, 'ReduceSum');
  const g = x.graph;
  const [out] = g.node('ReduceSum', [x, g.ints(ax)], { keepdims: keepdims ? 1 : 0 }, [
    { dtype: x.dtype, shape: reducedShape(x, ax, keepdims) },
  ]);
  g.record('ReduceSum', [x], [out], ([dOut]) => [dOut ? spread(dOut, x, ax, keepdims) : null]);
  return out;
}

// d mean(x) = broadcast(g) / n
export function reduceMean(x: Value, axes?: readonly number[], keepdims = false): Value {
  const ax = normAxes(x, axes, 'ReduceMean');
  const g = x.graph;
  const [out] = g.node('ReduceMean', [x], { axes: ax, keepdims: keepdims ? 1 : 0 }, [
    { dtype: x.dtype, shape: reducedShape(x, ax, keepdims) },
  ]);
  g.record('ReduceMean', [x], [out], ([dOut]) => [dOut ? spread(div(dOut, reducedCount(x, ax)), x, ax, keepdims) : null]);
  return out;
}

// d max(x) = broadcast(g) on the arg-max positions, split evenly between ties (as torch.amax does)
export function reduceMax(x: Value, axes?: readonly number[], keepdims = false): Value {
  const ax = normAxes(x, axes, 'ReduceMax');
  const g = x.graph;
  const [out] = g.node('ReduceMax', [x], { axes: ax, keepdims: keepdims ? 1 : 0 }, [
    { dtype: x.dtype, shape: reducedShape(x, ax, keepdims) },
  ]);
  g.record('ReduceMax', [x], [out], ([dOut]) => {
    if (!dOut) return [null];
    const kept = keepdims ? out : unsqueeze(out, ax);
    const mask = cast(equal(x, kept), x.dtype);
    const ties = reduceSum(mask, ax, true);
    return [mul(spread(dOut, x, ax, keepdims), div(mask, ties))];
  });
  return out;
}

/**
 * Column sums of a [R, C] matrix as ones[R] @ x (a bias's gradient). onnxruntime's ReduceSum over the
 * leading axis costs several times this small MatMul on CPU (about 5 against 1 us at [128, 64]).
 * Backward-only: not recorded on the tape.
 */
export function sumRows(x: Value): Value {
  if (x.rank !== 2) throw new Error(`sumRows: ${x} must be a matrix`);
  const g = x.graph;
  const [out] = g.node('MatMul', [onesOfLength(x), x], {}, [{ dtype: x.dtype, shape: [x.shape[1]] }]);
  return out;
}

/** Per graph, the ones vectors made for a symbolic length, by its name and dtype. */
const onesByDim = new WeakMap<Graph, Map<string, Value>>();

/**
 * ones[R] for x's leading dim R: a constant when static; built from x's runtime shape otherwise, once
 * per symbolic name (the graph builder gives one name one size: broadcasting relies on it too).
 */
function onesOfLength(x: Value): Value {
  const g = x.graph;
  const rows = x.shape[0];
  if (typeof rows === 'number') return g.constant({ dtype: x.dtype, shape: [rows], data: typedArray(x.dtype, new Array(rows).fill(1)) });
  let cache = onesByDim.get(g);
  if (!cache) onesByDim.set(g, (cache = new Map()));
  const key = `${rows}|${x.dtype}`;
  let ones = cache.get(key);
  if (!ones) {
    const [n] = g.node('Shape', [x], { start: 0, end: 1 }, [{ dtype: 'int64', shape: [1] }]);
    [ones] = g.node('ConstantOfShape', [n], { value: { dtype: x.dtype, shape: [1], data: typedArray(x.dtype, [1]) } }, [
      { dtype: x.dtype, shape: [rows] },
    ]);
    cache.set(key, ones);
  }
  return ones;
}

/**
 * Running sum along `axis` (ONNX CumSum); `reverse` sums from the end. Its adjoint is the running sum
 * taken the other way: d cumsum(x) = cumsum(g, reverse = !reverse). Integer inputs (positions from an
 * attention mask) are data and get no gradient.
 */
export function cumsum(x: Value, axis: number, reverse = false): Value {
  const ax = normAxis(axis, x.rank, 'CumSum');
  const g = x.graph;
  const [out] = g.node('CumSum', [x, g.scalar(ax, 'int64')], { reverse: reverse ? 1 : 0 }, [x]);
  const differentiable = x.dtype === 'float32' || x.dtype === 'float64';
  g.record('CumSum', [x], [out], differentiable ? ([dOut]) => [dOut ? cumsum(dOut, ax, !reverse) : null] : null);
  return out;
}
