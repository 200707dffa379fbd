/**
 * GPT-2's tokenizer, offline: its byte-pair ranks ship in js-tiktoken (`ranks/gpt2`, identical to
 * r50k_base), and we turn them into the vocab + merges that Hugging Face's GPT-2 files hold, then run
 * our own engine on them. js-tiktoken's encoder is not used here (it is the independent check in the
 * tests and the baseline in the benchmark).
 *
 * tiktoken stores ranks (token bytes -> id) without merges; each token's merge is recovered by
 * running BPE on its bytes with only the tokens ranked below it: the two parts left at the end are
 * the pair that made it. GPT-2's ids 256..50255 are then exactly merges 0..49999 in order.
 */
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { bytesToUnicode } from './bytes';
import type { AddedTokenJson, TokenizerJson } from './format';
import { GPT2_PATTERN } from './pretokenize';
import { Tokenizer } from './tokenizer';

export const GPT2_EOS = '<|endoftext|>';
export const GPT2_EOS_ID = 50256;
/** GPT-2's context length (n_positions), written as model_max_length in tokenizer_config.json. */
export const GPT2_MAX_LENGTH = 1024;

interface RankFile {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

/** js-tiktoken's compressed ranks: lines of `! <first rank> <base64 token> <base64 token> ...`. */
function readRanks(file: RankFile): Uint8Array[] {
  const byRank: Uint8Array[] = [];
  for (const line of file.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const [, offset, ...tokens] = line.split(' ');
    const first = Number.parseInt(offset, 10);
    tokens.forEach((b64, i) => {
      byRank[first + i] = new Uint8Array(Buffer.from(b64, 'base64'));
    });
  }
  return byRank;
}

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString('latin1');

/** The merge that produced each multi-byte token, in rank order, as byte-level strings. */
export function mergesFromRanks(byRank: readonly Uint8Array[]): [string, string][] {
  const rankOf = new Map<string, number>();
  for (let r = 0; r < byRank.length; r++) rankOf.set(latin1(byRank[r]), r);
  const merges: [string, string][] = [];
  for (let r = 0; r < byRank.length; r++) {
    const bytes = byRank[r];
    if (bytes.length < 2) continue;
    const parts = [...latin1(bytes)];
    for (;;) {
      let best = -1;
      let bestRank = r;
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = rankOf.get(parts[i] + parts[i + 1]);
        if (k !== undefined && k < bestRank) {
          bestRank = k;
          best = i;
        }
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best] + parts[best + 1]);
    }
    if (parts.length !== 2) throw new Error(`gpt2 ranks: token ${r} is not the merge of two lower-ranked tokens (${parts.length} parts)`);
    const [a, b] = parts.map((p) => bytesToUnicode(Buffer.from(p, 'latin1')));
    merges.push([a, b]);
  }
  return merges;
}

/** GPT-2's `tokenizer.json` as Hugging Face publishes it for the `gpt2` checkpoint. */
export function gpt2TokenizerJson(): TokenizerJson {
  const file = gpt2Ranks as RankFile;
  if (file.pat_str !== GPT2_PATTERN) throw new Error("js-tiktoken gpt2 ranks: the split pattern is not GPT-2's");
  const byRank = readRanks(file);
  const vocab: Record<string, number> = {};
  byRank.forEach((b, r) => {
    vocab[bytesToUnicode(b)] = r;
  });
  vocab[GPT2_EOS] = file.special_tokens[GPT2_EOS];
  const eos: AddedTokenJson = {
    id: file.special_tokens[GPT2_EOS],
    content: GPT2_EOS,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [eos],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: mergesFromRanks(byRank).map(([a, b]) => `${a} ${b}`),
    },
  };
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
