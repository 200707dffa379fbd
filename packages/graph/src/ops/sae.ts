/**
 * Ops that sparse autoencoders need and whose backward is not the plain chain rule: JumpReLU and the
 * Heaviside step with straight-through threshold gradients (Rajamanoharan et al. 2024, as SAELens
 * trains them), and the unit-norm decoder projection that drops the gradient component parallel to
 * each decoder row.
 */
import { broadcastShapes, type Value } from '../graph';
import { abs, cast, div, greater, less, mul, neg, sub, unbroadcast } from './elementwise';
import { reduceSum } from './reduce';

/** The rectangle kernel K(u) = 1 where |u| < 1/2, else 0: the pseudo-derivative's window. */
function rectangle(u: Value): Value {
  return cast(less(abs(u), 0.5), u.dtype);
}

/** K((x - θ) / ε) / ε: a finite-width stand-in for the Dirac delta at the threshold. */
function window(x: Value, threshold: Value, bandwidth: number): Value {
  return div(rectangle(div(sub(x, threshold), bandwidth)), bandwidth);
}

/**
 * JumpReLU(x; θ) = x · H(x − θ), θ broadcast over x's leading axes.
 *   dx = g · H(x − θ)                       (exact away from θ)
 *   dθ = −θ · K((x − θ)/ε)/ε · g            (straight-through estimate; the true derivative is a delta)
 */
export function jumpRelu(x: Value, threshold: Value, bandwidth: number): Value {
  if (!(bandwidth > 0)) throw new Error(`jumpRelu: bandwidth must be > 0, got ${bandwidth}`);
  const g = x.graph;
  const gate = cast(greater(x, threshold), x.dtype);
  const [out] = g.node('Mul', [x, gate], {}, [{ dtype: x.dtype, shape: broadcastShapes(x.shape, gate.shape, 'JumpReLU') }]);
  g.record('JumpReLU', [x, threshold], [out], ([dOut]) => {
    if (!dOut) return [null, null];
    const dTheta = neg(mul(mul(threshold, window(x, threshold, bandwidth)), dOut));
    return [mul(dOut, gate), unbroadcast(dTheta, threshold.shape)];
  });
  return out;
}

/**
 * H(x − θ) as 0/1 in x's dtype, θ broadcast over x's leading axes (JumpReLU SAEs count L0 with it).
 *   dx = 0 (as SAELens: the penalty moves thresholds, not pre-activations)
 *   dθ = −K((x − θ)/ε)/ε · g
 */
export function heavisideStep(x: Value, threshold: Value, bandwidth: number): Value {
  if (!(bandwidth > 0)) throw new Error(`heavisideStep: bandwidth must be > 0, got ${bandwidth}`);
  const g = x.graph;
  const [out] = g.node('Cast', [greater(x, threshold)], { to: x.dtype === 'float64' ? 11 : 1 }, [
    { dtype: x.dtype, shape: broadcastShapes(x.shape, threshold.shape, 'Step') },
  ]);
  g.record('Step', [x, threshold], [out], ([dOut]) => {
    if (!dOut) return [null, null];
    return [null, unbroadcast(neg(mul(window(x, threshold, bandwidth), dOut)), threshold.shape)];
  });
  return out;
}

/**
 * The identity on a decoder W [rows, d] whose rows are kept at unit norm; its backward removes from
 * each row's gradient the component parallel to that row, g − (g·w / w·w) w, so the optimiser step
 * moves rows along the sphere and renormalising after the step undoes only second-order drift.
 */
export function unitNormRows(w: Value): Value {
  if (w.rank !== 2) throw new Error(`unitNormRows: ${w} must be a matrix [rows, d]`);
  const g = w.graph;
  const [out] = g.node('Identity', [w], {}, [w]);
  g.record('UnitNormRows', [w], [out], ([dOut]) => {
    if (!dOut) return [null];
    const along = div(reduceSum(mul(dOut, w), [1], true), reduceSum(mul(w, w), [1], true));
    return [sub(dOut, mul(along, w))];
  });
  return out;
}
