/**
 * Prompts in, completion texts out, for anything that judges what a GPT-2 policy writes: SFT's exact
 * match and the evaluator's text episodes both call this, so a checkpoint scores the same in both.
 *
 * A prompt is encoded as SFT's data encodes it (encodePrompt), so the model sees at evaluation the
 * tokens it was trained on. Every row is decoded by Gpt2Generator's KV-cache loop until EOS or its
 * max new tokens (capped by the room the context leaves); the EOS is dropped and the rest decoded
 * strictly (Tokenizer.decodeCompletion), so a completion is either text a verifier can read or an
 * error saying why it is not (bytes that are not UTF-8).
 */
import type { Tokenizer } from '@rlmesh/text';
import type { Gpt2Generator, StopReason } from './gpt2-generate';

/** Prompt text to ids: text that looks like a special token stays text, as in SFT's datasets. */
export function encodePrompt(tok: Tokenizer, text: string): number[] {
  return tok.encode(text, { splitSpecialTokens: true });
}

export interface CompletionRow {
  prompt: readonly number[];
  /** Seeds the row's sampling (unused when greedy). */
  seed?: number;
}

export interface CompleteOptions {
  tokenizer: Tokenizer;
  /** The row stops after this token, which is not part of the text; null: only maxNewTokens stops it. */
  eosId: number | null;
  maxNewTokens: number;
  /** 0: greedy (default); otherwise sampling at this temperature, seeded per row. */
  temperature?: number;
  /** Rows per generate call (one decode loop); default all. */
  batchSize?: number;
}

export interface Completion {
  /** The decoded completion, or null when its bytes are not UTF-8 (then `error` says where). */
  text: string | null;
  error?: string;
  /** New tokens, the EOS included when it ended the row. */
  tokens: number[];
  stopReason: StopReason;
}

/** Completes every row, `batchSize` rows per decode loop; results in the rows' order. */
export async function complete(gen: Gpt2Generator, rows: readonly CompletionRow[], o: CompleteOptions): Promise<Completion[]> {
  const context = gen.model.dims.context;
  const size = o.batchSize && o.batchSize > 0 ? o.batchSize : Math.max(1, rows.length);
  const out: Completion[] = [];
  for (let i = 0; i < rows.length; i += size) {
    const chunk = rows.slice(i, i + size).map((r) => ({
      prompt: r.prompt,
      // The prompt is all that is given; the room left in the context bounds a row's budget.
      maxNewTokens: Math.max(0, Math.min(o.maxNewTokens, context - r.prompt.length)),
      temperature: o.temperature ?? 0,
      seed: r.seed ?? 0,
      ...(o.eosId === null ? {} : { eosTokenId: o.eosId }),
    }));
    for (const r of await gen.generate(chunk)) {
      const ids = r.stopReason === 'eos' ? r.tokens.slice(0, -1) : r.tokens;
      try {
        out.push({ text: o.tokenizer.decodeCompletion(ids), tokens: r.tokens, stopReason: r.stopReason });
      } catch (e) {
        out.push({ text: null, error: (e as Error).message, tokens: r.tokens, stopReason: r.stopReason });
      }
    }
  }
  return out;
}
