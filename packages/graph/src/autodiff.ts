/**
 * Reverse-mode autodiff over the tape. The backward pass is emitted into the same graph as standard
 * ONNX ops, so the train step is one ONNX program that onnxruntime-node runs like any model.
 */
import type { Value } from './graph';
import { add, onesLike, zerosLike } from './ops/elementwise';

/**
 * Gradients of `output` with respect to each of `wrt`. `output` is usually a scalar loss; for a
 * non-scalar output pass `seed`, the vector in the vector-Jacobian product.
 */
export function gradients(output: Value, wrt: readonly Value[], seed?: Value): Value[] {
  const g = output.graph;
  const entries = [...g.tape];
  // Only entries on a path from some `wrt` to `output` get their backward rule run. Entries without a
  // rule (comparisons, casts to bool, random masks) are piecewise constant: dependence stops there.
  const dependsOnWrt = new Set(wrt.map((v) => v.id));
  for (const e of entries) {
    if (e.backward && e.inputs.some((i) => dependsOnWrt.has(i.id))) for (const o of e.outputs) dependsOnWrt.add(o.id);
  }
  if (!dependsOnWrt.has(output.id)) throw new Error(`gradients: ${output} does not depend on any of the requested values`);

  const grads = new Map<number, Value>();
  grads.set(output.id, seed ?? onesLike(output));
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    const dOuts = e.outputs.map((o) => grads.get(o.id) ?? null);
    if (dOuts.every((d) => d === null)) continue;
    if (!e.backward || !e.inputs.some((inp) => dependsOnWrt.has(inp.id))) continue;
    const dIns = e.backward(dOuts);
    e.inputs.forEach((inp, k) => {
      const d = dIns[k];
      if (!d || !dependsOnWrt.has(inp.id)) return;
      const prev = grads.get(inp.id);
      grads.set(inp.id, prev ? add(prev, d) : d);
    });
  }
  return wrt.map((v) => grads.get(v.id) ?? zerosLike(v));
}
