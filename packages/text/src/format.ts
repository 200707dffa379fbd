/**
 * Hugging Face `tokenizer.json`, the parts a byte-level BPE uses: reading each section into what the
 * Tokenizer runs, with an error naming the key of anything unsupported. Field names follow the
 * `tokenizers` library's serialisation exactly, so files pass both ways.
 */
import { BpeModel } from './bpe';
import { TokenizerFormatError } from './errors';
import { compilePattern, GPT2_PATTERN, literalPattern, type SplitBehavior, splitOn } from './pretokenize';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** The file as a JSON object; sections we do not interpret (truncation, padding) are kept as loaded. */
export interface TokenizerJson {
  version: string;
  truncation: Json;
  padding: Json;
  added_tokens: AddedTokenJson[];
  normalizer: Json;
  pre_tokenizer: Json;
  post_processor: Json;
  decoder: Json;
  model: JsonObject;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function objectAt(v: unknown, key: string): JsonObject {
  if (!isObject(v)) throw new TokenizerFormatError(key, `must be an object, got ${JSON.stringify(v)?.slice(0, 60)}`);
  return v;
}

function stringAt(o: JsonObject, field: string, key: string): string {
  const v = o[field];
  if (typeof v !== 'string') throw new TokenizerFormatError(`${key}.${field}`, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function boolAt(o: JsonObject, field: string, key: string, fallback: boolean): boolean {
  const v = o[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new TokenizerFormatError(`${key}.${field}`, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function unsupportedType(key: string, type: unknown, supported: string): never {
  throw new TokenizerFormatError(`${key}.type`, `${String(type)} is not supported (supported: ${supported})`);
}

/** The whole file: checks the top-level shape and returns it typed. */
export function readTokenizerJson(v: unknown): TokenizerJson {
  const o = objectAt(v, 'tokenizer.json');
  const model = objectAt(o.model, 'model');
  const added = o.added_tokens ?? [];
  if (!Array.isArray(added)) throw new TokenizerFormatError('added_tokens', 'must be a list');
  return {
    version: typeof o.version === 'string' ? o.version : '1.0',
    truncation: o.truncation ?? null,
    padding: o.padding ?? null,
    added_tokens: added.map((t, i) => readAddedToken(t, `added_tokens[${i}]`)),
    normalizer: o.normalizer ?? null,
    pre_tokenizer: o.pre_tokenizer ?? null,
    post_processor: o.post_processor ?? null,
    decoder: o.decoder ?? null,
    model,
  };
}

function readAddedToken(v: unknown, key: string): AddedTokenJson {
  const o = objectAt(v, key);
  const id = o.id;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
    throw new TokenizerFormatError(`${key}.id`, `must be an integer >= 0, got ${JSON.stringify(id)}`);
  const content = stringAt(o, 'content', key);
  if (content === '') throw new TokenizerFormatError(`${key}.content`, 'must not be empty');
  return {
    id,
    content,
    single_word: boolAt(o, 'single_word', key, false),
    lstrip: boolAt(o, 'lstrip', key, false),
    rstrip: boolAt(o, 'rstrip', key, false),
    normalized: boolAt(o, 'normalized', key, false),
    special: boolAt(o, 'special', key, false),
  };
}

/** `model`: BPE over a byte-level vocabulary. Merges may be `"a b"` strings (tokenizers < 0.20) or `["a", "b"]` pairs. */
export function readModel(model: JsonObject): BpeModel {
  if (model.type !== undefined && model.type !== 'BPE') unsupportedType('model', model.type, 'BPE');
  const vocabJson = objectAt(model.vocab, 'model.vocab');
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(vocabJson)) {
    if (typeof id !== 'number')
      throw new TokenizerFormatError(`model.vocab[${JSON.stringify(tok)}]`, `must be an integer id, got ${JSON.stringify(id)}`);
    vocab.set(tok, id);
  }
  const mergesJson = model.merges ?? [];
  if (!Array.isArray(mergesJson)) throw new TokenizerFormatError('model.merges', 'must be a list');
  const merges = mergesJson.map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length !== 2)
        throw new TokenizerFormatError(`model.merges[${i}]`, `must be two tokens separated by one space, got ${JSON.stringify(m)}`);
      return [parts[0], parts[1]];
    }
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
    throw new TokenizerFormatError(`model.merges[${i}]`, `must be "a b" or ["a", "b"], got ${JSON.stringify(m)}`);
  });
  const dropout = model.dropout;
  if (dropout !== undefined && dropout !== null && dropout !== 0 && dropout !== 1)
    throw new TokenizerFormatError(
      'model.dropout',
      `BPE dropout (${JSON.stringify(dropout)}) is not supported: encoding here is deterministic`,
    );
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix']) {
    const v = model[field];
    if (v !== undefined && v !== null && v !== '')
      throw new TokenizerFormatError(`model.${field}`, `${JSON.stringify(v)} is not supported (byte-level BPE uses none)`);
  }
  if (model.byte_fallback === true)
    throw new TokenizerFormatError('model.byte_fallback', 'true is not supported (byte-level BPE needs no byte fallback)');
  const unk = model.unk_token;
  if (unk !== undefined && unk !== null && typeof unk !== 'string')
    throw new TokenizerFormatError('model.unk_token', 'must be a string or null');
  return new BpeModel({ vocab, merges, unkToken: unk ?? null, ignoreMerges: model.ignore_merges === true });
}

export type Normalize = (s: string) => string;

/** `normalizer`: null, Unicode normal forms (Qwen2 uses NFC), or a Sequence of them. */
export function readNormalizer(v: Json, key = 'normalizer'): Normalize | null {
  if (v === null) return null;
  const o = objectAt(v, key);
  switch (o.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = o.type;
      return (s) => s.normalize(form);
    }
    case 'Sequence': {
      const list = o.normalizers;
      if (!Array.isArray(list)) throw new TokenizerFormatError(`${key}.normalizers`, 'must be a list');
      const steps = list.map((n, i) => readNormalizer(n, `${key}.normalizers[${i}]`)).filter((n): n is Normalize => n !== null);
      return (s) => steps.reduce((acc, f) => f(acc), s);
    }
    default:
      return unsupportedType(key, o.type, 'NFC, NFD, NFKC, NFKD, Sequence');
  }
}

/** One pre-tokenizer step: pieces in, finer pieces out. */
export type PreTokenize = (pieces: string[]) => string[];

export interface PreTokenizer {
  steps: PreTokenize[];
  /** Whether the text is byte-level encoded: this engine requires a ByteLevel step. */
  byteLevel: boolean;
}

/** `pre_tokenizer`: ByteLevel (GPT-2, RoBERTa), or Split with the model's regex then ByteLevel without it (Llama-3, Qwen2). */
export function readPreTokenizer(v: Json, key = 'pre_tokenizer'): PreTokenizer {
  if (v === null) throw new TokenizerFormatError(key, 'null is not supported: a byte-level BPE needs a ByteLevel pre-tokenizer');
  const o = objectAt(v, key);
  switch (o.type) {
    case 'ByteLevel': {
      const addPrefixSpace = boolAt(o, 'add_prefix_space', key, false);
      const re = boolAt(o, 'use_regex', key, true) ? compilePattern(GPT2_PATTERN, key) : null;
      const step: PreTokenize = (pieces) => {
        const out: string[] = [];
        for (let p of pieces) {
          if (addPrefixSpace && !p.startsWith(' ')) p = ` ${p}`;
          if (re === null) out.push(p);
          else splitOn(p, re, 'Isolated', out);
        }
        return out;
      };
      return { steps: [step], byteLevel: true };
    }
    case 'Split': {
      const pattern = objectAt(o.pattern, `${key}.pattern`);
      const re =
        typeof pattern.Regex === 'string'
          ? compilePattern(pattern.Regex, `${key}.pattern.Regex`)
          : typeof pattern.String === 'string'
            ? literalPattern(pattern.String)
            : (() => {
                throw new TokenizerFormatError(`${key}.pattern`, 'must be {"Regex": ...} or {"String": ...}');
              })();
      const behavior = o.behavior;
      if (behavior !== 'Isolated' && behavior !== 'Removed')
        throw new TokenizerFormatError(`${key}.behavior`, `${JSON.stringify(behavior)} is not supported (supported: Isolated, Removed)`);
      if (o.invert === true) throw new TokenizerFormatError(`${key}.invert`, 'true is not supported');
      const step: PreTokenize = (pieces) => {
        const out: string[] = [];
        for (const p of pieces) splitOn(p, re, behavior as SplitBehavior, out);
        return out;
      };
      return { steps: [step], byteLevel: false };
    }
    case 'Sequence': {
      const list = o.pretokenizers;
      if (!Array.isArray(list)) throw new TokenizerFormatError(`${key}.pretokenizers`, 'must be a list');
      const parts = list.map((p, i) => readPreTokenizer(p, `${key}.pretokenizers[${i}]`));
      return { steps: parts.flatMap((p) => p.steps), byteLevel: parts.some((p) => p.byteLevel) };
    }
    default:
      return unsupportedType(key, o.type, 'ByteLevel, Split, Sequence');
  }
}

export type PostProcess = (ids: number[]) => number[];

/** `post_processor`: what `add_special_tokens` wraps around one sequence (BOS for Llama-3, <s>...</s> for RoBERTa). */
export function readPostProcessor(v: Json, key = 'post_processor'): PostProcess | null {
  if (v === null) return null;
  const o = objectAt(v, key);
  switch (o.type) {
    case 'ByteLevel':
      return null; // only adjusts offsets, which this tokenizer does not report
    case 'RobertaProcessing':
    case 'BertProcessing': {
      const id = (field: string): number => {
        const pair = o[field];
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[1] !== 'number')
          throw new TokenizerFormatError(`${key}.${field}`, 'must be [token, id]');
        return pair[1];
      };
      const cls = id('cls');
      const sep = id('sep');
      return (ids) => [cls, ...ids, sep];
    }
    case 'TemplateProcessing': {
      const single = o.single;
      if (!Array.isArray(single)) throw new TokenizerFormatError(`${key}.single`, 'must be a list');
      const specials = objectAt(o.special_tokens ?? {}, `${key}.special_tokens`);
      const parts = single.map((item, i): number[] | 'A' => {
        const k = `${key}.single[${i}]`;
        const it = objectAt(item, k);
        if (isObject(it.Sequence)) return 'A';
        if (isObject(it.SpecialToken)) {
          const name = it.SpecialToken.id;
          const entry = typeof name === 'string' ? specials[name] : undefined;
          const ids = isObject(entry) ? entry.ids : undefined;
          if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'number'))
            throw new TokenizerFormatError(`${k}.SpecialToken.id`, `${JSON.stringify(name)} has no ids in ${key}.special_tokens`);
          return ids as number[];
        }
        throw new TokenizerFormatError(k, 'must be {"Sequence": ...} or {"SpecialToken": ...}');
      });
      return (ids) => parts.flatMap((p) => (p === 'A' ? ids : p));
    }
    case 'Sequence': {
      const list = o.processors;
      if (!Array.isArray(list)) throw new TokenizerFormatError(`${key}.processors`, 'must be a list');
      const steps = list.map((p, i) => readPostProcessor(p, `${key}.processors[${i}]`)).filter((p): p is PostProcess => p !== null);
      return steps.length === 0 ? null : (ids) => steps.reduce((acc, f) => f(acc), ids);
    }
    default:
      return unsupportedType(key, o.type, 'ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence');
  }
}

/** `decoder`: must turn byte-level characters back into bytes, i.e. be ByteLevel (alone or the only step of a Sequence). */
export function checkDecoder(v: Json, key = 'decoder'): void {
  if (v === null) throw new TokenizerFormatError(key, 'null is not supported: a byte-level BPE needs the ByteLevel decoder');
  const o = objectAt(v, key);
  if (o.type === 'ByteLevel') return;
  if (o.type === 'Sequence' && Array.isArray(o.decoders) && o.decoders.length > 0) {
    for (let i = 0; i < o.decoders.length; i++) checkDecoder(o.decoders[i], `${key}.decoders[${i}]`);
    return;
  }
  unsupportedType(key, o.type, 'ByteLevel');
}
