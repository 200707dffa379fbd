/**
 * Element-wise ops with NumPy broadcasting. Each op emits its ONNX node(s) and records its gradient
 * rule on the tape right beside the forward.
 */
import { broadcastShapes, type Dim, type DType, type Graph, isFloat, typedArray, Value } from '../graph';
import { reduceSum } from './reduce';

export type Operand = Value | number;

function graphOf(...xs: Operand[]): Graph {
  for (const x of xs) if (x instanceof Value) return x.graph;
  throw new Error('an op needs at least one tensor operand');
}

function dtypeOf(...xs: Operand[]): DType {
  for (const x of xs) if (x instanceof Value) return x.dtype;
  throw new Error('an op needs at least one tensor operand');
}

/** Turns a JS number into a scalar constant of the other operand's dtype. */
export function lift(x: Operand, like: Operand): Value {
  if (x instanceof Value) return x;
  return graphOf(like).scalar(x, dtypeOf(like));
}

/** Sums `g` down to `shape`, undoing broadcasting (the adjoint of broadcast). */
export function unbroadcast(g: Value, shape: readonly Dim[]): Value {
  const lead = g.rank - shape.length;
  const kept: number[] = [];
  for (let i = 0; i < shape.length; i++) if (shape[i] === 1 && g.shape[lead + i] !== 1) kept.push(lead + i);
  let r = g;
  if (kept.length) r = reduceSum(r, kept, true);
  if (lead > 0) r = reduceSum(r, [...Array(lead).keys()], false);
  return r;
}

function binary(
  opType: string,
  a: Operand,
  b: Operand,
  rule: ((g: Value, x: Value, y: Value, out: Value) => [Value | null, Value | null]) | null,
): Value {
  const x = lift(a, b);
  const y = lift(b, a);
  if (x.dtype !== y.dtype) throw new Error(`${opType}: dtype mismatch ${x} vs ${y}`);
  const g = x.graph;
  const [out] = g.node(opType, [x, y], {}, [{ dtype: x.dtype, shape: broadcastShapes(x.shape, y.shape, opType) }]);
  g.record(
    opType,
    [x, y],
    [out],
    rule
      ? ([dOut]) => {
          if (!dOut) return [null, null];
          const [dx, dy] = rule(dOut, x, y, out);
          return [dx && unbroadcast(dx, x.shape), dy && unbroadcast(dy, y.shape)];
        }
      : null,
  );
  return out;
}

function unary(opType: string, x: Value, rule: ((g: Value, x: Value, out: Value) => Value) | null, attrs = {}): Value {
  const g = x.graph;
  const [out] = g.node(opType, [x], attrs, [{ dtype: x.dtype, shape: x.shape }]);
  g.record(opType, [x], [out], rule ? ([dOut]) => [dOut ? rule(dOut, x, out) : null] : null);
  return out;
}

// d(x+y) = (g, g)
export const add = (a: Operand, b: Operand): Value => binary('Add', a, b, (g) => [g, g]);
// d(x-y) = (g, -g)
export const sub = (a: Operand, b: Operand): Value => binary('Sub', a, b, (g) => [g, neg(g)]);
// d(x*y) = (g*y, g*x)
export const mul = (a: Operand, b: Operand): Value => binary('Mul', a, b, (g, x, y) => [mul(g, y), mul(g, x)]);
// d(x/y) = (g/y, -g*x/y^2) = (g/y, -g*out/y)
export const div = (a: Operand, b: Operand): Value =>
  binary('Div', a, b, (g, _x, y, out) => {
    const gy = div(g, y);
    return [gy, neg(mul(gy, out))];
  });
// d(x^y) = (g*y*x^(y-1), g*out*ln x); the exponent gradient is only formed when asked for
export const pow = (a: Operand, b: Operand): Value =>
  binary('Pow', a, b, (g, x, y, out) => [mul(g, mul(y, pow(x, sub(y, 1)))), mul(g, mul(out, log(x)))]);
// Min / Max route the gradient to the selected operand; on a tie it goes to the first (torch splits it
// evenly; both are valid subgradients, and they agree everywhere away from ties).
export const minimum = (a: Operand, b: Operand): Value =>
  binary('Min', a, b, (g, x, y) => {
    const pickX = lessOrEqual(x, y);
    return [where(pickX, g, 0), where(pickX, 0, g)];
  });
export const maximum = (a: Operand, b: Operand): Value =>
  binary('Max', a, b, (g, x, y) => {
    const pickX = greaterOrEqual(x, y);
    return [where(pickX, g, 0), where(pickX, 0, g)];
  });

// d(-x) = -g
export const neg = (x: Value): Value => unary('Neg', x, (g) => neg(g));
// d(e^x) = g*e^x
export const exp = (x: Value): Value => unary('Exp', x, (g, _x, out) => mul(g, out));
// d(ln x) = g/x
export const log = (x: Value): Value => unary('Log', x, (g, xv) => div(g, xv));
// d(sqrt x) = g/(2 sqrt x)
export const sqrt = (x: Value): Value => unary('Sqrt', x, (g, _x, out) => div(g, mul(out, 2)));
// d|x| = g*sign(x)
export const abs = (x: Value): Value => unary('Abs', x, (g, xv) => mul(g, sign(xv)));
// d relu(x) = g where x > 0, else 0
export const relu = (x: Value): Value => unary('Relu', x, (g, xv) => where(greater(xv, 0), g, 0));
// d tanh(x) = g*(1-tanh^2)
export const tanh = (x: Value): Value => unary('Tanh', x, (g, _x, out) => mul(g, sub(1, mul(out, out))));
// d sigmoid(x) = g*s*(1-s)
export const sigmoid = (x: Value): Value => unary('Sigmoid', x, (g, _x, out) => mul(g, mul(out, sub(1, out))));
// d erf(x) = g * 2/sqrt(pi) * e^(-x^2)
export function erf(x: Value): Value {
  const g = x.graph;
  const out = x.dtype === 'float64' ? erf64(x) : g.node('Erf', [x], {}, [x])[0];
  g.record('Erf', [x], [out], ([dOut]) => [dOut ? mul(dOut, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI))) : null]);
  return out;
}

/**
 * onnxruntime has no float64 Erf kernel, so float64 graphs (used for gradient checks) evaluate erf
 * from its Maclaurin series for |x| <= 3 (about 1e-14 absolute) and the asymptotic erfc expansion
 * beyond (about 1e-9). Raw nodes: the gradient is the rule recorded by `erf`, not this series.
 */
function erf64(x: Value): Value {
  const g = x.graph;
  const raw = (op: string, a: Value, b: Value | number) => g.node(op, [a, typeof b === 'number' ? g.scalar(b, 'float64') : b], {}, [x])[0];
  const ax = g.node('Abs', [x], {}, [x])[0];
  const small = raw('Min', ax, 3);
  const z = raw('Mul', small, small);
  // Horner over a_n = (-1)^n / (n! (2n+1)), 60 terms converge at |x| = 3.
  let acc: Value = g.node('ConstantOfShape', [g.shapeOf(x)], { value: { dtype: 'float64', shape: [1], data: Float64Array.of(0) } }, [x])[0];
  let fact = 1;
  const coef: number[] = [];
  for (let n = 0; n < 60; n++) {
    if (n > 0) fact *= n;
    coef.push((n % 2 ? -1 : 1) / (fact * (2 * n + 1)));
  }
  for (let n = coef.length - 1; n >= 0; n--) acc = raw('Add', raw('Mul', acc, z), coef[n]);
  const series = raw('Mul', raw('Mul', acc, small), 2 / Math.sqrt(Math.PI));
  // erfc(t) ~ e^(-t^2)/(t sqrt(pi)) * sum_k (-1)^k (2k-1)!! / (2t^2)^k, used for t > 3.
  const big = raw('Max', ax, 3);
  const inv2t2 = raw('Div', g.scalar(1, 'float64'), raw('Mul', raw('Mul', big, big), 2));
  let tail: Value = g.scalar(1, 'float64');
  let term = 1;
  let power: Value = g.scalar(1, 'float64');
  for (let k = 1; k <= 8; k++) {
    term *= -(2 * k - 1);
    power = raw('Mul', power, inv2t2);
    tail = raw('Add', raw('Mul', power, term), tail);
  }
  const gauss = g.node('Exp', [g.node('Neg', [raw('Mul', big, big)], {}, [x])[0]], {}, [x])[0];
  const erfc = raw('Mul', raw('Div', gauss, raw('Mul', big, Math.sqrt(Math.PI))), tail);
  const asym = raw('Sub', g.scalar(1, 'float64'), erfc);
  const isSmall = g.node('LessOrEqual', [ax, g.scalar(3, 'float64')], {}, [{ dtype: 'bool', shape: x.shape }])[0];
  const magnitude = g.node('Where', [isSmall, series, asym], {}, [x])[0];
  return raw('Mul', magnitude, g.node('Sign', [x], {}, [x])[0]);
}
export const square = (x: Value): Value => mul(x, x);

/** Exact (erf) GELU, PyTorch's nn.GELU default: x * Phi(x). Gradient: Phi(x) + x * phi(x). */
export function gelu(x: Value): Value {
  const g = x.graph;
  const [scaled] = g.node('Mul', [x, g.scalar(Math.SQRT1_2, x.dtype)], {}, [x]);
  const e = x.dtype === 'float64' ? erf64(scaled) : g.node('Erf', [scaled], {}, [x])[0];
  const [onePlus] = g.node('Add', [e, g.scalar(1, x.dtype)], {}, [x]);
  const [half] = g.node('Mul', [onePlus, g.scalar(0.5, x.dtype)], {}, [x]);
  const [out] = g.node('Mul', [x, half], {}, [x]);
  g.record('Gelu', [x], [out], ([dOut]) => {
    if (!dOut) return [null];
    const pdf = mul(exp(mul(mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return [mul(dOut, add(half, mul(x, pdf)))];
  });
  return out;
}

/**
 * GELU in its tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's activation
 * (Hugging Face's "gelu_new", torch's gelu(approximate='tanh')). With u the tanh's argument and t = tanh(u):
 *   d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
 */
export function geluTanh(x: Value): Value {
  const g = x.graph;
  const c = Math.sqrt(2 / Math.PI);
  const k = 0.044715;
  const raw = (op: string, a: Value, b: Value | number) => g.node(op, [a, typeof b === 'number' ? g.scalar(b, x.dtype) : b], {}, [x])[0];
  const x3 = raw('Mul', raw('Mul', x, x), x);
  const u = raw('Mul', raw('Add', x, raw('Mul', x3, k)), c);
  const [t] = g.node('Tanh', [u], {}, [x]);
  const half = raw('Mul', raw('Add', t, 1), 0.5);
  const out = raw('Mul', x, half);
  g.record('GeluTanh', [x], [out], ([dOut]) => {
    if (!dOut) return [null];
    const dt = mul(mul(sub(1, mul(t, t)), add(mul(mul(x, x), 3 * k * c), c)), mul(x, 0.5));
    return [mul(dOut, add(half, dt))];
  });
  return out;
}

/** The identity in the forward pass; blocks the gradient (torch's .detach()). */
export function stopGradient(x: Value): Value {
  const [out] = x.graph.node('Identity', [x], {}, [x]);
  x.graph.record('StopGradient', [x], [out], null);
  return out;
}

// ---- non-differentiable helpers -------------------------------------------------------------

function compare(opType: string, a: Operand, b: Operand): Value {
  const x = lift(a, b);
  const y = lift(b, a);
  const g = x.graph;
  const [out] = g.node(opType, [x, y], {}, [{ dtype: 'bool', shape: broadcastShapes(x.shape, y.shape, opType) }]);
  g.record(opType, [x, y], [out], null);
  return out;
}

export const greater = (a: Operand, b: Operand): Value => compare('Greater', a, b);
export const less = (a: Operand, b: Operand): Value => compare('Less', a, b);
export const greaterOrEqual = (a: Operand, b: Operand): Value => compare('GreaterOrEqual', a, b);
export const lessOrEqual = (a: Operand, b: Operand): Value => compare('LessOrEqual', a, b);
export const equal = (a: Operand, b: Operand): Value => compare('Equal', a, b);

export function logicalAnd(a: Value, b: Value): Value {
  const [out] = a.graph.node('And', [a, b], {}, [{ dtype: 'bool', shape: broadcastShapes(a.shape, b.shape, 'And') }]);
  return out;
}

export function sign(x: Value): Value {
  const [out] = x.graph.node('Sign', [x], {}, [x]);
  return out;
}

const CAST_TO: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };

/** Cast between dtypes; differentiable between float types (the gradient is cast back). */
export function cast(x: Value, dtype: DType): Value {
  if (x.dtype === dtype) return x;
  const g = x.graph;
  const [out] = g.node('Cast', [x], { to: CAST_TO[dtype] }, [{ dtype, shape: x.shape }]);
  const differentiable = isFloat(x.dtype) && isFloat(dtype);
  g.record('Cast', [x], [out], differentiable ? ([dOut]) => [dOut ? cast(dOut, x.dtype) : null] : null);
  return out;
}

/** where(cond, a, b): the gradient goes to `a` where cond holds and to `b` elsewhere. */
export function where(cond: Value, a: Operand, b: Operand): Value {
  const x = lift(a, b);
  const y = lift(b, a);
  const g = cond.graph;
  const shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, 'Where'), y.shape, 'Where');
  const [out] = g.node('Where', [cond, x, y], {}, [{ dtype: x.dtype, shape }]);
  g.record('Where', [cond, x, y], [out], ([dOut]) => {
    if (!dOut) return [null, null, null];
    // A scalar zero broadcasts in Where: no zero tensor to build per gradient.
    return [null, unbroadcast(where(cond, dOut, 0), x.shape), unbroadcast(where(cond, 0, dOut), y.shape)];
  });
  return out;
}

/** clip(x, lo, hi) with constant bounds: the gradient passes where lo <= x <= hi, as in torch.clamp. */
export function clip(x: Value, lo: number, hi: number): Value {
  const g = x.graph;
  const [out] = g.node('Clip', [x, g.scalar(lo, x.dtype), g.scalar(hi, x.dtype)], {}, [x]);
  g.record('Clip', [x], [out], ([dOut]) => {
    if (!dOut) return [null];
    const inside = logicalAnd(greaterOrEqual(x, lo), lessOrEqual(x, hi));
    return [where(inside, dOut, 0)];
  });
  return out;
}

/** A zero tensor with x's shape and dtype (a constant when static, ConstantOfShape otherwise). */
export function zerosLike(x: Value): Value {
  return fill(x, 0);
}

export function onesLike(x: Value): Value {
  return fill(x, 1);
}

export function fill(x: Value, value: number, dtype: DType = x.dtype): Value {
  const g = x.graph;
  const [out] = g.node('ConstantOfShape', [g.shapeOf(x)], { value: { dtype, shape: [1], data: typedArray(dtype, [value]) } }, [
    { dtype, shape: x.shape },
  ]);
  return out;
}
