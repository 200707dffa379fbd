/**
 * SFT datasets: prompt/completion JSONL (what `rlmesh data cards` writes), tokenised with the run's
 * tokenizer, and batches for the train step.
 *
 * An example is encode(prompt) ++ encode(completion) ++ [EOS]. Prompt and completion are encoded
 * separately, so the boundary between them is a token boundary (no merge spans it) and the loss mask
 * is exact; text in the data that looks like a special token is encoded as text, never as the token.
 * The model learns to emit EOS after the completion (EOS is a completion token), which is how greedy
 * decoding knows where to stop.
 *
 * Too long: with `overflow: refuse` an example of more than max_length tokens fails the dataset with
 * its file and line; with `truncate` its first max_length tokens are kept (Hugging Face TRL's
 * keep_start), so the cut falls in the completion, or the EOS is dropped. An example whose prompt
 * alone fills max_length has no completion token left to learn and is refused in both modes.
 */
import { readFileSync } from 'node:fs';
import { Rng } from '@rlmesh/core';
import type { ReadoutKind } from '@rlmesh/envs';
import type { HostTensor } from '@rlmesh/graph';
import type { Tokenizer } from '@rlmesh/text';
import { encodePrompt } from '../models/text-completion';

/** A bad dataset: names the file, the line and the rule. */
export class SftDataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly rule: string,
  ) {
    super(line > 0 ? `${file}:${line}: ${rule}` : `${file}: ${rule}`);
    this.name = 'SftDataError';
  }
}

export interface SftRecord {
  prompt: string;
  completion: string;
  /** The card game's answer, when the record has one: exact match then goes through its verifier. */
  answer?: string;
  /** The card game's readout kind (rule.readout.kind), for the verifier's format component. */
  readout?: ReadoutKind;
  /** The card game's rule family, when the record names one: exact match is also reported per family. */
  family?: string;
  /** 1-based line in the file. */
  line: number;
}

const READOUT_KINDS: readonly string[] = ['number', 'threshold', 'parity'];

/** Reads prompt/completion JSONL (blank lines skipped); `limit` > 0 keeps the first `limit` records. */
export function readSftJsonl(file: string, limit = 0): SftRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SftDataError(file, 0, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const out: SftRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && (limit === 0 || out.length < limit); i++) {
    const raw = lines[i].trim();
    if (raw === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new SftDataError(file, i + 1, `not JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SftDataError(file, i + 1, 'must be a JSON object');
    const r = v as Record<string, unknown>;
    if (typeof r.prompt !== 'string' || r.prompt === '') throw new SftDataError(file, i + 1, 'prompt: must be a non-empty string');
    if (typeof r.completion !== 'string' || r.completion === '')
      throw new SftDataError(file, i + 1, 'completion: must be a non-empty string');
    const rec: SftRecord = { prompt: r.prompt, completion: r.completion, line: i + 1 };
    if (r.answer !== undefined) {
      if (typeof r.answer !== 'string') throw new SftDataError(file, i + 1, 'answer: must be a string when present');
      rec.answer = r.answer;
      const kind = (r.rule as { readout?: { kind?: unknown } } | undefined)?.readout?.kind;
      if (typeof kind === 'string' && READOUT_KINDS.includes(kind)) rec.readout = kind as ReadoutKind;
    }
    if (typeof r.family === 'string') rec.family = r.family;
    out.push(rec);
  }
  if (out.length === 0) throw new SftDataError(file, 0, 'holds no examples');
  return out;
}

export interface TokenizedExample {
  /** Prompt, completion and EOS token ids (possibly truncated). */
  ids: number[];
  /** Tokens of the prompt: ids[promptLength..] are the completion's (the loss is taken on them). */
  promptLength: number;
  record: SftRecord;
}

export interface TokenizeOptions {
  maxLength: number;
  overflow: 'refuse' | 'truncate';
  eosId: number;
}

export function tokenizeRecords(records: readonly SftRecord[], tok: Tokenizer, file: string, o: TokenizeOptions): TokenizedExample[] {
  return records.map((record) => {
    const prompt = encodePrompt(tok, record.prompt);
    const completion = tok.encode(record.completion, { addSpecialTokens: false, splitSpecialTokens: true });
    let ids = [...prompt, ...completion, o.eosId];
    if (prompt.length >= o.maxLength)
      throw new SftDataError(
        file,
        record.line,
        `prompt has ${prompt.length} tokens, leaving no completion token within data.max_length ${o.maxLength}`,
      );
    if (ids.length > o.maxLength) {
      if (o.overflow === 'refuse')
        throw new SftDataError(
          file,
          record.line,
          `${ids.length} tokens (prompt ${prompt.length} + completion ${completion.length} + EOS) exceed data.max_length ${o.maxLength} (data.overflow: truncate keeps the first ${o.maxLength})`,
        );
      ids = ids.slice(0, o.maxLength);
    }
    return { ids, promptLength: prompt.length, record };
  });
}

/** One micro-batch as the train and eval programs take it. */
export interface SftBatch {
  feeds: {
    input_ids: HostTensor;
    attention_mask: HostTensor;
    labels: HostTensor;
    loss_mask: HostTensor;
  };
  /** Completion tokens whose prediction is scored (the loss mask's sum). */
  tokens: number;
  rows: number;
}

/**
 * Right-padded to the longest row. Position t predicts token t+1, so labels[t] = ids[t+1] and the
 * loss mask is 1 exactly where ids[t+1] is a completion token (EOS included); prompt and padding
 * positions are 0, and padding is also 0 in the attention mask.
 */
export function collate(examples: readonly Pick<TokenizedExample, 'ids' | 'promptLength'>[], padId: number): SftBatch {
  const B = examples.length;
  const T = Math.max(...examples.map((e) => e.ids.length));
  const ids = new BigInt64Array(B * T).fill(BigInt(padId));
  const mask = new BigInt64Array(B * T);
  const labels = new BigInt64Array(B * T);
  const lossMask = new Float32Array(B * T);
  let tokens = 0;
  examples.forEach((e, b) => {
    const row = b * T;
    e.ids.forEach((id, t) => {
      ids[row + t] = BigInt(id);
      mask[row + t] = 1n;
      if (t + 1 < e.ids.length) labels[row + t] = BigInt(e.ids[t + 1]);
    });
    for (let t = e.promptLength - 1; t + 1 < e.ids.length; t++) {
      lossMask[row + t] = 1;
      tokens++;
    }
  });
  return {
    feeds: {
      input_ids: { data: ids, shape: [B, T] },
      attention_mask: { data: mask, shape: [B, T] },
      labels: { data: labels, shape: [B, T] },
      loss_mask: { data: lossMask, shape: [B, T] },
    },
    tokens,
    rows: B,
  };
}

/**
 * The order of the training examples: epoch e visits a permutation drawn from (seed, e) alone, so a
 * resumed run finds the same micro-batch at the same index without carrying generator state. The
 * last micro-batch of an epoch may be short.
 */
export class EpochSampler {
  readonly batchesPerEpoch: number;
  private cached: { epoch: number; order: number[] } | null = null;

  constructor(
    readonly size: number,
    readonly microBatchSize: number,
    readonly seed: number,
  ) {
    this.batchesPerEpoch = Math.ceil(size / microBatchSize);
  }

  /** Indices of the examples in global micro-batch `m` (counting across epochs from 0). */
  microBatch(m: number): number[] {
    const epoch = Math.floor(m / this.batchesPerEpoch);
    const j = m % this.batchesPerEpoch;
    const order = this.order(epoch);
    return order.slice(j * this.microBatchSize, Math.min((j + 1) * this.microBatchSize, this.size));
  }

  private order(epoch: number): number[] {
    if (this.cached?.epoch === epoch) return this.cached.order;
    const rng = new Rng((this.seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
    const order = Array.from({ length: this.size }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const k = rng.int(i + 1);
      [order[i], order[k]] = [order[k], order[i]];
    }
    this.cached = { epoch, order };
    return order;
  }
}
