/** Matrix product, softmax family, layer normalisation and top-k, each with its gradient rule. */
import { broadcastShapes, type Dim, normAxis, type Value } from '../graph';
import { div, exp, mul, sub, unbroadcast, zerosLike } from './elementwise';
import { reduceMean, reduceSum, sumRows } from './reduce';
import { reshape, reshapeLike, transposeLast2 } from './shape';

/** Batched matrix product with broadcasting batch dims; both operands have rank >= 2. */
export function matmul(x: Value, y: Value): Value {
  if (x.rank < 2 || y.rank < 2) throw new Error(`matmul: ${x} and ${y} must both have rank >= 2`);
  const k1 = x.shape[x.rank - 1];
  const k2 = y.shape[y.rank - 2];
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    throw new Error(`matmul: inner dims differ, ${x} @ ${y}`);
  }
  const batch = broadcastShapes(x.shape.slice(0, -2), y.shape.slice(0, -2), 'MatMul');
  const shape: Dim[] = [...batch, x.shape[x.rank - 2], y.shape[y.rank - 1]];
  const g = x.graph;
  const [out] = g.node('MatMul', [x, y], {}, [{ dtype: x.dtype, shape }]);
  g.record('MatMul', [x, y], [out], ([dOut]) => {
    if (!dOut) return [null, null];
    const dx = unbroadcast(matmul(dOut, transposeLast2(y)), x.shape);
    // A shared weight (rank 2) under a batched input: fold the batch into rows, one GEMM instead of a sum.
    if (y.rank === 2 && x.rank > 2) {
      const rows = reshape(x, [-1, x.shape[x.rank - 1]]);
      const grads = reshape(dOut, [-1, y.shape[1]]);
      return [dx, matmul(transposeLast2(rows), grads)];
    }
    return [dx, unbroadcast(matmul(transposeLast2(x), dOut), y.shape)];
  });
  return out;
}

/**
 * y = x W^T + b for W stored [out, in] (nn.Linear). One Gemm (transB) instead of Transpose + MatMul +
 * Add; inputs of rank > 2 are folded to rows first. Backward: dx = g W, dW = g^T x, db = sum_rows g.
 */
export function linear(x: Value, w: Value, b: Value | null): Value {
  const [outF, inF] = [w.dim(0), w.dim(1)];
  if (x.shape[x.rank - 1] !== inF) throw new Error(`linear: ${x} does not match weight ${w}`);
  const g = x.graph;
  const rows = x.rank === 2 ? x : reshape(x, [-1, inF]);
  const [y2] = g.node('Gemm', b ? [rows, w, b] : [rows, w], { transB: 1 }, [{ dtype: x.dtype, shape: [rows.shape[0], outF] }]);
  const inputs = b ? [rows, w, b] : [rows, w];
  g.record('Gemm', inputs, [y2], ([dOut]) => {
    if (!dOut) return inputs.map(() => null);
    const [dx] = g.node('MatMul', [dOut, w], {}, [rows]);
    const [dw] = g.node('Gemm', [dOut, rows], { transA: 1 }, [w]);
    const grads: (Value | null)[] = [dx, dw];
    if (b) grads.push(sumRows(dOut));
    return grads;
  });
  return x.rank === 2 ? y2 : unfoldRows(y2, x);
}

/**
 * y = x W + b for W stored [in, out]: the layout of Hugging Face's Conv1D (GPT-2's projections), the
 * transpose of nn.Linear's. One Gemm; inputs of rank > 2 are folded to rows first.
 * Backward: dx = g W^T, dW = x^T g, db = sum_rows g.
 */
export function affine(x: Value, w: Value, b: Value | null): Value {
  const [inF, outF] = [w.dim(0), w.dim(1)];
  if (x.shape[x.rank - 1] !== inF) throw new Error(`affine: ${x} does not match weight ${w} ([in, out])`);
  const g = x.graph;
  const rows = x.rank === 2 ? x : reshape(x, [-1, inF]);
  const inputs = b ? [rows, w, b] : [rows, w];
  const [y2] = g.node('Gemm', inputs, {}, [{ dtype: x.dtype, shape: [rows.shape[0], outF] }]);
  g.record('Gemm', inputs, [y2], ([dOut]) => {
    if (!dOut) return inputs.map(() => null);
    const [dx] = g.node('Gemm', [dOut, w], { transB: 1 }, [rows]);
    const [dw] = g.node('Gemm', [rows, dOut], { transA: 1 }, [w]);
    const grads: (Value | null)[] = [dx, dw];
    if (b) grads.push(sumRows(dOut));
    return grads;
  });
  return x.rank === 2 ? y2 : unfoldRows(y2, x);
}

/**
 * Rows [N, out] back to x's leading axes [..., out]. With two or more symbolic leading axes (batch and
 * sequence) the target shape is taken from x at run time, as a static reshape can infer only one.
 */
function unfoldRows(y: Value, x: Value): Value {
  const shape = [...x.shape.slice(0, -1), y.shape[1]];
  if (shape.filter((d) => typeof d !== 'number').length <= 1) return reshape(y, shape);
  const g = x.graph;
  const [lead] = g.node('Slice', [g.shapeOf(x), g.ints([0]), g.ints([x.rank - 1])], {}, [{ dtype: 'int64', shape: [x.rank - 1] }]);
  const [target] = g.node('Concat', [lead, g.ints([y.dim(1)])], { axis: 0 }, [{ dtype: 'int64', shape: [x.rank] }]);
  const [out] = g.node('Reshape', [y, target], {}, [{ dtype: y.dtype, shape }]);
  g.record('Reshape', [y], [out], ([dOut]) => [dOut ? reshapeLike(dOut, y) : null]);
  return out;
}

// d softmax = y * (g - sum(g*y))
export function softmax(x: Value, axis = -1): Value {
  const ax = normAxis(axis, x.rank, 'Softmax');
  const g = x.graph;
  const [out] = g.node('Softmax', [x], { axis: ax }, [x]);
  g.record('Softmax', [x], [out], ([dOut]) => {
    if (!dOut) return [null];
    return [mul(out, sub(dOut, reduceSum(mul(dOut, out), [ax], true)))];
  });
  return out;
}

// d logsoftmax = g - softmax * sum(g)
export function logSoftmax(x: Value, axis = -1): Value {
  const ax = normAxis(axis, x.rank, 'LogSoftmax');
  const g = x.graph;
  const [out] = g.node('LogSoftmax', [x], { axis: ax }, [x]);
  g.record('LogSoftmax', [x], [out], ([dOut]) => {
    if (!dOut) return [null];
    return [sub(dOut, mul(exp(out), reduceSum(dOut, [ax], true)))];
  });
  return out;
}

/**
 * LayerNormalization over the last axis (PyTorch's nn.LayerNorm(normalized_shape=D)), as ONNX's fused
 * op. The backward uses the op's saved Mean and InvStdDev outputs in float32; those outputs are
 * float32 even for float64 inputs, so float64 graphs recompute them in float64 instead.
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = g * gamma
 */
export function layerNorm(x: Value, gamma: Value, beta: Value, eps = 1e-5): Value {
  const g = x.graph;
  const stats = { dtype: 'float32' as const, shape: [...x.shape.slice(0, -1), 1] };
  const [out, savedMean, savedRstd] = g.node('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: { float: eps } }, [
    x,
    stats,
    stats,
  ]);
  g.record('LayerNormalization', [x, gamma, beta], [out], ([dOut]) => {
    if (!dOut) return [null, null, null];
    let xhat: Value;
    let rstd: Value;
    if (x.dtype === 'float32') {
      rstd = savedRstd;
      xhat = mul(sub(x, savedMean), rstd);
    } else {
      const centred = sub(x, reduceMean(x, [-1], true));
      rstd = div(1, sqrtOf(reduceMean(mul(centred, centred), [-1], true), eps));
      xhat = mul(centred, rstd);
    }
    const dxhat = mul(dOut, gamma);
    const dx = mul(rstd, sub(sub(dxhat, reduceMean(dxhat, [-1], true)), mul(xhat, reduceMean(mul(dxhat, xhat), [-1], true))));
    return [dx, unbroadcast(mul(dOut, xhat), gamma.shape), unbroadcast(dOut, beta.shape)];
  });
  return out;
}

function sqrtOf(v: Value, eps: number): Value {
  const g = v.graph;
  const [plus] = g.node('Add', [v, g.scalar(eps, v.dtype)], {}, [v]);
  const [root] = g.node('Sqrt', [plus], {}, [v]);
  return root;
}

/** The k largest (or smallest) entries along `axis`. Backward: scatter g back to the picked positions. */
export function topk(x: Value, k: number, axis = -1, largest = true): { values: Value; indices: Value } {
  const ax = normAxis(axis, x.rank, 'TopK');
  const shape = [...x.shape];
  shape[ax] = k;
  const g = x.graph;
  const [values, indices] = g.node('TopK', [x, g.ints([k])], { axis: ax, largest: largest ? 1 : 0, sorted: 1 }, [
    { dtype: x.dtype, shape },
    { dtype: 'int64', shape },
  ]);
  g.record('TopK', [x], [values, indices], ([dValues]) => {
    if (!dValues) return [null];
    const [scattered] = g.node('ScatterElements', [zerosLike(x), indices, dValues], { axis: ax }, [x]);
    return [scattered];
  });
  return { values, indices };
}
