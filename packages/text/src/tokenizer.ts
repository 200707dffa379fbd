/**
 * A byte-level BPE tokenizer as Hugging Face's `tokenizers` runs one: added tokens matched in the raw
 * text first (never split, never merged), the normalizer, the pre-tokenizer's pieces, BPE on each
 * piece's UTF-8 bytes, and the post-processor when special tokens are wanted. Built only from a
 * `tokenizer.json` object, so GPT-2, a trained tokenizer and a downloaded checkpoint run the same code
 * and save to the same file.
 */
import type { BpeModel } from './bpe';
import { checkUtf8 } from './bytes';
import { TokenIdError, TokenizerFormatError } from './errors';
import {
  type AddedTokenJson,
  checkDecoder,
  type Normalize,
  type PostProcess,
  type PreTokenize,
  readModel,
  readNormalizer,
  readPostProcessor,
  readPreTokenizer,
  readTokenizerJson,
  type TokenizerJson,
} from './format';

/** Which added tokens play the roles a trainer and a generator need; `tokenizer_config.json` names them. */
export interface SpecialTokenRoles {
  bos?: string | null;
  eos?: string | null;
  pad?: string | null;
  unk?: string | null;
}

export interface EncodeOptions {
  /** Run the post-processor (Llama-3's BOS, RoBERTa's <s>...</s>); default true, as in Hugging Face. */
  addSpecialTokens?: boolean;
  /** Treat special tokens' text as ordinary text (encoded by BPE) instead of matching it; default false. */
  splitSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave special tokens (BOS, EOS, PAD, ...) out of the text; default false. */
  skipSpecialTokens?: boolean;
}

// ignoreBOM keeps a leading U+FEFF as text: by default TextDecoder drops it, and round trips would lose it.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8Encoder = new TextEncoder();
/** With the `u` flag a surrogate class matches only unpaired surrogates, which UTF-8 cannot encode. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const escapeRegex = (s: string) => s.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&');
const WORD_CHAR = /[\p{L}\p{N}_]/u;

/**
 * How many bytes at the end of `b` start a UTF-8 sequence that the end cuts off (0 to 3): a lead
 * byte among the last three whose sequence needs more bytes than remain. What is not a prefix of a
 * sequence is left for checkUtf8 to refuse.
 */
function partialTail(b: Uint8Array): number {
  for (let k = 1; k <= Math.min(3, b.length); k++) {
    const lead = b[b.length - k];
    if (lead >= 0x80 && lead <= 0xbf) continue;
    const need = lead >= 0xf0 && lead <= 0xf4 ? 4 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xc2 && lead <= 0xdf ? 2 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

export class Tokenizer {
  readonly model: BpeModel;
  readonly addedTokens: readonly AddedTokenJson[];
  /** One past the largest id, model vocabulary and added tokens together. */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  readonly roles: Readonly<SpecialTokenRoles>;
  private readonly json: TokenizerJson;
  private readonly normalize: Normalize | null;
  private readonly preTokenize: readonly PreTokenize[];
  private readonly postProcess: PostProcess | null;
  private readonly addedById = new Map<number, AddedTokenJson>();
  private readonly addedByContent = new Map<string, AddedTokenJson>();
  private readonly addedBytes = new Map<number, Uint8Array>();
  /** Added-token matchers: all of them, and the non-special ones only (for `splitSpecialTokens`). */
  private readonly matchAll: RegExp | null;
  private readonly matchNonSpecial: RegExp | null;

  private constructor(json: TokenizerJson, roles: SpecialTokenRoles, model?: BpeModel) {
    this.json = json;
    this.model = model ?? readModel(json.model);
    this.normalize = readNormalizer(json.normalizer);
    const pre = readPreTokenizer(json.pre_tokenizer);
    if (!pre.byteLevel) throw new TokenizerFormatError('pre_tokenizer', 'must include a ByteLevel step: only byte-level BPE is supported');
    this.preTokenize = pre.steps;
    this.postProcess = readPostProcessor(json.post_processor);
    checkDecoder(json.decoder);
    this.addedTokens = json.added_tokens;
    let size = this.model.size;
    for (const t of json.added_tokens) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
      this.addedBytes.set(t.id, utf8Encoder.encode(t.content));
      size = Math.max(size, t.id + 1);
    }
    this.vocabSize = size;
    this.matchAll = matcher(json.added_tokens);
    this.matchNonSpecial = matcher(json.added_tokens.filter((t) => !t.special));
    this.roles = { ...roles };
    const roleId = (role: keyof SpecialTokenRoles): number | null => {
      const content = roles[role];
      if (content === undefined || content === null) return null;
      const id = this.tokenToId(content);
      if (id === undefined) throw new TokenizerFormatError(`${role}_token`, `${JSON.stringify(content)} is not a token of this tokenizer`);
      return id;
    };
    this.bosId = roleId('bos');
    this.eosId = roleId('eos');
    this.padId = roleId('pad');
    this.unkId = roleId('unk');
  }

  /** Builds a tokenizer from a parsed `tokenizer.json`; an unsupported component is a TokenizerFormatError naming its key. */
  static fromJSON(json: unknown, roles: SpecialTokenRoles = {}): Tokenizer {
    return new Tokenizer(readTokenizerJson(json), roles);
  }

  /**
   * The same tokenizer with other special-token roles, e.g. GPT-2 with PAD = EOS for batched training
   * (GPT-2 has no pad token of its own). Shares the compiled vocabulary, so it is cheap.
   */
  withRoles(roles: SpecialTokenRoles): Tokenizer {
    return new Tokenizer(this.json, { ...this.roles, ...roles }, this.model);
  }

  /** The `tokenizer.json` object (Hugging Face's layout) this tokenizer was built from. */
  toJSON(): TokenizerJson {
    return this.json;
  }

  /** Id of a token: an added token's content, or a vocabulary entry in byte-level characters. */
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token);
  }

  /** The token string of an id (byte-level characters for vocabulary entries). */
  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.token(id);
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const bad = LONE_SURROGATE.exec(text);
    if (bad !== null)
      throw new TokenizerFormatError('text', `has an unpaired UTF-16 surrogate at index ${bad.index}, which UTF-8 cannot encode`);
    const ids: number[] = [];
    const re = opts.splitSpecialTokens ? this.matchNonSpecial : this.matchAll;
    if (re === null) this.encodeText(text, ids);
    else {
      let last = 0;
      for (const [start, end, id] of this.findAdded(text, re)) {
        if (start > last) this.encodeText(text.slice(last, start), ids);
        ids.push(id);
        last = end;
      }
      if (last < text.length) this.encodeText(text.slice(last), ids);
    }
    return opts.addSpecialTokens !== false && this.postProcess !== null ? this.postProcess(ids) : ids;
  }

  /** Encodes UTF-8 bytes; invalid UTF-8 is an InvalidUtf8Error naming the byte offset. */
  encodeBytes(bytes: Uint8Array, opts: EncodeOptions = {}): number[] {
    checkUtf8(bytes);
    return this.encode(utf8Decoder.decode(bytes), opts);
  }

  /** The bytes the ids stand for; an id outside the vocabulary is a TokenIdError naming its position. */
  decodeBytes(ids: ArrayLike<number>, opts: DecodeOptions = {}): Uint8Array {
    const parts: Uint8Array[] = [];
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const added = this.addedBytes.get(id);
      let bytes: Uint8Array | undefined;
      if (added !== undefined) {
        if (opts.skipSpecialTokens && this.addedById.get(id)?.special) continue;
        bytes = added;
      } else if (Number.isInteger(id) && id >= 0) bytes = this.model.tokenBytes(id);
      if (bytes === undefined) throw new TokenIdError(i, id, this.vocabSize);
      parts.push(bytes);
      length += bytes.length;
    }
    const out = new Uint8Array(length);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /**
   * The text the ids stand for. A sequence cut inside a multi-byte character decodes that character
   * as U+FFFD, as Hugging Face's decoder does; decodeBytes gives the exact bytes.
   */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return utf8Decoder.decode(this.decodeBytes(ids, opts));
  }

  /**
   * A generated completion as text for a verifier: special tokens left out, a trailing partial
   * UTF-8 character dropped (generation stopped inside it, so it never was a character), and an
   * InvalidUtf8Error naming the byte offset for bytes that are not UTF-8 anywhere else. Unlike
   * decode, it never turns bytes into U+FFFD, which a verifier would read as part of the answer.
   */
  decodeCompletion(ids: ArrayLike<number>): string {
    const bytes = this.decodeBytes(ids, { skipSpecialTokens: true });
    const whole = bytes.subarray(0, bytes.length - partialTail(bytes));
    checkUtf8(whole);
    return utf8Decoder.decode(whole);
  }

  private encodeText(text: string, ids: number[]): void {
    let pieces = [this.normalize === null ? text : this.normalize(text)];
    for (const step of this.preTokenize) pieces = step(pieces);
    for (const p of pieces) {
      const piece = this.model.encodePiece(p);
      for (let i = 0; i < piece.length; i++) ids.push(piece[i]);
    }
  }

  /** Added-token matches as [start, end, id], with lstrip/rstrip absorbing neighbouring whitespace and single_word enforced. */
  private *findAdded(text: string, re: RegExp): Generator<[number, number, number]> {
    re.lastIndex = 0;
    let floor = 0;
    for (;;) {
      const m = re.exec(text);
      if (m === null) return;
      const tok = this.addedByContent.get(m[0]) as AddedTokenJson;
      let start = m.index;
      let end = start + m[0].length;
      if (tok.single_word && ((start > 0 && WORD_CHAR.test(text[start - 1])) || (end < text.length && WORD_CHAR.test(text[end])))) {
        re.lastIndex = start + 1;
        continue;
      }
      if (tok.lstrip) while (start > floor && /\s/u.test(text[start - 1])) start--;
      if (tok.rstrip) while (end < text.length && /\s/u.test(text[end])) end++;
      re.lastIndex = end;
      floor = end;
      yield [start, end, tok.id];
    }
  }
}

/** Leftmost-longest matching of added tokens: alternatives sorted longest first. */
function matcher(tokens: readonly AddedTokenJson[]): RegExp | null {
  if (tokens.length === 0) return null;
  const alts = [...new Set(tokens.map((t) => t.content))].sort((a, b) => b.length - a.length).map(escapeRegex);
  return new RegExp(alts.join('|'), 'gu');
}
