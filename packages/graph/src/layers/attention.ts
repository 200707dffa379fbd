/**
 * nn.MultiheadAttention (batch_first) and nn.TransformerEncoderLayer / nn.TransformerEncoder with
 * PyTorch's parameter names: in_proj_weight [3E, E], in_proj_bias [3E], out_proj.{weight,bias},
 * linear1, linear2, norm1, norm2, layers.<i>.
 */
import type { Value } from '../graph';
import { hookPoint, hookScope } from '../hooks';
import * as init from '../init';
import { Module } from '../module';
import { add, div, where } from '../ops/elementwise';
import { matmul, softmax } from '../ops/nn';
import { reshape, slice, split, squeeze, transpose, transposeLast2, unsqueeze } from '../ops/shape';
import { type Activation, activate, Dropout, LayerNorm, Linear, matmulT } from './basic';

export interface AttentionOptions {
  /** Position t attends only to positions <= t. */
  causal?: boolean;
  /** bool [B, T], true where the key is padding (PyTorch's key_padding_mask convention). */
  keyPaddingMask?: Value;
}

// A large finite negative rather than -inf, so a fully masked row gives a uniform softmax, not NaN.
const MASKED = -1e9;

export interface SdpaOptions extends AttentionOptions {
  /** Applied to the attention probabilities (attention dropout). */
  dropout?: (probs: Value) => Value;
}

/**
 * softmax(q k^T / sqrt(D)) v over heads: q [B, H, Tq, D], k and v [B, H, Tk, D] -> [B, H, Tq, D].
 * Causal: query i (the last Tq of Tk positions) sees keys j <= i + (Tk - Tq), which is ordinary causal
 * attention when Tq = Tk and the right thing for queries that follow cached keys. Lengths may be
 * symbolic; the mask is then built at run time.
 */
export function scaledDotProductAttention(q: Value, k: Value, v: Value, opts: SdpaOptions = {}): Value {
  let scores = div(matmul(q, transposeLast2(k)), Math.sqrt(q.dim(-1)));
  if (opts.causal) scores = where(causalMask(q, k), scores, MASKED);
  if (opts.keyPaddingMask) scores = where(unsqueeze(opts.keyPaddingMask, [1, 2]), MASKED, scores);
  const probs = hookPoint('hook_pattern', softmax(scores, -1));
  return matmul(opts.dropout ? opts.dropout(probs) : probs, v);
}

/** bool [Tq, Tk], true where query i may attend to key j (j <= i + Tk - Tq). */
function causalMask(q: Value, k: Value): Value {
  const g = q.graph;
  const [tq, tk] = [q.shape[q.rank - 2], k.shape[k.rank - 2]];
  if (typeof tq === 'number' && typeof tk === 'number') {
    const allowed = new Uint8Array(tq * tk);
    for (let i = 0; i < tq; i++) for (let j = 0; j <= i + tk - tq && j < tk; j++) allowed[i * tk + j] = 1;
    return g.constant({ dtype: 'bool', shape: [tq, tk], data: allowed });
  }
  const scalar = { dtype: 'int64' as const, shape: [] };
  const len = (x: Value) => g.node('Gather', [g.shapeOf(x), g.scalar(x.rank - 2, 'int64')], { axis: 0 }, [scalar])[0];
  const [nq, nk] = [len(q), len(k)];
  const [first] = g.node('Sub', [nk, nq], {}, [scalar]);
  const one = g.scalar(1, 'int64');
  const [rows] = g.node('Range', [first, nk, one], {}, [{ dtype: 'int64', shape: [tq] }]);
  const [cols] = g.node('Range', [g.scalar(0, 'int64'), nk, one], {}, [{ dtype: 'int64', shape: [tk] }]);
  const [r2] = g.node('Unsqueeze', [rows, g.ints([1])], {}, [{ dtype: 'int64', shape: [tq, 1] }]);
  const [c2] = g.node('Unsqueeze', [cols, g.ints([0])], {}, [{ dtype: 'int64', shape: [1, tk] }]);
  return g.node('LessOrEqual', [c2, r2], {}, [{ dtype: 'bool', shape: [tq, tk] }])[0];
}

export class MultiheadAttention extends Module {
  readonly headDim: number;
  readonly outProj: Linear;
  readonly dropout: Dropout;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    dropout = 0,
  ) {
    super();
    if (embedDim % numHeads !== 0) throw new Error(`MultiheadAttention: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`);
    this.headDim = embedDim / numHeads;
    this.register('in_proj_weight', [3 * embedDim, embedDim], (r) => init.xavierUniform([3 * embedDim, embedDim], r));
    this.register('in_proj_bias', [3 * embedDim], () => init.zeros([3 * embedDim]));
    this.outProj = this.child('out_proj', new Linear(embedDim, embedDim));
    // PyTorch's _reset_parameters zeroes out_proj.bias after the Linear's own init.
    this.outProj.reinit('bias', () => init.zeros([embedDim]));
    this.dropout = this.child('dropout', new Dropout(dropout));
  }

  /**
   * Self-attention over x: [B, T, E] -> [B, T, E]. T must be static for the causal mask. A rank-2
   * x [B, E] is a batch of one-position sequences with the position axis left out.
   */
  forward(x: Value, opts: AttentionOptions = {}): Value {
    if (x.rank === 2) {
      if (this.dropout.p === 0 || !this.training) return this.singlePosition(x);
      return squeeze(this.forward(unsqueeze(x, [1]), opts), [1]);
    }
    const [B, T] = [x.shape[0], x.shape[1]];
    const E = this.embedDim;
    const H = this.numHeads;
    const D = this.headDim;
    if (x.shape[1] === 1 && !opts.keyPaddingMask && (this.dropout.p === 0 || !this.training)) return this.singlePosition(x);
    const qkv = add(matmulT(x, this.param('in_proj_weight')), this.param('in_proj_bias'));
    const heads = split(qkv, [E, E, E], -1).map((t) => transpose(reshape(t, [B, T, H, D]), [0, 2, 1, 3]));
    const [q, k, v] = heads;
    const heads2 = scaledDotProductAttention(q, k, v, { ...opts, dropout: (p) => this.dropout.forward(p) });
    const z = hookPoint('hook_z', transpose(heads2, [0, 2, 1, 3]));
    return this.outProj.forward(reshape(z, [B, T, E]));
  }

  /**
   * With one position, softmax over a single key is exactly 1, so attention returns the value
   * projection. Emitting just that is the same function with the same gradients (the query and key
   * weights get exactly zero in both), at a fraction of the ops. BabyModel runs this path.
   */
  private singlePosition(x: Value): Value {
    const E = this.embedDim;
    const wv = slice(this.param('in_proj_weight'), [2 * E], [3 * E], [0]);
    const bv = slice(this.param('in_proj_bias'), [2 * E], [3 * E], [0]);
    // hook_z reads [B, H, D] (TransformerLens's [batch, head, d_head] without the position axis).
    const z = hookPoint('hook_z', add(matmulT(x, wv), bv), (v) => reshape(v, [v.shape[0], this.numHeads, this.headDim]));
    return this.outProj.forward(z);
  }
}

export interface EncoderLayerOptions {
  dimFeedforward?: number;
  dropout?: number;
  activation?: Activation;
  layerNormEps?: number;
  /** Pre-norm (norm_first=True); PyTorch's default is post-norm. */
  normFirst?: boolean;
}

export class TransformerEncoderLayer extends Module {
  readonly selfAttn: MultiheadAttention;
  readonly linear1: Linear;
  readonly dropoutFf: Dropout;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly dropout1: Dropout;
  readonly dropout2: Dropout;
  readonly activation: Activation;
  readonly normFirst: boolean;

  constructor(dModel: number, nHead: number, opts: EncoderLayerOptions = {}) {
    super();
    const ff = opts.dimFeedforward ?? 2048;
    const p = opts.dropout ?? 0.1;
    const eps = opts.layerNormEps ?? 1e-5;
    this.activation = opts.activation ?? 'relu';
    this.normFirst = opts.normFirst ?? false;
    this.selfAttn = this.child('self_attn', new MultiheadAttention(dModel, nHead, p));
    this.linear1 = this.child('linear1', new Linear(dModel, ff));
    this.dropoutFf = this.child('dropout', new Dropout(p));
    this.linear2 = this.child('linear2', new Linear(ff, dModel));
    this.norm1 = this.child('norm1', new LayerNorm(dModel, eps));
    this.norm2 = this.child('norm2', new LayerNorm(dModel, eps));
    this.dropout1 = this.child('dropout1', new Dropout(p));
    this.dropout2 = this.child('dropout2', new Dropout(p));
  }

  /**
   * Hooks (TransformerLens's names): hook_resid_pre (x), attn.hook_z, attn.hook_pattern,
   * hook_resid_mid (the stream between the attention and feed-forward sublayers: after norm1 when
   * post-norm), mlp.hook_post (the activation inside the feed-forward) and hook_resid_post.
   */
  forward(input: Value, opts: AttentionOptions = {}): Value {
    const x = hookPoint('hook_resid_pre', input);
    const sa = (h: Value) => this.dropout1.forward(hookScope('attn', () => this.selfAttn.forward(h, opts)));
    const ff = (h: Value) =>
      this.dropout2.forward(
        this.linear2.forward(this.dropoutFf.forward(hookPoint('mlp.hook_post', activate(this.linear1.forward(h), this.activation)))),
      );
    if (this.normFirst) {
      const h = hookPoint('hook_resid_mid', add(x, sa(this.norm1.forward(x))));
      return hookPoint('hook_resid_post', add(h, ff(this.norm2.forward(h))));
    }
    const h = hookPoint('hook_resid_mid', this.norm1.forward(add(x, sa(x))));
    return hookPoint('hook_resid_post', this.norm2.forward(add(h, ff(h))));
  }
}

/** A stack of encoder layers named layers.0, layers.1, ... with an optional final norm. */
export class TransformerEncoder extends Module {
  readonly layers: TransformerEncoderLayer[] = [];
  readonly norm: LayerNorm | null;

  constructor(makeLayer: () => TransformerEncoderLayer, numLayers: number, finalNormDim?: number) {
    super();
    const container = this.child('layers', new ModuleList());
    for (let i = 0; i < numLayers; i++) this.layers.push(container.add(makeLayer()));
    this.norm = finalNormDim ? this.child('norm', new LayerNorm(finalNormDim)) : null;
  }

  forward(x: Value, opts: AttentionOptions = {}): Value {
    let h = x;
    this.layers.forEach((layer, i) => {
      h = hookScope(`blocks.${i}`, () => layer.forward(h, opts));
    });
    return this.norm ? this.norm.forward(h) : h;
  }
}

/** nn.ModuleList: children named 0, 1, 2, ... */
export class ModuleList extends Module {
  private count = 0;

  add<M extends Module>(m: M): M {
    return this.child(String(this.count++), m);
  }
}
