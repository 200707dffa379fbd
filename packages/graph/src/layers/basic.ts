/** Linear, Embedding, LayerNorm, Dropout and MLP with PyTorch's parameter names and initialisers. */
import type { Value } from '../graph';
import * as init from '../init';
import { Module } from '../module';
import { cast, div, gelu, greater, mul, relu, sigmoid, tanh } from '../ops/elementwise';
import { affine, layerNorm, linear, matmul } from '../ops/nn';
import { gather, transpose } from '../ops/shape';

/** y = x W^T + b, W: [out, in] (nn.Linear). */
export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly bias = true,
  ) {
    super();
    this.register('weight', [outFeatures, inFeatures], (r) => init.linearWeight(outFeatures, inFeatures, r));
    if (bias) this.register('bias', [outFeatures], (r) => init.linearBias(outFeatures, inFeatures, r));
  }

  /** Adds to the layer's output given its input (a LoRA adapter, lora.ts); attached children hold its parameters. */
  adapter: ((x: Value, y: Value) => Value) | null = null;

  forward(x: Value): Value {
    const y = linear(x, this.param('weight'), this.bias ? this.param('bias') : null);
    return this.adapter ? this.adapter(x, y) : y;
  }
}

/**
 * Hugging Face's Conv1D (GPT-2's projections): y = x W + b with W stored [in, out], the transpose of
 * nn.Linear. Initialised as GPT-2 initialises it: W ~ N(0, std), b = 0.
 */
export class Conv1D extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    std = 0.02,
  ) {
    super();
    this.register('weight', [inFeatures, outFeatures], (r) => init.normal([inFeatures, outFeatures], 0, std, r));
    this.register('bias', [outFeatures], () => init.zeros([outFeatures]));
  }

  forward(x: Value): Value {
    return affine(x, this.param('weight'), this.param('bias'));
  }
}

/** x @ W^T for a weight stored [out, in]. */
export function matmulT(x: Value, w: Value): Value {
  return matmul(x, transpose(w, [1, 0]));
}

/** nn.Embedding: weight [num, dim] ~ N(0, 1). */
export class Embedding extends Module {
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super();
    this.register('weight', [numEmbeddings, embeddingDim], (r) => init.embeddingWeight(numEmbeddings, embeddingDim, r));
  }

  forward(indices: Value): Value {
    return gather(this.param('weight'), indices);
  }

  /** The bound weight [num, dim], for a layer that shares it (a language model's tied output head). */
  table(): Value {
    return this.param('weight');
  }
}

/** nn.LayerNorm over the last axis: weight ones, bias zeros. */
export class LayerNorm extends Module {
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.register('weight', [dim], () => init.ones([dim]));
    this.register('bias', [dim], () => init.zeros([dim]));
  }

  forward(x: Value): Value {
    return layerNorm(x, this.param('weight'), this.param('bias'), this.eps);
  }
}

/**
 * Inverted dropout: in training, zero each element with probability p and scale the rest by 1/(1-p);
 * in eval mode, the identity. The mask comes from ORT's RandomUniformLike, fresh on every run.
 */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (p < 0 || p >= 1) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
  }

  forward(x: Value): Value {
    if (!this.training || this.p === 0) return x;
    const g = x.graph;
    const [u] = g.node('RandomUniformLike', [x], { dtype: x.dtype === 'float64' ? 11 : 1 }, [x]);
    g.record('RandomUniformLike', [x], [u], null);
    const keep = cast(greater(u, this.p), x.dtype);
    return mul(x, div(keep, 1 - this.p));
  }
}

export type Activation = 'relu' | 'tanh' | 'gelu' | 'sigmoid';

export function activate(x: Value, act: Activation): Value {
  switch (act) {
    case 'relu':
      return relu(x);
    case 'tanh':
      return tanh(x);
    case 'gelu':
      return gelu(x);
    case 'sigmoid':
      return sigmoid(x);
  }
}

/**
 * A multi-layer perceptron laid out like nn.Sequential(Linear, Act, Linear, Act, ..., Linear), so its
 * parameters are named "0.weight", "2.weight", ... as PyTorch names them.
 */
export class MLP extends Module {
  readonly layers: Linear[] = [];

  constructor(
    readonly sizes: readonly number[],
    readonly activation: Activation = 'relu',
  ) {
    super();
    if (sizes.length < 2) throw new Error('MLP: sizes needs at least [in, out]');
    for (let i = 0; i + 1 < sizes.length; i++) {
      this.layers.push(this.child(String(2 * i), new Linear(sizes[i], sizes[i + 1])));
    }
  }

  forward(x: Value): Value {
    let h = x;
    this.layers.forEach((layer, i) => {
      h = layer.forward(h);
      if (i + 1 < this.layers.length) h = activate(h, this.activation);
    });
    return h;
  }
}
