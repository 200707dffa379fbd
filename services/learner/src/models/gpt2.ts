/**
 * GPT-2 (Hugging Face's GPT2LMHeadModel) as a registered policy over token sequences: learned
 * position embeddings, pre-LayerNorm blocks, GELU in its tanh form, causal attention with a padding
 * mask, a final LayerNorm and an LM head tied to the token embedding. Parameter names and layouts are
 * Hugging Face's (`transformer.h.0.attn.c_attn.weight` is a Conv1D weight [in, 3 * n_embd]), so the
 * state_dict moves between rlmesh and `transformers` unchanged (see hf-gpt2.ts). An optional value
 * head for PPO is named as TRL names it (`v_head.summary.{weight,bias}`).
 *
 * The options use GPT2Config's keys, so one schema is both the model section of a run config and the
 * body of config.json. Sizes go from a few hundred parameters to the 124M configuration (the defaults).
 */
import { ConfigError, type Infer, type Schema, type Space } from '@rlmesh/core';
import {
  add,
  Conv1D,
  cast,
  cumsum,
  Dropout,
  Embedding,
  equal,
  fill,
  gelu,
  geluTanh,
  greater,
  hookPoint,
  hookScope,
  init,
  LayerNorm,
  Linear,
  linear,
  Module,
  ModuleList,
  maximum,
  mul,
  oneHot,
  reduceSum,
  reshape,
  scaledDotProductAttention,
  split,
  squeeze,
  sub,
  transpose,
  unsqueeze,
  type Value,
} from '@rlmesh/graph';
import type { ModelContext, ModelSpec, PolicyForward, PolicyModel } from '../registry';
import {
  type CausalLm,
  type CausalLmDims,
  type CausalLmInputs,
  type CausalLmOutputs,
  concatTime,
  type KeyValue,
  positionIds,
} from './causal-lm';

export { buildKvProgram, buildLogitsProgram, type KeyValue, KV_IO } from './causal-lm';

export const GPT2_OPTIONS = {
  vocab_size: { kind: 'int', default: 0, min: 0, max: 1_000_000, doc: "token embeddings; 0 takes the observation space's vocabulary" },
  n_positions: { kind: 'int', default: 1024, min: 1, max: 65_536, doc: 'learned positions: the longest sequence' },
  n_embd: { kind: 'int', default: 768, min: 1, max: 16_384 },
  n_layer: { kind: 'int', default: 12, min: 1, max: 128 },
  n_head: { kind: 'int', default: 12, min: 1, max: 256, doc: 'must divide n_embd' },
  n_inner: { kind: 'int', default: 0, min: 0, max: 65_536, doc: 'MLP width; 0 means 4 * n_embd (null in config.json)' },
  activation_function: { kind: 'string', default: 'gelu_new', oneOf: ['gelu_new', 'gelu_pytorch_tanh', 'gelu'] },
  layer_norm_epsilon: { kind: 'number', default: 1e-5, min: 0, exclusiveMin: true },
  embd_pdrop: { kind: 'number', default: 0, min: 0, max: 0.99 },
  attn_pdrop: { kind: 'number', default: 0, min: 0, max: 0.99 },
  resid_pdrop: { kind: 'number', default: 0, min: 0, max: 0.99 },
  initializer_range: { kind: 'number', default: 0.02, min: 0 },
  bos_token_id: { kind: 'int', default: -1, min: -1, doc: '-1: none (null in config.json)' },
  eos_token_id: { kind: 'int', default: -1, min: -1, doc: '-1: none' },
  pad_token_id: { kind: 'int', default: -1, min: -1, doc: '-1: none' },
  value_head: { kind: 'bool', default: false, doc: 'a scalar value per position from the last hidden state (PPO)' },
} as const satisfies Schema;

export type Gpt2Config = Infer<typeof GPT2_OPTIONS>;

/** Cross-field rules a schema cannot state; errors name the key. */
export function checkGpt2Config(c: Gpt2Config, prefix = 'model'): void {
  if (c.vocab_size < 1) throw new ConfigError(`${prefix}.vocab_size`, `must be >= 1, got ${c.vocab_size}`);
  if (c.n_embd % c.n_head !== 0) throw new ConfigError(`${prefix}.n_head`, `must divide n_embd (${c.n_embd}), got ${c.n_head}`);
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (c[k] >= c.vocab_size) throw new ConfigError(`${prefix}.${k}`, `must be a token id below vocab_size (${c.vocab_size}), got ${c[k]}`);
  }
}

/** The 124M configuration of OpenAI's smallest GPT-2 (Hugging Face's `gpt2`). */
export const GPT2_124M: Gpt2Config = {
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: 0,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
  resid_pdrop: 0.1,
  initializer_range: 0.02,
  bos_token_id: 50256,
  eos_token_id: 50256,
  pad_token_id: -1,
  value_head: false,
};

export interface AttendOptions {
  /** bool [B, T_keys], true where the key is padding. */
  keyPadding?: Value;
  /** This layer's keys and values of earlier positions, prepended to the new ones. */
  past?: KeyValue;
}

/** GPT2Attention: c_attn (Conv1D E -> 3E), heads, causal scaled dot-product attention, c_proj. */
export class Gpt2Attention extends Module {
  readonly cAttn: Conv1D;
  readonly cProj: Conv1D;
  readonly attnDropout: Dropout;
  readonly residDropout: Dropout;
  readonly headDim: number;

  constructor(readonly c: Gpt2Config) {
    super();
    const E = c.n_embd;
    this.headDim = E / c.n_head;
    this.cAttn = this.child('c_attn', new Conv1D(E, 3 * E, c.initializer_range));
    // GPT-2 scales the residual projections' init by 1/sqrt(2 n_layer) (two residual adds per block).
    this.cProj = this.child('c_proj', new Conv1D(E, E, c.initializer_range / Math.sqrt(2 * c.n_layer)));
    this.attnDropout = this.child('attn_dropout', new Dropout(c.attn_pdrop));
    this.residDropout = this.child('resid_dropout', new Dropout(c.resid_pdrop));
  }

  /** x [B, T, E] -> [B, T, E], and the keys and values (past included) a cache keeps. */
  forward(x: Value, opts: AttendOptions = {}): { out: Value; present: KeyValue } {
    const [B, T] = [x.shape[0], x.shape[1]];
    const [E, H, D] = [this.c.n_embd, this.c.n_head, this.headDim];
    const [q, k0, v0] = split(this.cAttn.forward(x), [E, E, E], -1).map((t) => transpose(reshape(t, [B, T, H, D]), [0, 2, 1, 3]));
    // The keys span the mask's positions, past included: name their length after the mask's.
    const total = opts.keyPadding?.shape[1];
    const key = opts.past ? concatTime(opts.past.key, k0, total) : k0;
    const value = opts.past ? concatTime(opts.past.value, v0, total) : v0;
    const heads = scaledDotProductAttention(q, key, value, {
      causal: true,
      keyPaddingMask: opts.keyPadding,
      dropout: (p) => this.attnDropout.forward(p),
    });
    const z = hookPoint('hook_z', transpose(heads, [0, 2, 1, 3]));
    return { out: this.residDropout.forward(this.cProj.forward(reshape(z, [B, T, E]))), present: { key, value } };
  }
}

/** GPT2MLP: c_fc (E -> n_inner), GELU, c_proj (n_inner -> E), dropout. */
export class Gpt2Mlp extends Module {
  readonly cFc: Conv1D;
  readonly cProj: Conv1D;
  readonly dropout: Dropout;

  constructor(readonly c: Gpt2Config) {
    super();
    const inner = c.n_inner || 4 * c.n_embd;
    this.cFc = this.child('c_fc', new Conv1D(c.n_embd, inner, c.initializer_range));
    this.cProj = this.child('c_proj', new Conv1D(inner, c.n_embd, c.initializer_range / Math.sqrt(2 * c.n_layer)));
    this.dropout = this.child('dropout', new Dropout(c.resid_pdrop));
  }

  forward(x: Value): Value {
    const h = this.cFc.forward(x);
    const act = hookPoint('hook_post', this.c.activation_function === 'gelu' ? gelu(h) : geluTanh(h));
    return this.dropout.forward(this.cProj.forward(act));
  }
}

/** GPT2Block, pre-LayerNorm: x + attn(ln_1(x)), then h + mlp(ln_2(h)). */
export class Gpt2Block extends Module {
  readonly ln1: LayerNorm;
  readonly attn: Gpt2Attention;
  readonly ln2: LayerNorm;
  readonly mlp: Gpt2Mlp;

  constructor(c: Gpt2Config) {
    super();
    this.ln1 = this.child('ln_1', new LayerNorm(c.n_embd, c.layer_norm_epsilon));
    this.attn = this.child('attn', new Gpt2Attention(c));
    this.ln2 = this.child('ln_2', new LayerNorm(c.n_embd, c.layer_norm_epsilon));
    this.mlp = this.child('mlp', new Gpt2Mlp(c));
  }

  /** Hooks: hook_resid_pre, attn.hook_z, attn.hook_pattern, hook_resid_mid, mlp.hook_post, hook_resid_post. */
  forward(input: Value, opts: AttendOptions = {}): { out: Value; present: KeyValue } {
    const x = hookPoint('hook_resid_pre', input);
    const a = hookScope('attn', () => this.attn.forward(this.ln1.forward(x), opts));
    const h = hookPoint('hook_resid_mid', add(x, a.out));
    const out = hookPoint(
      'hook_resid_post',
      add(
        h,
        hookScope('mlp', () => this.mlp.forward(this.ln2.forward(h))),
      ),
    );
    return { out, present: a.present };
  }
}

/** GPT2Model: wte, wpe, dropout, the blocks h.<i>, ln_f. */
export class Gpt2Model extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Dropout;
  readonly h: Gpt2Block[] = [];
  readonly lnF: LayerNorm;

  constructor(readonly c: Gpt2Config) {
    super();
    this.wte = this.child('wte', new Embedding(c.vocab_size, c.n_embd));
    this.wpe = this.child('wpe', new Embedding(c.n_positions, c.n_embd));
    for (const e of [this.wte, this.wpe]) e.reinit('weight', (r) => init.normal([e.numEmbeddings, c.n_embd], 0, c.initializer_range, r));
    this.drop = this.child('drop', new Dropout(c.embd_pdrop));
    const blocks = this.child('h', new ModuleList());
    for (let i = 0; i < c.n_layer; i++) this.h.push(blocks.add(new Gpt2Block(c)));
    this.lnF = this.child('ln_f', new LayerNorm(c.n_embd, c.layer_norm_epsilon));
  }
}

/** A TRL-style value head: `summary`, a Linear(n_embd, 1) on the last hidden state. */
export class Gpt2ValueHead extends Module {
  readonly summary: Linear;
  constructor(nEmbd: number) {
    super();
    this.summary = this.child('summary', new Linear(nEmbd, 1));
  }
  forward(h: Value): Value {
    return squeeze(this.summary.forward(h), [-1]);
  }
}

export type Gpt2Inputs = CausalLmInputs;
export type Gpt2Outputs = CausalLmOutputs;

/** GPT2LMHeadModel: `transformer` (Gpt2Model), lm_head tied to transformer.wte, and optionally `v_head`. */
export class Gpt2LMHeadModel extends Module implements CausalLm {
  readonly transformer: Gpt2Model;
  readonly vHead: Gpt2ValueHead | null;

  constructor(readonly config: Gpt2Config) {
    super();
    checkGpt2Config(config);
    this.transformer = this.child('transformer', new Gpt2Model(config));
    this.vHead = config.value_head ? this.child('v_head', new Gpt2ValueHead(config.n_embd)) : null;
  }

  get dims(): CausalLmDims {
    const c = this.config;
    return {
      vocabSize: c.vocab_size,
      context: c.n_positions,
      layers: c.n_layer,
      kvHeads: c.n_head,
      headDim: c.n_embd / c.n_head,
      hidden: c.n_embd,
      eosTokenId: c.eos_token_id >= 0 ? c.eos_token_id : null,
    };
  }

  /**
   * The final hidden states for `ids`. Positions count tokens, not slots: position_ids =
   * max(cumsum(mask) - 1, 0) (with a past, offset by the past's tokens), as Hugging Face's generate
   * passes them, so a left-padded row gets the same hidden states as the unpadded sequence. With no
   * mask they are 0..T-1, as GPT2Model's default.
   */
  trunk(inp: Gpt2Inputs): { hidden: Value; present: KeyValue[] } {
    const ids = cast(inp.ids, 'int64');
    const t = this.transformer;
    const mask = inp.attentionMask;
    const positions = positionIds(ids, mask, inp.past !== undefined);
    let h = t.drop.forward(add(hookPoint('hook_embed', t.wte.forward(ids)), hookPoint('hook_pos_embed', t.wpe.forward(positions))));
    const keyPadding = mask ? equal(cast(mask, 'int64'), 0) : undefined;
    const present: KeyValue[] = [];
    t.h.forEach((block, i) => {
      const r = hookScope(`blocks.${i}`, () => block.forward(h, { keyPadding, past: inp.past?.[i] }));
      h = r.out;
      present.push(r.present);
    });
    return { hidden: hookPoint('ln_final.hook_normalized', t.lnF.forward(h)), present };
  }

  /** logits = hidden @ wte^T (the tied head). */
  head(hidden: Value): Value {
    return linear(hidden, this.transformer.wte.table(), null);
  }

  forward(inp: Gpt2Inputs): Gpt2Outputs {
    const { hidden, present } = this.trunk(inp);
    return { hidden, logits: this.head(hidden), value: this.vHead?.forward(hidden), present };
  }
}

/** A policy over token sequences: the PolicyModel contract plus every position's outputs. */
export interface CausalLmPolicy<M extends CausalLm = CausalLm> extends PolicyModel {
  readonly module: M;
  readonly padId: number;
  /** Next-token logits [B, T, V] at every position (and values [B, T] with the value head). */
  sequence(ids: Value, attentionMask?: Value): CausalLmOutputs;
}

export function isCausalLmPolicy(m: PolicyModel): m is CausalLmPolicy {
  return typeof (m as Partial<CausalLmPolicy>).sequence === 'function';
}

/**
 * The act contract on a TokenSequence observation [B, S] (ids as numbers, right-padded with `padId`):
 * the sequence ends at its last non-pad token, and the policy's logits are the next-token logits
 * there. Only that position goes through the head ([B, E] @ W^T instead of [B, S, E]).
 */
function actForward(model: CausalLm, obs: Value, padId: number): PolicyForward {
  const ids = cast(obs, 'int64');
  const S = ids.dim(1);
  const isToken = sub(1, cast(equal(ids, padId), 'int64'));
  // 1 up to and including the last non-pad token: a pad id inside the sequence stays a token.
  const mask = cast(greater(cumsum(isToken, 1, true), 0), 'int64');
  const { hidden } = model.trunk({ ids, attentionMask: mask });
  const last = maximum(sub(reduceSum(mask, [1]), 1), 0);
  const pick = unsqueeze(oneHot(last, S, hidden.dtype === 'float64' ? 'float64' : 'float32'), [-1]);
  const h = reduceSum(mul(hidden, pick), [1]);
  const value = model.vHead ? model.vHead.forward(h) : fill(last, 0, h.dtype);
  return { logits: model.head(h), value, hidden: h };
}

/**
 * A causal LM as the registered policy over the env's TokenSequence observations, choosing the
 * next token from Discrete(vocab_size): what every text model's ModelSpec.build returns.
 */
export function causalLmPolicy<M extends CausalLm>(module: M, name: string, ctx: ModelContext): CausalLmPolicy<M> {
  const space = ctx.observationSpace as Space;
  const { vocabSize } = module.dims;
  if (space.kind !== 'token_sequence')
    throw new ConfigError('model.id', `${name} needs a token_sequence observation space, the env's is ${space.kind}`);
  if (vocabSize < space.vocabSize)
    throw new ConfigError('model.vocab_size', `must hold the observation space's ${space.vocabSize} tokens, got ${vocabSize}`);
  const d = ctx.distribution;
  if (d.kind !== 'categorical' || d.n !== vocabSize)
    throw new ConfigError('model.id', `${name} acts by choosing the next token: it needs a Discrete(${vocabSize}) action space`);
  return {
    module,
    padId: space.padId,
    name,
    distribution: d,
    obsDim: space.maxLength,
    forward: (obs) => actForward(module, obs, space.padId),
    sequence: (ids, attentionMask) => module.forward({ ids, attentionMask }),
  };
}

export const gpt2Model: ModelSpec<typeof GPT2_OPTIONS> = {
  id: 'gpt2',
  description: "GPT-2 (Hugging Face's GPT2LMHeadModel names and layouts) over token sequences; optional value head",
  options: GPT2_OPTIONS,
  build(o, ctx): CausalLmPolicy<Gpt2LMHeadModel> {
    const space = ctx.observationSpace as Space;
    if (space.kind !== 'token_sequence')
      throw new ConfigError('model.id', `gpt2 needs a token_sequence observation space, the env's is ${space.kind}`);
    const config: Gpt2Config = { ...o, vocab_size: o.vocab_size || space.vocabSize };
    if (config.vocab_size < space.vocabSize)
      throw new ConfigError('model.vocab_size', `must hold the observation space's ${space.vocabSize} tokens, got ${config.vocab_size}`);
    if (space.maxLength > config.n_positions)
      throw new ConfigError(
        'model.n_positions',
        `must be >= the observation space's max_length ${space.maxLength}, got ${config.n_positions}`,
      );
    return causalLmPolicy(new Gpt2LMHeadModel(config), 'GPT2LMHeadModel', ctx);
  },
};
