/**
 * Training a byte-level BPE tokenizer from a corpus, for models trained from scratch: the text is cut
 * by GPT-2's pre-tokenizer, every byte is in the initial alphabet (so any text encodes), and the most
 * frequent adjacent pair is merged until the vocabulary is full or no pair occurs `min_frequency`
 * times. Ids follow Hugging Face's BpeTrainer: special tokens first, then the 256 byte characters in
 * code-point order, then one id per merge; ties go to the smallest pair of ids, so training is
 * deterministic.
 */
import { ConfigError, type Infer, type Schema, validate } from '@rlmesh/core';
import { BYTE_TO_CHAR } from './bytes';
import { type AddedTokenJson, readPreTokenizer, type TokenizerJson } from './format';
import { Tokenizer } from './tokenizer';

export const bpeTrainerSchema = {
  vocab_size: { kind: 'int', default: 1000, min: 1, doc: 'Total ids: special tokens + 256 bytes + merges.' },
  min_frequency: { kind: 'int', default: 2, min: 1, doc: 'A pair seen fewer times than this is never merged.' },
  bos_token: { kind: 'string', default: '<|bos|>', doc: 'Beginning-of-sequence token; empty for none.' },
  eos_token: { kind: 'string', default: '<|eos|>', doc: 'End-of-sequence token; empty for none.' },
  pad_token: { kind: 'string', default: '<|pad|>', doc: 'Padding token; empty for none.' },
} as const satisfies Schema;

export type BpeTrainerConfig = Infer<typeof bpeTrainerSchema>;

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true } as const;

/** Trains a tokenizer on the corpus; `config` is checked against bpeTrainerSchema (errors name the key). */
export function trainBpe(corpus: Iterable<string>, config: Partial<BpeTrainerConfig> = {}): Tokenizer {
  const cfg = validate(bpeTrainerSchema, config);
  const specials = [...new Set([cfg.bos_token, cfg.eos_token, cfg.pad_token].filter((s) => s !== ''))];
  const base = specials.length + 256;
  if (cfg.vocab_size < base)
    throw new ConfigError('vocab_size', `must be >= ${base} (${specials.length} special tokens + 256 bytes), got ${cfg.vocab_size}`);

  // Distinct pieces and their counts; special tokens' text is cut out so it never feeds merges.
  const pre = readPreTokenizer(BYTE_LEVEL);
  const counts = new Map<string, number>();
  const utf8 = new TextEncoder();
  for (const text of corpus) {
    let segments = [text];
    for (const s of specials) segments = segments.flatMap((seg) => seg.split(s));
    let pieces = segments.filter((s) => s !== '');
    for (const step of pre.steps) pieces = step(pieces);
    for (const p of pieces) counts.set(p, (counts.get(p) ?? 0) + 1);
  }

  const idToToken: string[] = [...specials, ...[...BYTE_TO_CHAR].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0))];
  const tokenToId = new Map(idToToken.map((t, i) => [t, i]));
  const byteId = BYTE_TO_CHAR.map((c) => tokenToId.get(c) as number);
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [piece, n] of counts) {
    words.push([...utf8.encode(piece)].map((b) => byteId[b]));
    freq.push(n);
  }

  // Pair counts over all words, and which words hold each pair; keys are a * K + b with K above any id.
  const K = cfg.vocab_size + 1;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addWord = (w: number, sign: 1 | -1) => {
    const sym = words[w];
    for (let i = 0; i + 1 < sym.length; i++) {
      const key = sym[i] * K + sym[i + 1];
      const n = (pairCount.get(key) ?? 0) + sign * freq[w];
      if (n === 0) pairCount.delete(key);
      else pairCount.set(key, n);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (set === undefined) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addWord(w, 1);

  const merges: [string, string][] = [];
  while (idToToken.length < cfg.vocab_size) {
    let best = -1;
    let bestCount = 0;
    for (const [key, n] of pairCount) {
      if (n > bestCount || (n === bestCount && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    if (best < 0 || bestCount < cfg.min_frequency) break;
    const a = Math.floor(best / K);
    const b = best % K;
    const merged = idToToken[a] + idToToken[b];
    let id = tokenToId.get(merged);
    if (id === undefined) {
      id = idToToken.length;
      idToToken.push(merged);
      tokenToId.set(merged, id);
    }
    merges.push([idToToken[a], idToToken[b]]);
    for (const w of pairWords.get(best) ?? []) {
      addWord(w, -1);
      const sym = words[w];
      const out: number[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(sym[i]);
      }
      words[w] = out;
      addWord(w, 1);
    }
    pairCount.delete(best);
    pairWords.delete(best);
  }

  const vocab: Record<string, number> = {};
  idToToken.forEach((t, i) => {
    vocab[t] = i;
  });
  const added: AddedTokenJson[] = specials.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const json: TokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { ...BYTE_LEVEL },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([l, r]) => `${l} ${r}`),
    },
  };
  const role = (s: string) => (s === '' ? null : s);
  return Tokenizer.fromJSON(json, { bos: role(cfg.bos_token), eos: role(cfg.eos_token), pad: role(cfg.pad_token) });
}
