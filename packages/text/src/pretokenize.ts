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
 * Rewrites scoped case-insensitive groups `(?i:...)` (Llama-3's contractions) into plain groups with
 * both cases spelled out, because Node 20's V8 predates regexp modifiers.
 */
function expandCaseInsensitiveGroups(pattern: string): string {
  let out = '';
  let i = 0;
  while (i < pattern.length) {
    if (pattern.startsWith('(?i:', i)) {
      out += '(?:';
      i += 4;
      let depth = 1;
      let inClass = false;
      while (i < pattern.length && depth > 0) {
        const c = pattern[i];
        if (c === '\\') {
          out += pattern.slice(i, i + 2);
          i += 2;
          continue;
        }
        if (inClass) {
          if (c === ']') inClass = false;
          const lower = c.toLowerCase();
          const upper = c.toUpperCase();
          out += c !== lower ? c + lower : c !== upper ? c + upper : c;
        } else if (c === '[') {
          inClass = true;
          out += c;
        } else if (c === '(') {
          depth++;
          out += c;
        } else if (c === ')') {
          depth--;
          out += c;
        } else {
          const lower = c.toLowerCase();
          const upper = c.toUpperCase();
          out += lower !== upper && lower.length === 1 && upper.length === 1 ? `[${lower}${upper}]` : c;
        }
        i++;
      }
    } else if (pattern[i] === '\\') {
      out += pattern.slice(i, i + 2);
      i += 2;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

/** Compiles a tokenizer file's split pattern for JavaScript; `key` names the field in errors. */
export function compilePattern(pattern: string, key: string): RegExp {
  try {
    return new RegExp(expandCaseInsensitiveGroups(pattern), 'gu');
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
