/** The tiny Llama the llama tests share (2 layers, GQA 4 heads / 2 kv heads, hidden 32) and its random weights. */
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { Rng as GraphRng, initParameters } from '@rlmesh/graph';
import { saveTokenizer, trainBpe } from '@rlmesh/text';
import { saveLlamaDirectory } from '../src/models/hf-llama';
import { LLAMA_DEFAULTS, type LlamaConfig, LlamaForCausalLM } from '../src/models/llama';
import { PROMPTS } from './tiny-letters';

export const TINY_LLAMA: LlamaConfig = {
  ...LLAMA_DEFAULTS,
  vocab_size: 29,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  max_position_embeddings: 24,
  rms_norm_eps: 1e-5,
  rope_theta: 100,
  attention_bias: true,
  bos_token_id: 1,
  eos_token_id: 2,
};

/** Random weights large enough that every term matters (norm gains and biases included). */
export function randomLlamaParams(model: LlamaForCausalLM, seed: number, scale = 0.3): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(
    model.namedParameters().map((p) => {
      const gain = /norm\.weight$/.test(p.name) ? 1 : 0;
      return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + scale * rng.normal())];
    }),
  );
}

/** A 1-layer Llama (hidden 32, GQA 4 heads / 2 kv heads, context 32) and a BPE tokenizer of tiny-letters' prompts, written to dir/init. */
export async function tinyLlamaDir(dir: string): Promise<string> {
  const tok = trainBpe(PROMPTS, { vocab_size: 264 });
  const config: LlamaConfig = {
    ...TINY_LLAMA,
    vocab_size: tok.vocabSize,
    num_hidden_layers: 1,
    max_position_embeddings: 32,
    attention_bias: false,
    initializer_range: 0.1,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
    pad_token_id: tok.padId ?? -1,
  };
  const out = join(dir, 'init');
  await saveLlamaDirectory(out, config, initParameters(new LlamaForCausalLM(config), new GraphRng(1)));
  saveTokenizer(tok, out, { modelMaxLength: 32 });
  return out;
}
