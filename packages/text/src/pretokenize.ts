/**
 * Pre-tokenization: the regular expression that cuts text into pieces before BPE, so merges never
 * cross a word, number or whitespace boundary. Hugging Face files carry these patterns in
 * Oniguruma syntax; the few constructs real tokenizer files use that JavaScript lacks are
 * translated here.
 */
import { TokenizerFormatError } from './errors';

/** GPT-2's pattern (encoder.py), which ByteLevel applies when `use_regex` is true. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Llama-3's pattern (cl100k_base's), as its tokenizer.json gives it in a Split pre-tokenizer. */
export const LLAMA3_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Unicode's White_Space, which `\s` means in the Python `regex` module (GPT-2's encoder.py), in Rust
 * (tiktoken) and in Oniguruma (Hugging Face). JavaScript's `\s` differs in two characters: it leaves
 * out U+0085 (NEXT LINE) and adds U+FEFF (the byte-order mark, a format character). Written as a
 * class body so it fits inside `[...]` too.
 */
const WHITE_SPACE = '\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/**
 * Rewrites a tokenizer file's pattern for JavaScript: `\s` / `\S` as Unicode White_Space (see above;
 * `\S` inside a character class is left as JavaScript's), and scoped case-insensitive groups
 * `(?i:...)` (Llama-3's contractions) as plain groups with both cases spelled out, because Node 20's
 * V8 predates regexp modifiers.
 */
export function toJavaScriptPattern(pattern: string): string {
  let out = '';
  let inClass = false;
  /** Depth of groups opened inside the innermost `(?i:`; -1 when not inside one. */
  let ciDepth = -1;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const e = pattern[i + 1];
      i++;
      if (e === 's') out += inClass ? WHITE_SPACE : `[${WHITE_SPACE}]`;
      else if (e === 'S' && !inClass) out += `[^${WHITE_SPACE}]`;
      else {
        out += c + (e ?? '');
        // \p{L}, \u{1F600}, \u0085, \x85: copy the argument untouched (never case-expanded).
        const arg = 'pPux'.includes(e) ? /^(\{[^}]*\}|[0-9a-fA-F]{1,4})/.exec(pattern.slice(i + 1)) : null;
        if (arg !== null) {
          out += arg[0];
          i += arg[0].length;
        }
      }
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      const both = ciDepth >= 0 && c.toLowerCase() !== c.toUpperCase() ? c.toLowerCase() + c.toUpperCase() : c;
      out += both;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A leading ^ or ] belongs to the class syntax, not its letters.
      if (pattern[i + 1] === '^') out += pattern[++i];
      continue;
    }
    if (pattern.startsWith('(?i:', i)) {
      if (ciDepth >= 0) ciDepth++;
      else ciDepth = 0;
      out += '(?:';
      i += 3;
      continue;
    }
    if (c === '(') {
      if (ciDepth >= 0) ciDepth++;
      out += c;
      continue;
    }
    if (c === ')') {
      if (ciDepth >= 0) ciDepth--;
      out += c;
      continue;
    }
    const lower = c.toLowerCase();
    const upper = c.toUpperCase();
    out += ciDepth >= 0 && lower !== upper && lower.length === 1 && upper.length === 1 ? `[${lower}${upper}]` : c;
  }
  return out;
}

/** Compiles a tokenizer file's split pattern for JavaScript; `key` names the field in errors. */
export function compilePattern(pattern: string, key: string): RegExp {
  try {
    return new RegExp(toJavaScriptPattern(pattern), 'gu');
  } catch (e) {
    throw new TokenizerFormatError(key, `cannot compile the pattern as a JavaScript regular expression (${(e as Error).message})`);
  }
}

const escapeRegex = (s: string) => s.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&');

/** A literal split string (`pattern: {String: ...}`) as a regular expression. */
export function literalPattern(s: string): RegExp {
  return new RegExp(escapeRegex(s), 'gu');
}

export type SplitBehavior = 'Isolated' | 'Removed';

/**
 * Splits text on a pattern. `Isolated` keeps every match and every stretch between matches as its own
 * piece; `Removed` keeps only the stretches between matches.
 */
export function splitOn(text: string, re: RegExp, behavior: SplitBehavior, out: string[]): void {
  let last = 0;
  re.lastIndex = 0;
  for (;;) {
    const m = re.exec(text);
    if (m === null) break;
    if (m[0].length === 0) {
      // An empty match cuts nothing; step past it (a whole code point, the regexp being unicode).
      re.lastIndex += (text.codePointAt(re.lastIndex) ?? 0) > 0xffff ? 2 : 1;
      if (re.lastIndex > text.length) break;
      continue;
    }
    if (m.index > last) out.push(text.slice(last, m.index));
    if (behavior === 'Isolated') out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
}
