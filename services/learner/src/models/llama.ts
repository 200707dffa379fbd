/**
 * The Llama family (Hugging Face's LlamaForCausalLM; Qwen2ForCausalLM, which differs only in its q/k/v
 * biases; Qwen3ForCausalLM, which adds an RMSNorm over each head of q and k before the rotary
 * embedding, `q_norm` / `k_norm`) as a registered policy over token sequences: RMSNorm, rotary position embeddings
 * (rope_theta; HF's rotate_half convention, positions from the attention mask so a KV-cache decode
 * and left padding give the unpadded sequence's values), a SwiGLU MLP (down(silu(gate(x)) * up(x))),
 * grouped-query attention (num_key_value_heads <= num_attention_heads; the cache holds the kv heads,
 * repeated to the query heads after it, as repeat_kv does), an LM head optionally tied to the
 * embedding. Parameter names and layouts are Hugging Face's (nn.Linear [out, in]), so a state_dict
 * moves between rlmesh and `transformers` unchanged (hf-llama.ts reads and writes the directories).
 *
 * Biases: `attention_bias` (Llama) puts a bias on q, k, v and o; model_type qwen2 always has q, k and
 * v biases and none on o (Qwen2Attention); `mlp_bias` biases the three MLP projections. Not
 * supported (config.json values other than these are refused): rope_scaling, a hidden_act other than
 * silu, sliding-window attention, pretraining_tp > 1.
 */
import { ConfigError, type Infer, type Schema, type Space } from '@rlmesh/core';
import {
  add,
  cast,
  concat,
  Dropout,
  Embedding,
  equal,
  hookPoint,
  hookScope,
  init,
  Linear,
  linear,
  Module,
  ModuleList,
  mul,
  neg,
  RMSNorm,
  recompute,
  reshape,
  scaledDotProductAttention,
  sigmoid,
  split,
  transpose,
  unsqueeze,
  type Value,
} from '@rlmesh/graph';
import type { ModelSpec } from '../registry';
import {
  type CausalLm,
  type CausalLmDims,
  type CausalLmInputs,
  type CausalLmOutputs,
  concatTime,
  type KeyValue,
  positionIds,
} from './causal-lm';
import { type CausalLmPolicy, causalLmPolicy, Gpt2ValueHead } from './gpt2';

export const LLAMA_OPTIONS = {
  model_type: {
    kind: 'string',
    default: 'llama',
    oneOf: ['llama', 'qwen2', 'qwen3'],
    doc: 'qwen2: q/k/v biases, no attention_bias key; qwen3: RMSNorm on each head of q and k',
  },
  vocab_size: { kind: 'int', default: 0, min: 0, max: 1_000_000, doc: "token embeddings; 0 takes the observation space's vocabulary" },
  hidden_size: { kind: 'int', default: 4096, min: 1, max: 65_536 },
  intermediate_size: { kind: 'int', default: 11008, min: 1, max: 262_144 },
  num_hidden_layers: { kind: 'int', default: 32, min: 1, max: 256 },
  num_attention_heads: { kind: 'int', default: 32, min: 1, max: 1024 },
  num_key_value_heads: { kind: 'int', default: 0, min: 0, max: 1024, doc: '0: num_attention_heads (null in config.json); must divide it' },
  head_dim: { kind: 'int', default: 0, min: 0, max: 4096, doc: '0: hidden_size / num_attention_heads' },
  max_position_embeddings: { kind: 'int', default: 2048, min: 1, max: 1_048_576, doc: 'the longest sequence' },
  rms_norm_eps: { kind: 'number', default: 1e-6, min: 0, exclusiveMin: true },
  rope_theta: { kind: 'number', default: 10000, min: 0, exclusiveMin: true },
  attention_bias: { kind: 'bool', default: false, doc: 'llama: biases on q, k, v and o (qwen2 always has q/k/v biases)' },
  mlp_bias: { kind: 'bool', default: false },
  attention_dropout: { kind: 'number', default: 0, min: 0, max: 0.99 },
  tie_word_embeddings: { kind: 'bool', default: false, doc: 'the LM head is the token embedding (no lm_head.weight)' },
  initializer_range: { kind: 'number', default: 0.02, min: 0 },
  bos_token_id: { kind: 'int', default: -1, min: -1, doc: '-1: none (null in config.json)' },
  eos_token_id: { kind: 'int', default: -1, min: -1, doc: '-1: none' },
  pad_token_id: { kind: 'int', default: -1, min: -1, doc: '-1: none' },
  value_head: { kind: 'bool', default: false, doc: 'a scalar value per position from the last hidden state (PPO)' },
} as const satisfies Schema;

export type LlamaConfig = Infer<typeof LLAMA_OPTIONS>;

/** Every option at its default (Llama 2 7B's sizes, no vocabulary yet): a base to override. */
export const LLAMA_DEFAULTS = Object.fromEntries(Object.entries(LLAMA_OPTIONS).map(([k, f]) => [k, f.default])) as LlamaConfig;

/** Query heads, kv heads and the head size, defaults resolved. */
export function llamaHeads(c: LlamaConfig): { heads: number; kvHeads: number; headDim: number } {
  return {
    heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads || c.num_attention_heads,
    headDim: c.head_dim || c.hidden_size / c.num_attention_heads,
  };
}

/** Cross-field rules a schema cannot state; errors name the key. */
export function checkLlamaConfig(c: LlamaConfig, prefix = 'model'): void {
  if (c.vocab_size < 1) throw new ConfigError(`${prefix}.vocab_size`, `must be >= 1, got ${c.vocab_size}`);
  if (c.head_dim === 0 && c.hidden_size % c.num_attention_heads !== 0)
    throw new ConfigError(
      `${prefix}.num_attention_heads`,
      `must divide hidden_size (${c.hidden_size}) when head_dim is 0, got ${c.num_attention_heads}`,
    );
  const { kvHeads, headDim } = llamaHeads(c);
  if (c.num_attention_heads % kvHeads !== 0)
    throw new ConfigError(`${prefix}.num_key_value_heads`, `must divide num_attention_heads (${c.num_attention_heads}), got ${kvHeads}`);
  if (headDim % 2 !== 0) throw new ConfigError(`${prefix}.head_dim`, `rotary embeddings need an even head size, got ${headDim}`);
  if (c.model_type === 'qwen2' && headDim * c.num_attention_heads !== c.hidden_size)
    throw new ConfigError(
      `${prefix}.head_dim`,
      `qwen2's head size is hidden_size / num_attention_heads (${c.hidden_size / c.num_attention_heads}), got ${headDim}`,
    );
  if (c.model_type === 'qwen2' && c.attention_bias)
    throw new ConfigError(`${prefix}.attention_bias`, 'qwen2 has fixed biases (q, k, v); attention_bias applies to llama only');
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    if (c[k] >= c.vocab_size) throw new ConfigError(`${prefix}.${k}`, `must be a token id below vocab_size (${c.vocab_size}), got ${c[k]}`);
  }
}

/** Linear with Llama's init: weight ~ N(0, initializer_range), bias 0 (LlamaPreTrainedModel._init_weights). */
function projection(c: LlamaConfig, inF: number, outF: number, bias: boolean): Linear {
  const l = new Linear(inF, outF, bias);
  l.reinit('weight', (r) => init.normal([outF, inF], 0, c.initializer_range, r));
  if (bias) l.reinit('bias', () => init.zeros([outF]));
  return l;
}

/** rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]). */
function rotateHalf(x: Value): Value {
  const D = x.dim(-1);
  const [a, b] = split(x, [D / 2, D / 2], -1);
  return concat([neg(b), a], -1);
}

/**
 * cos and sin [B, 1, T, D] of the rotary angles position * inv_freq, inv_freq_i = theta^(-2i/D),
 * each half repeated (HF's cat(freqs, freqs)). Positions are data: Cos and Sin carry no gradient.
 */
function rotaryTables(positions: Value, headDim: number, theta: number, dtype: 'float32' | 'float64'): { cos: Value; sin: Value } {
  const g = positions.graph;
  const invFreq = Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
  const half = g.constant({
    dtype,
    shape: [headDim / 2],
    data: dtype === 'float64' ? Float64Array.from(invFreq) : Float32Array.from(invFreq),
  });
  const pos = positions.rank === 1 ? unsqueeze(positions, [0]) : positions;
  const freqs = mul(unsqueeze(cast(pos, dtype), [-1]), half);
  const emb = unsqueeze(concat([freqs, freqs], -1), [1]);
  const table = (op: 'Cos' | 'Sin') => {
    const [out] = g.node(op, [emb], {}, [{ dtype, shape: emb.shape }]);
    g.record(op, [emb], [out], null);
    return out;
  };
  return { cos: table('Cos'), sin: table('Sin') };
}

function applyRotary(x: Value, cos: Value, sin: Value): Value {
  return add(mul(x, cos), mul(rotateHalf(x), sin));
}

/** [B, H_kv, T, D] -> [B, H_kv * rep, T, D], each kv head repeated for its rep query heads (repeat_kv). */
function repeatKv(x: Value, rep: number): Value {
  if (rep === 1) return x;
  const [B, Hkv, T, D] = x.shape;
  const copies = unsqueeze(x, [2]);
  return reshape(concat(Array(rep).fill(copies), 2), [B, (Hkv as number) * rep, T, D]);
}

export interface LlamaAttendOptions {
  /** bool [B, T_keys], true where the key is padding. */
  keyPadding?: Value;
  past?: KeyValue;
  cos: Value;
  sin: Value;
}

/** LlamaAttention / Qwen2Attention / Qwen3Attention: q, k, v projections (Qwen3: each head RMS-normed), rotary, grouped-query causal attention, o_proj. */
export class LlamaAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  readonly qNorm: RMSNorm | null;
  readonly kNorm: RMSNorm | null;
  readonly attnDropout: Dropout;
  readonly heads: { heads: number; kvHeads: number; headDim: number };

  constructor(readonly c: LlamaConfig) {
    super();
    this.heads = llamaHeads(c);
    const { heads, kvHeads, headDim } = this.heads;
    const qkvBias = c.attention_bias || c.model_type === 'qwen2';
    this.qProj = this.child('q_proj', projection(c, c.hidden_size, heads * headDim, qkvBias));
    this.kProj = this.child('k_proj', projection(c, c.hidden_size, kvHeads * headDim, qkvBias));
    this.vProj = this.child('v_proj', projection(c, c.hidden_size, kvHeads * headDim, qkvBias));
    this.oProj = this.child('o_proj', projection(c, heads * headDim, c.hidden_size, c.attention_bias));
    this.qNorm = c.model_type === 'qwen3' ? this.child('q_norm', new RMSNorm(headDim, c.rms_norm_eps)) : null;
    this.kNorm = c.model_type === 'qwen3' ? this.child('k_norm', new RMSNorm(headDim, c.rms_norm_eps)) : null;
    this.attnDropout = this.child('attn_dropout', new Dropout(c.attention_dropout));
  }

  forward(x: Value, opts: LlamaAttendOptions): { out: Value; present: KeyValue } {
    const [B, T] = [x.shape[0], x.shape[1]];
    const { heads, kvHeads, headDim } = this.heads;
    const split4 = (t: Value, h: number) => transpose(reshape(t, [B, T, h, headDim]), [0, 2, 1, 3]);
    const normed = (t: Value, norm: RMSNorm | null) => (norm ? norm.forward(t) : t);
    const q = applyRotary(normed(split4(this.qProj.forward(x), heads), this.qNorm), opts.cos, opts.sin);
    const k0 = applyRotary(normed(split4(this.kProj.forward(x), kvHeads), this.kNorm), opts.cos, opts.sin);
    const v0 = split4(this.vProj.forward(x), kvHeads);
    const total = opts.keyPadding?.shape[1];
    const key = opts.past ? concatTime(opts.past.key, k0, total) : k0;
    const value = opts.past ? concatTime(opts.past.value, v0, total) : v0;
    const rep = heads / kvHeads;
    const out = scaledDotProductAttention(q, repeatKv(key, rep), repeatKv(value, rep), {
      causal: true,
      keyPaddingMask: opts.keyPadding,
      dropout: (p) => this.attnDropout.forward(p),
    });
    const z = hookPoint('hook_z', transpose(out, [0, 2, 1, 3]));
    return { out: this.oProj.forward(reshape(z, [B, T, heads * headDim])), present: { key, value } };
  }
}

/** LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x)). */
export class LlamaMlp extends Module {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(c: LlamaConfig) {
    super();
    this.gateProj = this.child('gate_proj', projection(c, c.hidden_size, c.intermediate_size, c.mlp_bias));
    this.upProj = this.child('up_proj', projection(c, c.hidden_size, c.intermediate_size, c.mlp_bias));
    this.downProj = this.child('down_proj', projection(c, c.intermediate_size, c.hidden_size, c.mlp_bias));
  }

  forward(x: Value): Value {
    const gate = this.gateProj.forward(x);
    const act = hookPoint('hook_post', mul(mul(gate, sigmoid(gate)), this.upProj.forward(x)));
    return this.downProj.forward(act);
  }
}

/** LlamaDecoderLayer, pre-norm: h = x + attn(input_layernorm(x)); h + mlp(post_attention_layernorm(h)). */
export class LlamaDecoderLayer extends Module {
  readonly selfAttn: LlamaAttention;
  readonly mlp: LlamaMlp;
  readonly inputLayernorm: RMSNorm;
  readonly postAttentionLayernorm: RMSNorm;

  constructor(c: LlamaConfig) {
    super();
    this.selfAttn = this.child('self_attn', new LlamaAttention(c));
    this.mlp = this.child('mlp', new LlamaMlp(c));
    this.inputLayernorm = this.child('input_layernorm', new RMSNorm(c.hidden_size, c.rms_norm_eps));
    this.postAttentionLayernorm = this.child('post_attention_layernorm', new RMSNorm(c.hidden_size, c.rms_norm_eps));
  }

  /** Hooks (TransformerLens's names, as gpt2's): hook_resid_pre, attn.hook_z, attn.hook_pattern, hook_resid_mid, mlp.hook_post, hook_resid_post. */
  forward(input: Value, opts: LlamaAttendOptions): { out: Value; present: KeyValue } {
    const x = hookPoint('hook_resid_pre', input);
    const a = hookScope('attn', () => this.selfAttn.forward(this.inputLayernorm.forward(x), opts));
    const h = hookPoint('hook_resid_mid', add(x, a.out));
    const m = hookScope('mlp', () => this.mlp.forward(this.postAttentionLayernorm.forward(h)));
    return { out: hookPoint('hook_resid_post', add(h, m)), present: a.present };
  }
}

/** LlamaModel: embed_tokens, layers.<i>, norm. */
export class LlamaModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: LlamaDecoderLayer[] = [];
  readonly norm: RMSNorm;

  constructor(readonly c: LlamaConfig) {
    super();
    this.embedTokens = this.child('embed_tokens', new Embedding(c.vocab_size, c.hidden_size));
    this.embedTokens.reinit('weight', (r) => init.normal([c.vocab_size, c.hidden_size], 0, c.initializer_range, r));
    const list = this.child('layers', new ModuleList());
    for (let i = 0; i < c.num_hidden_layers; i++) this.layers.push(list.add(new LlamaDecoderLayer(c)));
    this.norm = this.child('norm', new RMSNorm(c.hidden_size, c.rms_norm_eps));
  }
}

/** LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM: `model`, `lm_head` (absent when tied), optionally `v_head`. */
export class LlamaForCausalLM extends Module implements CausalLm {
  readonly model: LlamaModel;
  readonly lmHead: Linear | null;
  readonly vHead: Gpt2ValueHead | null;
  /**
   * Recompute each decoder layer's activations in the backward pass instead of keeping them
   * (packages/graph recompute.ts; HF's gradient_checkpointing_enable()): applies to train-mode
   * forwards without a KV cache, which then return no cache. Dropout must be off.
   */
  gradientCheckpointing = false;

  constructor(readonly config: LlamaConfig) {
    super();
    checkLlamaConfig(config);
    this.model = this.child('model', new LlamaModel(config));
    this.lmHead = config.tie_word_embeddings
      ? null
      : this.child('lm_head', projection(config, config.hidden_size, config.vocab_size, false));
    this.vHead = config.value_head ? this.child('v_head', new Gpt2ValueHead(config.hidden_size)) : null;
  }

  get dims(): CausalLmDims {
    const c = this.config;
    const { kvHeads, headDim } = llamaHeads(c);
    return {
      vocabSize: c.vocab_size,
      context: c.max_position_embeddings,
      layers: c.num_hidden_layers,
      kvHeads,
      headDim,
      hidden: c.hidden_size,
      eosTokenId: c.eos_token_id >= 0 ? c.eos_token_id : null,
    };
  }

  trunk(inp: CausalLmInputs): { hidden: Value; present: KeyValue[] } {
    const ids = cast(inp.ids, 'int64');
    const m = this.model;
    const mask = inp.attentionMask;
    const positions = positionIds(ids, mask, inp.past !== undefined);
    let h = hookPoint('hook_embed', m.embedTokens.forward(ids));
    const dtype = h.dtype === 'float64' ? 'float64' : 'float32';
    const { cos, sin } = rotaryTables(positions, this.dims.headDim, this.config.rope_theta, dtype);
    const keyPadding = mask ? equal(cast(mask, 'int64'), 0) : undefined;
    const present: KeyValue[] = [];
    const checkpointed = this.gradientCheckpointing && this.training && !inp.past;
    m.layers.forEach((layer, i) => {
      if (checkpointed) {
        h = hookScope(`blocks.${i}`, () => recompute((x) => layer.forward(x, { keyPadding, cos, sin }).out, h));
        return;
      }
      const r = hookScope(`blocks.${i}`, () => layer.forward(h, { keyPadding, past: inp.past?.[i], cos, sin }));
      h = r.out;
      present.push(r.present);
    });
    return { hidden: hookPoint('ln_final.hook_normalized', m.norm.forward(h)), present };
  }

  head(hidden: Value): Value {
    return this.lmHead ? this.lmHead.forward(hidden) : linear(hidden, this.model.embedTokens.table(), null);
  }

  forward(inp: CausalLmInputs): CausalLmOutputs {
    const { hidden, present } = this.trunk(inp);
    return { hidden, logits: this.head(hidden), value: this.vHead?.forward(hidden), present };
  }
}

export const llamaModel: ModelSpec<typeof LLAMA_OPTIONS> = {
  id: 'llama',
  description: "Llama / Qwen2 / Qwen3 (Hugging Face's *ForCausalLM names and layouts) over token sequences; GQA, RoPE, SwiGLU",
  options: LLAMA_OPTIONS,
  build(o, ctx): CausalLmPolicy {
    const space = ctx.observationSpace as Space;
    if (space.kind !== 'token_sequence')
      throw new ConfigError('model.id', `llama needs a token_sequence observation space, the env's is ${space.kind}`);
    const config: LlamaConfig = { ...o, vocab_size: o.vocab_size || space.vocabSize };
    if (space.maxLength > config.max_position_embeddings)
      throw new ConfigError(
        'model.max_position_embeddings',
        `must be >= the observation space's max_length ${space.maxLength}, got ${config.max_position_embeddings}`,
      );
    return causalLmPolicy(new LlamaForCausalLM(config), 'LlamaForCausalLM', ctx);
  },
};
