/** Shape ops: each backward is the inverse rearrangement of the gradient. */
import { broadcastShapes, type Dim, normAxis, type Value } from '../graph';
import { unbroadcast, zerosLike } from './elementwise';

function staticProduct(dims: readonly Dim[]): number | null {
  let p = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return null;
    p *= d;
  }
  return p;
}

/**
 * Reshape to `shape`. A symbolic dim equal to x's dim at the same position is copied (ONNX 0), and at
 * most one -1 (or one other symbolic dim) is inferred.
 */
export function reshape(x: Value, shape: readonly Dim[]): Value {
  if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return x;
  const spec: number[] = [];
  const outShape: Dim[] = [];
  let inferAt = -1;
  shape.forEach((d, i) => {
    if (typeof d === 'number' && d >= 0) {
      spec.push(d);
      outShape.push(d);
    } else if (typeof d === 'string' && x.shape[i] === d) {
      spec.push(0);
      outShape.push(d);
    } else {
      if (inferAt >= 0) throw new Error(`reshape ${x}: more than one dim to infer in [${shape.join(',')}]`);
      inferAt = i;
      spec.push(-1);
      outShape.push(d);
    }
  });
  if (inferAt >= 0 && typeof outShape[inferAt] === 'number') {
    const total = staticProduct(x.shape);
    const rest = staticProduct(outShape.filter((_, i) => i !== inferAt));
    outShape[inferAt] = total !== null && rest !== null ? total / rest : `${x.name}_d${inferAt}`;
  }
  const totalIn = staticProduct(x.shape);
  const totalOut = staticProduct(outShape);
  if (totalIn !== null && totalOut !== null && totalIn !== totalOut) {
    throw new Error(`reshape ${x}: cannot reshape ${totalIn} elements to [${shape.join(',')}]`);
  }
  const g = x.graph;
  const [out] = g.node('Reshape', [x, g.ints(spec)], {}, [{ dtype: x.dtype, shape: outShape }]);
  g.record('Reshape', [x], [out], ([dOut]) => [dOut ? reshapeLike(dOut, x) : null]);
  return out;
}

/** Reshape `x` to the (possibly dynamic) shape of `like`. */
export function reshapeLike(x: Value, like: Value): Value {
  const g = x.graph;
  const [out] = g.node('Reshape', [x, g.shapeOf(like)], {}, [{ dtype: x.dtype, shape: like.shape }]);
  g.record('Reshape', [x], [out], ([dOut]) => [dOut ? reshapeLike(dOut, x) : null]);
  return out;
}

// d transpose(x, p) = transpose(g, p^-1)
export function transpose(x: Value, perm?: readonly number[]): Value {
  const p = perm ? perm.map((a) => normAxis(a, x.rank, 'Transpose')) : [...Array(x.rank).keys()].reverse();
  const inv = new Array<number>(p.length);
  p.forEach((a, i) => {
    inv[a] = i;
  });
  const g = x.graph;
  const [out] = g.node('Transpose', [x], { perm: p }, [{ dtype: x.dtype, shape: p.map((a) => x.shape[a]) }]);
  g.record('Transpose', [x], [out], ([dOut]) => [dOut ? transpose(dOut, inv) : null]);
  return out;
}

/** Swaps the last two axes (the matrix transpose of a batch of matrices). */
export function transposeLast2(x: Value): Value {
  const p = [...Array(x.rank).keys()];
  [p[x.rank - 2], p[x.rank - 1]] = [p[x.rank - 1], p[x.rank - 2]];
  return transpose(x, p);
}

// d unsqueeze = squeeze(g) at the same axes
export function unsqueeze(x: Value, axes: readonly number[]): Value {
  const rank = x.rank + axes.length;
  const ax = axes.map((a) => normAxis(a, rank, 'Unsqueeze')).sort((a, b) => a - b);
  const shape: Dim[] = [];
  let src = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[src++]);
  const g = x.graph;
  const [out] = g.node('Unsqueeze', [x, g.ints(ax)], {}, [{ dtype: x.dtype, shape }]);
  g.record('Unsqueeze', [x], [out], ([dOut]) => [dOut ? squeeze(dOut, ax) : null]);
  return out;
}

// d squeeze = unsqueeze(g) at the same axes
export function squeeze(x: Value, axes: readonly number[]): Value {
  const ax = axes.map((a) => normAxis(a, x.rank, 'Squeeze')).sort((a, b) => a - b);
  for (const a of ax) if (x.shape[a] !== 1) throw new Error(`squeeze ${x}: axis ${a} has size ${x.shape[a]}, not 1`);
  const g = x.graph;
  const [out] = g.node('Squeeze', [x, g.ints(ax)], {}, [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !ax.includes(i)) }]);
  g.record('Squeeze', [x], [out], ([dOut]) => [dOut ? unsqueeze(dOut, ax) : null]);
  return out;
}

/** Broadcasts x to `like`'s shape. Backward: sum over the broadcast axes. */
export function expandTo(x: Value, like: Value): Value {
  const g = x.graph;
  const shape = broadcastShapes(x.shape, like.shape, 'Expand');
  const [out] = g.node('Expand', [x, g.shapeOf(like)], {}, [{ dtype: x.dtype, shape }]);
  g.record('Expand', [x], [out], ([dOut]) => [dOut ? unbroadcast(dOut, x.shape) : null]);
  return out;
}

// d concat = the matching slices of g (sizes along the axis must be static)
export function concat(xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) throw new Error('concat: no inputs');
  const ax = normAxis(axis, xs[0].rank, 'Concat');
  const sizes = xs.map((x) => x.dim(ax));
  const shape = [...xs[0].shape];
  shape[ax] = sizes.reduce((a, b) => a + b, 0);
  const g = xs[0].graph;
  const [out] = g.node('Concat', [...xs], { axis: ax }, [{ dtype: xs[0].dtype, shape }]);
  g.record('Concat', [...xs], [out], ([dOut]) => {
    if (!dOut) return xs.map(() => null);
    let start = 0;
    return sizes.map((n) => {
      const piece = slice(dOut, [start], [start + n], [ax]);
      start += n;
      return piece;
    });
  });
  return out;
}

/** Splits x along `axis` into pieces of the given static sizes. */
export function split(x: Value, sizes: readonly number[], axis: number): Value[] {
  let start = 0;
  return sizes.map((n) => {
    const piece = slice(x, [start], [start + n], [axis]);
    start += n;
    return piece;
  });
}

// d slice = g zero-padded back into x's shape (sliced axes must be static; step 1)
export function slice(x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[]): Value {
  const ax = axes.map((a) => normAxis(a, x.rank, 'Slice'));
  const shape = [...x.shape];
  const begin = new Array<number>(x.rank).fill(0);
  const after = new Array<number>(x.rank).fill(0);
  ax.forEach((a, i) => {
    const n = x.dim(a);
    const clampIdx = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const s = clampIdx(starts[i]);
    const e = Math.max(clampIdx(ends[i]), s);
    shape[a] = e - s;
    begin[a] = s;
    after[a] = n - e;
  });
  const g = x.graph;
  const [out] = g.node('Slice', [x, g.ints(starts), g.ints(ends), g.ints(ax)], {}, [{ dtype: x.dtype, shape }]);
  g.record('Slice', [x], [out], ([dOut]) => {
    if (!dOut) return [null];
    const [padded] = g.node('Pad', [dOut, g.ints([...begin, ...after])], { mode: 'constant' }, [{ dtype: x.dtype, shape: x.shape }]);
    return [padded];
  });
  return out;
}

/**
 * Gather rows of `data` along axis 0 (an embedding lookup). Backward: scatter-add g into zeros.
 */
export function gather(data: Value, indices: Value): Value {
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32') throw new Error(`gather: indices ${indices} must be int64 or int32`);
  const g = data.graph;
  const shape = [...indices.shape, ...data.shape.slice(1)];
  const [out] = g.node('Gather', [data, indices], { axis: 0 }, [{ dtype: data.dtype, shape }]);
  g.record('Gather', [data, indices], [out], ([dOut]) => {
    if (!dOut) return [null, null];
    const idx = indices.dtype === 'int64' ? indices : castIndices(indices);
    const [where1] = g.node('Unsqueeze', [idx, g.ints([-1])], {}, [{ dtype: 'int64', shape: [...idx.shape, 1] }]);
    const [scattered] = g.node('ScatterND', [zerosLike(data), where1, dOut], { reduction: 'add' }, [data]);
    return [scattered, null];
  });
  return out;
}

function castIndices(x: Value): Value {
  const [out] = x.graph.node('Cast', [x], { to: 7 }, [{ dtype: 'int64', shape: x.shape }]);
  return out;
}

/**
 * One-hot encoding along a new last axis (not differentiable; indices are data). onnxruntime has no
 * float64 OneHot kernel, so float64 one-hots are made in float32 and cast (0 and 1 are exact).
 */
export function oneHot(indices: Value, depth: number, dtype: 'float32' | 'float64'): Value {
  const g = indices.graph;
  const values = g.constant({ dtype: 'float32', shape: [2], data: Float32Array.of(0, 1) });
  const shape = [...indices.shape, depth];
  const [out] = g.node('OneHot', [indices, g.ints([depth]), values], { axis: -1 }, [{ dtype: 'float32', shape }]);
  if (dtype === 'float32') return out;
  return g.node('Cast', [out], { to: 11 }, [{ dtype, shape }])[0];
}
