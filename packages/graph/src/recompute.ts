/**
 * Activation recomputation (gradient checkpointing, torch.utils.checkpoint): `recompute(fn, x)`
 * computes fn(x) as usual, but the backward pass does not keep fn's intermediate values alive until
 * it needs them: it traces fn again from x and takes the gradients through that copy. The forward's
 * intermediates then die as soon as the forward has used them, and at most one segment's are alive
 * during the backward pass, at the cost of running each segment's forward twice.
 *
 * Two things make the copy a real copy inside one ONNX program. Its input is x + 0 * (dy's first
 * element), so onnxruntime can neither run it before the backward pass reaches the segment (it
 * depends on the incoming gradient) nor merge it with the original nodes (common-subexpression
 * elimination sees different inputs). And a segment that draws random numbers (dropout) is refused:
 * its copy would draw other ones and the gradient would belong to another function.
 */
import { gradients } from './autodiff';
import type { TapeEntry, Value } from './graph';
import { add, mul } from './ops/elementwise';

const RANDOM = new Set(['RandomUniformLike', 'RandomUniform', 'RandomNormal', 'RandomNormalLike', 'Bernoulli']);

/** fn(x), with its backward recomputing fn from x (see the file comment). fn must be deterministic. */
export function recompute(fn: (x: Value) => Value, x: Value): Value {
  const g = x.graph;
  const start = g.tape.length;
  const y = fn(x);
  const segment = g.tape.splice(start);
  const random = segment.find((e) => RANDOM.has(e.op));
  if (random)
    throw new Error(
      `recompute: the segment draws random numbers (${random.op}, e.g. dropout in train mode); recomputing it would draw others`,
    );
  // What the segment reads from outside itself: x, parameters, masks, position tables.
  const produced = new Set(segment.flatMap((e: TapeEntry) => e.outputs.map((o) => o.id)));
  const seen = new Set<number>();
  const external: Value[] = [];
  for (const e of segment)
    for (const i of e.inputs)
      if (!produced.has(i.id) && !seen.has(i.id)) {
        seen.add(i.id);
        external.push(i);
      }
  if (!seen.has(x.id)) external.unshift(x);
  const differentiable = external.filter((v) => v.dtype === 'float32' || v.dtype === 'float64');
  g.record('Recompute', external, [y], ([dy]) => {
    if (!dy) return external.map(() => null);
    // A dependence on dy that changes nothing: the copy runs in the backward pass and stays a copy.
    const [flat] = g.node('Reshape', [dy, g.ints([-1])], {}, [{ dtype: dy.dtype, shape: ['dy_size'] }]);
    const [first] = g.node('Gather', [flat, g.scalar(0, 'int64')], { axis: 0 }, [{ dtype: dy.dtype, shape: [] }]);
    const x2 = add(x, mul(first, 0));
    const replaced = new Map([[x.id, x2]]);
    const y2 = fn(x2);
    // Gradients through the copy with respect to the copy's input and every captured float value.
    const wrt = differentiable.map((v) => replaced.get(v.id) ?? v);
    const grads = gradients(y2, wrt, dy);
    const byId = new Map(differentiable.map((v, k) => [v.id, grads[k]]));
    return external.map((v) => byId.get(v.id) ?? null);
  });
  return y;
}
