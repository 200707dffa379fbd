/**
 * GPT-2's tokenizer, offline: its byte-pair ranks ship in js-tiktoken (`ranks/gpt2`, identical to
 * r50k_base) and become the vocab + merges of Hugging Face's GPT-2 files (see tiktoken.ts); our own
 * engine runs them. js-tiktoken's encoder is not used here: it is the independent check in the tests
 * and the baseline in the benchmark.
 */
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import type { TokenizerJson } from './format';
import { GPT2_PATTERN } from './pretokenize';
import { type TiktokenRanks, tokenizerJsonFromTiktoken } from './tiktoken';
import { Tokenizer } from './tokenizer';

export const GPT2_EOS = '<|endoftext|>';
export const GPT2_EOS_ID = 50256;
/** GPT-2's context length (n_positions), written as model_max_length in tokenizer_config.json. */
export const GPT2_MAX_LENGTH = 1024;

/** GPT-2's `tokenizer.json` as Hugging Face publishes it for the `gpt2` checkpoint. */
export function gpt2TokenizerJson(): TokenizerJson {
  const file = gpt2Ranks as TiktokenRanks;
  if (file.pat_str !== GPT2_PATTERN) throw new Error("js-tiktoken's gpt2 ranks: the split pattern is not GPT-2's");
  return tokenizerJsonFromTiktoken(file);
}

let shared: Tokenizer | undefined;

/**
 * GPT-2's tokenizer (50,257 ids; `<|endoftext|>` = 50256 is BOS, EOS and UNK, as in transformers).
 * Deriving the merges takes a moment, so one instance is shared per process; it is immutable apart
 * from its piece cache.
 */
export function gpt2Tokenizer(): Tokenizer {
  shared ??= Tokenizer.fromJSON(gpt2TokenizerJson(), { bos: GPT2_EOS, eos: GPT2_EOS, unk: GPT2_EOS });
  return shared;
}
