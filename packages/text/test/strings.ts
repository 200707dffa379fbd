/** Texts that stress a byte-level tokenizer: unicode of every width, whitespace runs, contractions, code, specials. */
export const TRICKY: readonly string[] = [
  'Hello world',
  'Hello, world!',
  '',
  ' ',
  '   ',
  '\n',
  '\n\n\n',
  '\t\t x',
  'a  b   c    d     e',
  'trailing spaces   ',
  '   leading spaces',
  'line one\nline two\r\nline three\n\n  indented\n',
  "I'm sure you're right, it's what we'd've done; they'll see. I'M SURE YOU'RE",
  'naïve café résumé Straße Ångström',
  '日本語のテキストと中文文本，还有한국어 텍스트。',
  'Здравствуй, мир! Γειά σου Κόσμε! مرحبا بالعالم שלום עולם',
  'emoji 🎉👍🏽👨‍👩‍👧‍👦🏳️‍🌈 and flags 🇯🇵🇫🇷',
  'math ∑_{i=1}^{n} x_i² ≤ ∞ ≠ π ≈ 3.14159',
  '1234567890 12 345 6789 3.14 -42 1e-9 0x1F',
  'function f(x) {\n    return x * 2; // doubles\n}\n',
  'def f(x):\n\treturn {"a": [1, 2, 3]}\n',
  'Rule: add red, subtract blue\nCards:\nRED 3\nBLUE 7\nAnswer: -4',
  'zero\u200bwidth\u00a0nbsp\u3000ideographic space',
  'combining e\u0301 vs \u00e9 and \u0915\u094d\u0937 (Devanagari conjunct)',
  '\u{1F600}\u{1F601}\u{10FFFF}\u{E000} astral and private use',
  '!!!???...,,,;;;:::---___===+++',
  'x'.repeat(300),
  `${' '.repeat(40)}a${'\n'.repeat(10)}b${'\t'.repeat(7)}`,
];

/** Deterministic pseudo-random strings drawn from several scripts, spaces and punctuation. */
export function randomTexts(count: number, seed: number): string[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const ranges: [number, number][] = [
    [0x20, 0x7e],
    [0x20, 0x7e],
    [0x20, 0x7e],
    [0x09, 0x0d],
    [0xa0, 0x17f],
    [0x370, 0x3ff],
    [0x400, 0x4ff],
    [0x600, 0x6ff],
    [0x3040, 0x30ff],
    [0x4e00, 0x4fff],
    [0xac00, 0xacff],
    [0x1f300, 0x1f64f],
    [0x300, 0x36f],
  ];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = 1 + Math.floor(next() * 60);
    let t = '';
    for (let k = 0; k < len; k++) {
      const [lo, hi] = ranges[Math.floor(next() * ranges.length)];
      t += String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
    }
    out.push(t);
  }
  return out;
}
