/**
 * tiktoken rank files -> Hugging Face `tokenizer.json`. tiktoken stores ranks (token bytes -> id)
 * without merges; each token's merge is recovered by running BPE on its bytes with only the tokens
 * ranked below it: the two parts left at the end are the pair that made it (the conversion
 * transformers uses for Llama-3). Merges come out in rank order, so for GPT-2 ids 256..50255 are
 * merges 0..49999.
 */
import { bytesToUnicode } from './bytes';
import type { AddedTokenJson, Json, TokenizerJson } from './format';

/** js-tiktoken's rank file: `bpe_ranks` is lines of `! <first rank> <base64 token> <base64 token> ...`. */
export interface TiktokenRanks {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

function readRanks(file: TiktokenRanks): Uint8Array[] {
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
  for (let r = 0; r < byRank.length; r++) if (byRank[r] !== undefined) rankOf.set(latin1(byRank[r]), r);
  const merges: [string, string][] = [];
  for (let r = 0; r < byRank.length; r++) {
    const bytes = byRank[r];
    if (bytes === undefined || bytes.length < 2) continue;
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
    if (parts.length !== 2)
      throw new Error(`tiktoken ranks: token ${r} is not the merge of two lower-ranked tokens (${parts.length} parts)`);
    merges.push([bytesToUnicode(Buffer.from(parts[0], 'latin1')), bytesToUnicode(Buffer.from(parts[1], 'latin1'))]);
  }
  return merges;
}

export interface FromTiktokenOptions {
  /**
   * The split regex in Hugging Face's (Oniguruma) syntax, for encodings whose pattern is not GPT-2's
   * (cl100k / Llama-3). It becomes a Split pre-tokenizer followed by ByteLevel without its own regex,
   * the layout of Llama-3's file. Omitted: GPT-2's ByteLevel pre-tokenizer.
   */
  split?: string;
}

/** A tokenizer.json for a tiktoken encoding; its special tokens become special added tokens. */
export function tokenizerJsonFromTiktoken(file: TiktokenRanks, opts: FromTiktokenOptions = {}): TokenizerJson {
  const byRank = readRanks(file);
  const vocab: Record<string, number> = {};
  byRank.forEach((b, r) => {
    vocab[bytesToUnicode(b)] = r;
  });
  const added: AddedTokenJson[] = Object.entries(file.special_tokens)
    .sort((a, b) => a[1] - b[1])
    .map(([content, id]) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: opts.split === undefined,
      special: true,
    }));
  // GPT-2's vocab.json lists its special token too; Llama-3's file keeps specials in added_tokens only.
  if (opts.split === undefined) for (const t of added) vocab[t.content] = t.id;
  const byteLevel = (useRegex: boolean): Json => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer:
      opts.split === undefined
        ? byteLevel(true)
        : {
            type: 'Sequence',
            pretokenizers: [{ type: 'Split', pattern: { Regex: opts.split }, behavior: 'Isolated', invert: false }, byteLevel(false)],
          },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: opts.split === undefined ? '' : null,
      end_of_word_suffix: opts.split === undefined ? '' : null,
      fuse_unk: false,
      byte_fallback: false,
      // tiktoken takes a piece that is itself a token whole; Llama-3's file says so with ignore_merges.
      ...(opts.split === undefined ? {} : { ignore_merges: true }),
      vocab,
      merges: mergesFromRanks(byRank).map(([a, b]) => `${a} ${b}`),
    },
  };
}
