import { compilePattern, GPT2_PATTERN, gpt2Tokenizer, LLAMA3_PATTERN, splitOn, toJavaScriptPattern } from '@rlmesh/text';
import { describe, expect, it } from 'vitest';

const split = (re: RegExp, text: string) => {
  const out: string[] = [];
  splitOn(text, re, 'Isolated', out);
  return out;
};

describe('split patterns', () => {
  const gpt2 = compilePattern(GPT2_PATTERN, 'pattern');

  it("cuts GPT-2's pieces: contractions, words with their leading space, numbers, punctuation, whitespace runs", () => {
    // A whitespace run gives its last character to the word after it only when that is a space; before
    // "ok" the run of newlines ends in a piece of its own.
    expect(split(gpt2, "I'm here,  at 42!\n\nok \n\n")).toEqual([
      'I',
      "'m",
      ' here',
      ',',
      ' ',
      ' at',
      ' 42',
      '!',
      '\n',
      '\n',
      'ok',
      ' \n\n',
    ]);
  });

  it("treats U+0085 as whitespace and U+FEFF as not, as Python, Rust and Oniguruma do (JavaScript's own \\s is the other way round)", () => {
    // With Unicode White_Space: the run of two NEXT LINEs before a letter leaves its last one as a piece of its own.
    expect(split(gpt2, 'a\u0085\u0085b')).toEqual(['a', '\u0085', '\u0085', 'b']);
    // The byte-order mark is a format character: it joins the punctuation after the space.
    expect(split(gpt2, 'x \ufeff!')).toEqual(['x', ' \ufeff!']);
    // JavaScript's \s gets both wrong, which is what the translation is for.
    const native = new RegExp(GPT2_PATTERN, 'gu');
    expect(split(native, 'a\u0085\u0085b')).toEqual(['a', '\u0085\u0085', 'b']);
    expect(split(native, 'x \ufeff!')).toEqual(['x', ' ', '\ufeff', '!']);
    const tok = gpt2Tokenizer();
    expect(tok.decode(tok.encode('x \ufeff!\u0085'))).toBe('x \ufeff!\u0085');
  });

  it("runs Llama-3's case-insensitive contractions and 1-3 digit groups", () => {
    const llama = compilePattern(LLAMA3_PATTERN, 'pattern');
    expect(split(llama, "IT'S we'LL 1234567")).toEqual(['IT', "'S", ' we', "'LL", ' ', '123', '456', '7']);
    expect(toJavaScriptPattern('(?i:ab\\p{Lu}[xy]\\u00e9)c')).toBe('(?:[aA][bB]\\p{Lu}[xXyY]\\u00e9)c');
  });

  it('names the key of a pattern JavaScript cannot compile', () => {
    expect(() => compilePattern('(?<=a', 'pre_tokenizer.pattern.Regex')).toThrow(
      /^pre_tokenizer\.pattern\.Regex: cannot compile the pattern/,
    );
  });
});
