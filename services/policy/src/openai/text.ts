/**
 * A completion's tokens as the text a chat caller sees, whole or streamed. The text is the tokens
 * decoded without special tokens (EOS and the like) and cut before the first stop string, which
 * OpenAI leaves out of the content (the generator keeps it in, since it stops only once the text
 * holds it). Streaming shows only text that cannot change: a trailing U+FFFD may be a character cut
 * between tokens, and a tail that could begin a stop string may yet turn into one, so both wait for
 * the next token. The pieces streamed therefore add up to exactly the whole text.
 */
import type { Tokenizer } from '@rlmesh/text';

export class CompletionText {
  private readonly tokens: number[] = [];
  private shown = 0;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly stop: readonly string[],
  ) {}

  /** The whole text of `tokens`. */
  static of(tokenizer: Tokenizer, stop: readonly string[], tokens: readonly number[]): string {
    const t = new CompletionText(tokenizer, stop);
    t.tokens.push(...tokens);
    return t.text(true);
  }

  /** Adds a token; returns the text that can now be shown and was not before ('' if none). */
  push(token: number): string {
    this.tokens.push(token);
    return this.take(this.text(false));
  }

  /** The rest of the text once the completion has ended. */
  finish(): string {
    return this.take(this.text(true));
  }

  private take(text: string): string {
    if (text.length <= this.shown) return '';
    const piece = text.slice(this.shown);
    this.shown = text.length;
    return piece;
  }

  private text(final: boolean): string {
    const all = this.tokenizer.decode(this.tokens, { skipSpecialTokens: true });
    let cut = -1;
    for (const s of this.stop) {
      const at = all.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) return all.slice(0, cut);
    if (final) return all;
    let end = all.length;
    while (end > 0 && all[end - 1] === '\uFFFD') end--;
    return all.slice(0, end - heldForStop(all.slice(0, end), this.stop));
  }
}

/** The length of the longest tail of `text` that is the start of a stop string. */
function heldForStop(text: string, stop: readonly string[]): number {
  let held = 0;
  for (const s of stop)
    for (let k = Math.min(s.length - 1, text.length); k > held; k--)
      if (text.endsWith(s.slice(0, k))) {
        held = k;
        break;
      }
  return held;
}
