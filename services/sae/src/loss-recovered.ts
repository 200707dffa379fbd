/**
 * Loss recovered: how much of the policy's behaviour survives with the SAE spliced in at its hook.
 * The loss is the policy's own: the cross-entropy of the clean policy's distribution against the
 * model's, averaged over observations (an action policy) or over every token position (a causal
 * language model, whose distribution is the next token's),
 *   L(p)      = mean  −Σ_a p_clean(a) log p(a)
 *   recovered = (L_zero − L_sae) / (L_zero − L_clean)
 * with p_sae the policy whose hook value is replaced by the SAE's reconstruction, p_zero the policy
 * whose hook value is replaced by zeros (zero ablation). L_clean is the clean policy's entropy, so
 * L_sae − L_clean is KL(p_clean ‖ p_sae). 1 means the SAE loses nothing; 0, no better than ablating.
 * All three are traced into one program (hooks.ts's replacement), the SAE's weights as constants;
 * a hook with more axes than [batch, d_in] is read as rows of its last axis, as capture stores it.
 */
import {
  buildForwardProgram,
  cast,
  type Graph,
  logSoftmax,
  mul,
  recordHooks,
  reshape,
  reshapeLike,
  Session,
  type Value,
} from '@rlmesh/graph';
import { actOutputs, isCausalLmPolicy, type PolicyModel } from '@rlmesh/learner';
import { SparseAutoencoder } from './sae';
import type { SaeWeights } from './saelens';

export interface LossRecovered {
  clean: number;
  sae: number;
  zero: number;
  recovered: number;
  /** L_sae − L_clean = mean KL(p_clean ‖ p_sae). */
  kl: number;
  /** Observations (action policies) or token positions (language models) averaged over. */
  rows: number;
}

export interface SplicedPolicy {
  model: PolicyModel;
  params: Map<string, Float32Array>;
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
    if (v.dim(v.rank - 1) !== w.cfg.d_in) throw new Error(`loss recovered: the hook is [${v.shape}], the SAE reads rows of ${w.cfg.d_in}`);
    const rows = v.rank === 2 ? v : reshape(v, [-1, w.cfg.d_in]);
    const out = sae.decode(sae.activate(sae.hiddenPre(rows)));
    return v.rank === 2 ? out : reshapeLike(out, v);
  };
}

type Traced = (replace?: (v: Value) => Value) => Value;

/** The program computing the clean, spliced and ablated log-probabilities, and its run on one feed. */
async function threeWays(
  policy: SplicedPolicy,
  weights: SaeWeights,
  inputs: { name: string; dtype: 'float32' | 'int64'; shape: (number | string)[] }[],
  traced: (i: Record<string, Value>) => Traced,
) {
  const { onnx, layout } = buildForwardProgram({
    module: policy.model.module,
    name: 'loss_recovered',
    inputs,
    forward: (i, g) => {
      const lp = traced(i);
      return { clean: lp(), sae: lp(splice(g, weights)), zero: lp((v) => mul(v, 0)) };
    },
  });
  const session = await Session.create(onnx, { intraOpThreads: 1 });
  const flat = layout.pack(policy.params);
  return {
    run: async (feed: Record<string, { data: Float32Array | BigInt64Array; shape: number[] }>) => {
      const out = await session.run({ params: { data: flat, shape: [flat.length] }, ...feed });
      return ['clean', 'sae', 'zero'].map((k) => out[k].data as Float32Array);
    },
    release: () => session.release(),
  };
}

function recordWith(hook: string, f: () => Value): Traced {
  return (replace) => (replace ? recordHooks(f, new Map([[hook, replace]])).result : f());
}

/** Adds −Σ_a p_clean(a) log p(a) of each of the three distributions at one row of width n. */
function accumulate(sums: number[], [clean, sae, zero]: Float32Array[], at: number, n: number): void {
  for (let a = 0; a < n; a++) {
    const p = Math.exp(clean[at + a]);
    sums[0] -= p * clean[at + a];
    sums[1] -= p * sae[at + a];
    sums[2] -= p * zero[at + a];
  }
}

function result(sums: number[], rows: number): LossRecovered {
  const [clean, sae, zero] = sums.map((s) => s / rows);
  return { clean, sae, zero, recovered: (zero - sae) / (zero - clean), kl: sae - clean, rows };
}

/**
 * Loss recovered of `weights` at `hook` on `rows` observations `obs` [rows, obs_dim]. For a causal
 * language model the observations are token sequences (right-padded); consecutive equal ones are one
 * sequence (a store holds one row per position), and its positions up to its last token count.
 */
export async function lossRecovered(
  policy: SplicedPolicy,
  hook: string,
  weights: SaeWeights,
  obs: Float32Array,
  rows: number,
): Promise<LossRecovered> {
  const { model } = policy;
  if (model.distribution.kind !== 'categorical')
    throw new Error(`loss recovered: needs a policy with a Discrete action space, this one is ${model.distribution.kind}`);
  if (obs.length !== rows * model.obsDim)
    throw new Error(`loss recovered: ${obs.length} values is not ${rows} observations of ${model.obsDim}`);
  const n = model.distribution.n;
  const S = model.obsDim;
  const sums = [0, 0, 0];
  if (!isCausalLmPolicy(model)) {
    const p = await threeWays(policy, weights, [{ name: 'obs', dtype: 'float32', shape: ['batch', S] }], (i) =>
      recordWith(hook, () => actOutputs(model, i.obs).log_probs),
    );
    try {
      const out = await p.run({ obs: { data: obs, shape: [rows, S] } });
      for (let r = 0; r < rows; r++) accumulate(sums, out, r * n, n);
    } finally {
      await p.release();
    }
    return result(sums, rows);
  }
  // Sequences: one per run of equal rows; its length is its last non-pad position + 1.
  const seqs: { at: number; length: number }[] = [];
  for (let r = 0; r < rows; r++) {
    const same = r > 0 && obs.subarray(r * S, (r + 1) * S).every((v, j) => v === obs[(r - 1) * S + j]);
    if (same) continue;
    let length = S;
    while (length > 1 && obs[r * S + length - 1] === model.padId) length--;
    seqs.push({ at: r, length });
  }
  const p = await threeWays(
    policy,
    weights,
    [
      { name: 'ids', dtype: 'float32', shape: ['batch', S] },
      { name: 'attention_mask', dtype: 'int64', shape: ['batch', S] },
    ],
    (i) => recordWith(hook, () => logSoftmax(model.sequence(cast(i.ids, 'int64'), i.attention_mask).logits, -1)),
  );
  let positions = 0;
  try {
    const CHUNK = 16;
    for (let c = 0; c < seqs.length; c += CHUNK) {
      const batch = seqs.slice(c, c + CHUNK);
      const ids = new Float32Array(batch.length * S);
      const mask = new BigInt64Array(batch.length * S);
      for (const [b, s] of batch.entries()) {
        ids.set(obs.subarray(s.at * S, (s.at + 1) * S), b * S);
        for (let t = 0; t < s.length; t++) mask[b * S + t] = 1n;
      }
      const out = await p.run({ ids: { data: ids, shape: [batch.length, S] }, attention_mask: { data: mask, shape: [batch.length, S] } });
      for (const [b, s] of batch.entries())
        for (let t = 0; t < s.length; t++) {
          accumulate(sums, out, (b * S + t) * n, n);
          positions++;
        }
    }
  } finally {
    await p.release();
  }
  return result(sums, positions);
}
