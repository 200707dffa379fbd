/**
 * What every causal language model here (gpt2, llama) offers the code that serves and trains it:
 * one forward over token ids with an attention mask and an optional per-layer KV cache, the sizes a
 * generator needs, and the two KV-cache programs built from that forward. Gpt2Generator, the
 * sequence algorithms' token log-probs and PolicyService Generate read a model only through this.
 */
import { buildInferenceProgram, cast, cumsum, type Dim, type Module, maximum, sub, type Value } from '@rlmesh/graph';

/** One layer's cached keys and values, each [B, H_kv, T_past, D]. */
export interface KeyValue {
  key: Value;
  value: Value;
}

export interface CausalLmInputs {
  /** Token ids [B, T] (any integer or float dtype). */
  ids: Value;
  /**
   * 1 (or true) at tokens, 0 at padding, padding on either side: [B, T], or [B, T_past + T] with
   * `past`. Absent: no padding (and then no past).
   */
  attentionMask?: Value;
  /** Per-layer keys and values of the positions before these (a KV cache). */
  past?: KeyValue[];
}

export interface CausalLmOutputs {
  /** Final hidden states [B, T, E] (after the final norm). */
  hidden: Value;
  /** Next-token logits at every position [B, T, V]. */
  logits: Value;
  /** [B, T] with a value head. */
  value?: Value;
  /** Per-layer keys and values, past included. */
  present: KeyValue[];
}

/** The sizes generation and serving need, whatever the architecture's config calls them. */
export interface CausalLmDims {
  vocabSize: number;
  /** The longest sequence (prompt + completion) the model takes. */
  context: number;
  layers: number;
  /** Heads in the KV cache (fewer than the query heads under grouped-query attention). */
  kvHeads: number;
  headDim: number;
  hidden: number;
  /** The config's eos_token_id; null when it has none. */
  eosTokenId: number | null;
}

export interface CausalLm extends Module {
  readonly dims: CausalLmDims;
  /** TRL's value head (`v_head.summary`) on the last hidden state, when the model has one. */
  readonly vHead: { forward(hidden: Value): Value } | null;
  /** The final hidden states and the cache. */
  trunk(inp: CausalLmInputs): { hidden: Value; present: KeyValue[] };
  /** Next-token logits from hidden states. */
  head(hidden: Value): Value;
  forward(inp: CausalLmInputs): CausalLmOutputs;
}

/**
 * Position ids as Hugging Face's generate passes them: max(cumsum(mask) - 1, 0), so positions count
 * tokens, not slots, and a left-padded row gets the same hidden states as the unpadded sequence;
 * with a past, the mask spans past + present and the present positions are its last T columns.
 * Without a mask, 0..T-1.
 */
export function positionIds(ids: Value, mask: Value | undefined, hasPast: boolean): Value {
  const g = ids.graph;
  const T = ids.shape[1];
  if (!mask) {
    if (hasPast) throw new Error('a forward with past keys needs the attention mask over past and present positions');
    if (typeof T === 'number') return g.ints(Array.from({ length: T }, (_, i) => i));
    const [len] = g.node('Gather', [g.shapeOf(ids), g.scalar(1, 'int64')], { axis: 0 }, [{ dtype: 'int64', shape: [] }]);
    return g.node('Range', [g.scalar(0, 'int64'), len, g.scalar(1, 'int64')], {}, [{ dtype: 'int64', shape: [T] }])[0];
  }
  const counted = maximum(sub(cumsum(cast(mask, 'int64'), 1), 1), 0);
  if (!hasPast) return counted;
  const [len] = g.node('Slice', [g.shapeOf(ids), g.ints([1]), g.ints([2])], {}, [{ dtype: 'int64', shape: [1] }]);
  const [start] = g.node('Neg', [len], {}, [{ dtype: 'int64', shape: [1] }]);
  return g.node('Slice', [counted, start, g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])], {}, [
    { dtype: 'int64', shape: [ids.shape[0], T] },
  ])[0];
}

/** Cached and new keys (or values) along the time axis; `total` names the joined length (the mask's). */
export function concatTime(past: Value, now: Value, total: Dim | undefined): Value {
  // Lengths may be symbolic here (a cache grows), so Concat is emitted directly; the cache is data.
  const g = now.graph;
  const shape = [...now.shape];
  const [a, b] = [past.shape[2], now.shape[2]];
  shape[2] = typeof a === 'number' && typeof b === 'number' ? a + b : (total ?? `${past.name}_plus_${now.name}`);
  const [out] = g.node('Concat', [past, now], { axis: 2 }, [{ dtype: now.dtype, shape }]);
  g.record('Concat', [past, now], [out], null);
  return out;
}

/** Input and output names of the KV-cache programs (those of an ONNX export of a causal LM with past). */
export const KV_IO = {
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`,
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`,
};

/**
 * A generation program with a per-layer KV cache. Inputs `input_ids` [batch, sequence] and
 * `attention_mask` (int64, 1 = token), and with `past`, every layer's `past_key_values.<i>.key` /
 * `.value` [batch, kv_heads, past_sequence, head_dim] with the mask spanning [batch, past_sequence +
 * sequence]. Outputs the next-token `logits` [batch, vocab] after the last slot (prompts are
 * left-padded, so that is every row's last token) and `present.<i>.key` / `.value`, the cache
 * including these positions. Prefill is the program without past; decode, with it.
 */
export function buildKvProgram(model: CausalLm, params: ReadonlyMap<string, Float32Array>, opts: { past: boolean }): Uint8Array {
  const d = model.dims;
  const kvShape = ['batch', d.kvHeads, 'past_sequence', d.headDim];
  const layers = [...Array(d.layers).keys()];
  const pastInputs = opts.past
    ? layers.flatMap((i) => [
        { name: KV_IO.pastKey(i), dtype: 'float32' as const, shape: kvShape },
        { name: KV_IO.pastValue(i), dtype: 'float32' as const, shape: kvShape },
      ])
    : [];
  return buildInferenceProgram({
    module: model,
    params,
    name: opts.past ? 'causal_lm_decode' : 'causal_lm_prefill',
    inputs: [
      { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
      { name: 'attention_mask', dtype: 'int64', shape: ['batch', opts.past ? 'total_sequence' : 'sequence'] },
      ...pastInputs,
    ],
    forward: (i, g) => {
      const past = opts.past ? layers.map((l) => ({ key: i[KV_IO.pastKey(l)], value: i[KV_IO.pastValue(l)] })) : undefined;
      const { hidden, present } = model.trunk({ ids: i.input_ids, attentionMask: i.attention_mask, past });
      const [last] = g.node('Gather', [hidden, g.scalar(-1, 'int64')], { axis: 1 }, [
        { dtype: 'float32', shape: [hidden.shape[0], d.hidden] },
      ]);
      const out: Record<string, Value> = { logits: model.head(last) };
      present.forEach((kv, l) => {
        out[KV_IO.presentKey(l)] = kv.key;
        out[KV_IO.presentValue(l)] = kv.value;
      });
      return out;
    },
  });
}

/**
 * The logits program: inputs `input_ids` and `attention_mask` (int64 [batch, sequence]), output
 * `logits` [batch, sequence, vocab] (and `value` with a value head), the weights baked in under
 * their Hugging Face names: the interface of an ONNX export of the *ForCausalLM model.
 */
export function buildLogitsProgram(model: CausalLm, params: ReadonlyMap<string, Float32Array>): Uint8Array {
  return buildInferenceProgram({
    module: model,
    params,
    name: 'causal_lm_logits',
    inputs: [
      { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
      { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'] },
    ],
    forward: (i) => {
      const out = model.forward({ ids: i.input_ids, attentionMask: i.attention_mask });
      const outputs: Record<string, Value> = { logits: out.logits };
      if (out.value) outputs.value = out.value;
      return outputs;
    },
  });
}
