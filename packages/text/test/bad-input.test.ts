import { BYTE_TO_CHAR, checkUtf8, gpt2Tokenizer, InvalidUtf8Error, TokenIdError, TokenizerFormatError } from '@rlmesh/text';
import { describe, expect, it } from 'vitest';

const tok = gpt2Tokenizer();
const bytes = (...b: number[]) => new Uint8Array(b);

function utf8Error(input: Uint8Array): InvalidUtf8Error {
  try {
    tok.encodeBytes(input);
  } catch (e) {
    if (e instanceof InvalidUtf8Error) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('bad input to the tokenizer', () => {
  it('encodes valid UTF-8 bytes like the text they spell', () => {
    const s = 'héllo 世界 🎉';
    expect(tok.encodeBytes(new TextEncoder().encode(s))).toEqual(tok.encode(s));
    expect(tok.decodeBytes(tok.encode(s))).toEqual(new TextEncoder().encode(s));
  });

  const cases: [string, Uint8Array, number, RegExp][] = [
    ['a stray continuation byte', bytes(0x61, 0x62, 0x63, 0x80, 0x64), 3, /unexpected continuation byte 0x80/],
    ['a sequence cut off by the end', bytes(0x61, 0xe4, 0xb8), 1, /cut off by the end of input/],
    ['an overlong encoding of "/"', bytes(0xc0, 0xaf), 0, /0xc0 never starts/],
    ['an overlong three-byte form', bytes(0x20, 0xe0, 0x80, 0xaf), 2, /0x80 cannot follow 0xe0/],
    ['a UTF-16 surrogate', bytes(0xed, 0xa0, 0x80), 1, /0xa0 cannot follow 0xed/],
    ['a code point above U+10FFFF', bytes(0xf4, 0x90, 0x80, 0x80), 1, /0x90 cannot follow 0xf4/],
    ['a byte that never occurs', bytes(0x41, 0xff), 1, /0xff never starts/],
    ['an ASCII byte inside a sequence', bytes(0xe2, 0x82, 0x41), 2, /0x41 cannot follow 0xe2/],
  ];
  for (const [what, input, offset, reason] of cases) {
    it(`rejects ${what}, naming the offset`, () => {
      const e = utf8Error(input);
      expect(e.offset).toBe(offset);
      expect(e.message).toMatch(new RegExp(`^invalid UTF-8 at byte offset ${offset}: `));
      expect(e.message).toMatch(reason);
      // The validator agrees with the platform's strict decoder on what is invalid.
      expect(() => new TextDecoder('utf-8', { fatal: true }).decode(input)).toThrow();
    });
  }

  it('accepts every valid boundary code point', () => {
    for (const cp of [0, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff]) {
      const b = new TextEncoder().encode(String.fromCodePoint(cp));
      expect(() => checkUtf8(b), cp.toString(16)).not.toThrow();
      expect(tok.decode(tok.encodeBytes(b))).toBe(String.fromCodePoint(cp));
    }
  });

  it('rejects text with an unpaired surrogate, which has no UTF-8 form', () => {
    expect(() => tok.encode('ok \ud800 no')).toThrow(TokenizerFormatError);
    expect(() => tok.encode('ok \ud800 no')).toThrow(/^text: has an unpaired UTF-16 surrogate at index 3/);
    expect(tok.encode('😀')).toEqual(tok.encodeBytes(bytes(0xf0, 0x9f, 0x98, 0x80)));
  });

  it('rejects ids outside the vocabulary in decode, naming the position', () => {
    for (const [ids, index, id] of [
      [[15496, 50257], 1, 50257],
      [[-1], 0, -1],
      [[995, 995, 1.5], 2, 1.5],
      [[Number.NaN], 0, Number.NaN],
    ] as [number[], number, number][]) {
      let err: unknown;
      try {
        tok.decode(ids);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TokenIdError);
      expect((err as TokenIdError).index).toBe(index);
      expect((err as Error).message).toBe(`ids[${index}]: ${id} is not a token id (the vocabulary holds ids 0..50256)`);
    }
    expect(tok.decode([50256])).toBe('<|endoftext|>');
  });

  it('keeps a leading byte-order mark through encode and decode', () => {
    const s = '\ufeffwith BOM';
    expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.decode(tok.encodeBytes(new TextEncoder().encode(s)))).toBe(s);
  });

  it('decodes ids that cut a character in half to U+FFFD, and their bytes exactly', () => {
    const ids = tok.encode('🎉');
    expect(ids.length).toBeGreaterThan(1);
    expect(tok.decode(ids.slice(0, 1))).toContain('\ufffd');
    const whole = [...tok.decodeBytes(ids.slice(0, 1)), ...tok.decodeBytes(ids.slice(1))];
    expect(new TextDecoder().decode(new Uint8Array(whole))).toBe('🎉');
  });
});

describe('decodeCompletion', () => {
  // One token per byte, so a completion can stop anywhere inside a character.
  const byteIds = (b: Uint8Array) => Array.from(b, (x) => tok.tokenToId(BYTE_TO_CHAR[x]) as number);
  const utf8 = (s: string) => new TextEncoder().encode(s);

  it('decodes whole characters as decode does, leaving special tokens out', () => {
    const ids = [...tok.encode(' 17 日本 🎉'), tok.eosId as number];
    expect(tok.decodeCompletion(ids)).toBe(' 17 日本 🎉');
  });

  it('drops a character cut off by the end of generation, for each length it can be cut at', () => {
    for (const ch of ['é', '日', '🎉']) {
      const whole = utf8(ch);
      for (let keep = 1; keep < whole.length; keep++) {
        const cut = byteIds(new Uint8Array([...utf8(' 5'), ...whole.subarray(0, keep)]));
        expect(tok.decodeCompletion(cut), `${ch} cut after ${keep}`).toBe(' 5');
        // decode puts U+FFFD where the cut character was: the mark a verifier must never see.
        expect(tok.decode(cut)).toBe(' 5\uFFFD');
      }
    }
  });

  it('refuses bytes that are not UTF-8 before the end, naming the offset', () => {
    expect(() => tok.decodeCompletion(byteIds(bytes(0x20, 0x80, 0x35)))).toThrow(
      /^invalid UTF-8 at byte offset 1: unexpected continuation/,
    );
    expect(() => tok.decodeCompletion(byteIds(bytes(0x20, 0xe4, 0x35, 0x35)))).toThrow(
      /^invalid UTF-8 at byte offset 2: byte 0x35 cannot follow 0xe4/,
    );
    // A lone continuation byte at the very end is not a cut-off character either.
    expect(() => tok.decodeCompletion(byteIds(bytes(0x35, 0xbf)))).toThrow(InvalidUtf8Error);
  });
});
