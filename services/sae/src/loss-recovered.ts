/**
 * Loss recovered: how much of the policy's behaviour survives with the SAE spliced in at its hook.
 * The loss is the policy's own: the cross-entropy of the clean policy's action distribution against
 * the model's, averaged over observations,
 *   L(p)      = mean_s  −Σ_a p_clean(a|s) log p(a|s)
 *   recovered = (L_zero − L_sae) / (L_zero − L_clean)
 * with p_sae the policy whose hook value is replaced by the SAE's reconstruction, p_zero the policy
 * whose hook value is replaced by zeros (zero ablation). L_clean is the clean policy's entropy, so
 * L_sae − L_clean is KL(p_clean ‖ p_sae). 1 means the SAE loses nothing; 0, no better than ablating.
 * All three are traced into one program (hooks.ts's replacement), the SAE's weights as constants.
 */
import { buildForwardProgram, type Graph, mul, recordHooks, Session, type Value } from '@rlmesh/graph';
import { actOutputs, type PolicyFile } from '@rlmesh/learner';
import { SparseAutoencoder } from './sae';
import type { SaeWeights } from './saelens';

export interface LossRecovered {
  clean: number;
  sae: number;
  zero: number;
  recovered: number;
  /** L_sae − L_clean = mean KL(p_clean ‖ p_sae). */
  kl: number;
  rows: number;
}

function splice(g: Graph, w: SaeWeights): (v: Value) => Value {
  const sae = new SparseAutoencoder(w.cfg);
  const shapes = new Map(sae.namedParameters().map((p) => [p.name, p.shape]));
  const bound = new Map<string, Value>();
  sae.eval().bind({
    dtype: 'float32',
    get(name) {
      let v = bound.get(name);
      if (!v) {
        v = g.constant({ dtype: 'float32', shape: shapes.get(name) as number[], data: w.params.get(name) as Float32Array });
        bound.set(name, v);
      }
      return v;
    },
  });
  return (v) => {
    // Rows of the store are per observation, so the hook must be too: [batch, d_in].
    if (v.rank !== 2 || v.dim(1) !== w.cfg.d_in)
      throw new Error(`loss recovered: the hook is [${v.shape}], the SAE reads [batch, ${w.cfg.d_in}]`);
    return sae.decode(sae.activate(sae.hiddenPre(v)));
  };
}

/** Loss recovered of `weights` at `hook` on `rows` observations `obs` [rows, obs_dim]. */
export async function lossRecovered(
  file: PolicyFile,
  hook: string,
  weights: SaeWeights,
  obs: Float32Array,
  rows: number,
): Promise<LossRecovered> {
  const { model } = file;
  if (model.distribution.kind !== 'categorical')
    throw new Error(`loss recovered: needs a policy with a Discrete action space, this one is ${model.distribution.kind}`);
  if (obs.length !== rows * model.obsDim)
    throw new Error(`loss recovered: ${obs.length} values is not ${rows} observations of ${model.obsDim}`);
  const n = model.distribution.n;
  const { onnx, layout } = buildForwardProgram({
    module: model.module,
    name: 'loss_recovered',
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', model.obsDim] }],
    forward: (i, g) => {
      const logProbs = (replace?: (v: Value) => Value) =>
        (replace ? recordHooks(() => actOutputs(model, i.obs), new Map([[hook, replace]])).result : actOutputs(model, i.obs)).log_probs;
      return { clean: logProbs(), sae: logProbs(splice(g, weights)), zero: logProbs((v) => mul(v, 0)) };
    },
  });
  const session = await Session.create(onnx, { intraOpThreads: 1 });
  let out: Record<string, { data: unknown }>;
  try {
    const flat = layout.pack(file.params);
    out = await session.run({ params: { data: flat, shape: [flat.length] }, obs: { data: obs, shape: [rows, model.obsDim] } });
  } finally {
    await session.release();
  }
  const [clean, sae, zero] = ['clean', 'sae', 'zero'].map((k) => out[k].data as Float32Array);
  const cross = (lp: Float32Array) => {
    let total = 0;
    for (let i = 0; i < rows * n; i++) total -= Math.exp(clean[i]) * lp[i];
    return total / rows;
  };
  const L = { clean: cross(clean), sae: cross(sae), zero: cross(zero) };
  return { ...L, recovered: (L.zero - L.sae) / (L.zero - L.clean), kl: L.sae - L.clean, rows };
}
