/**
 * The capture program: a policy's act program with chosen hook points as extra outputs. It is built
 * on its own, so the act program the policy service serves is untouched (hook points add no nodes
 * unless recorded; see @rlmesh/graph's hooks.ts). Inputs are the act program's (`params` [P], `obs`
 * [batch, obs_dim]); outputs are the act outputs and one output per hook, named as the hook.
 */
import { buildForwardProgram, type HookValue, type ParamLayout, recordHooks, unknownHooks } from '@rlmesh/graph';
import { actOutputs } from './algorithms/policy-terms';
import type { PolicyModel } from './registry';

export interface HookInfo {
  name: string;
  /** Shape as traced on obs [batch, obs_dim]: the first axis is 'batch'. */
  shape: (number | string)[];
}

/** Every hook point of `model`, in the order its forward marks them, with the shape each is read in. */
export function modelHooks(model: PolicyModel): HookInfo[] {
  let found: HookInfo[] = [];
  buildForwardProgram({
    module: model.module,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', model.obsDim] }],
    forward: (i) => {
      const rec = recordHooks(() => actOutputs(model, i.obs));
      found = [...rec.hooks].map(([name, h]) => ({ name, shape: [...h.read().shape] }));
      return rec.result;
    },
  });
  return found;
}

/** The capture program for `hooks` (at least one; unknown names are refused with the model's list). */
export function buildCaptureProgram(
  model: PolicyModel,
  hooks: readonly string[],
): { onnx: Uint8Array; layout: ParamLayout; outputs: string[]; shapes: Record<string, (number | string)[]> } {
  if (hooks.length === 0) throw new Error('capture: name at least one hook');
  const shapes: Record<string, (number | string)[]> = {};
  let actNames: string[] = [];
  const { onnx, layout } = buildForwardProgram({
    module: model.module,
    name: 'capture',
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', model.obsDim] }],
    forward: (i) => {
      const rec = recordHooks(() => actOutputs(model, i.obs));
      const missing = hooks.filter((h) => !rec.hooks.has(h));
      if (missing.length > 0) throw unknownHooks(missing, rec.hooks);
      actNames = Object.keys(rec.result);
      const out = { ...rec.result };
      for (const h of hooks) {
        const v = (rec.hooks.get(h) as HookValue).read();
        out[h] = v;
        shapes[h] = [...v.shape];
      }
      return out;
    },
  });
  return { onnx, layout, outputs: [...actNames, ...hooks], shapes };
}
