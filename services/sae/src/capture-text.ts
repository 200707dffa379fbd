/**
 * Capture from a GPT-2 directory (Hugging Face's layout with its tokenizer, as `rlmesh sft` writes):
 * the data is JSONL whose lines carry text, `{"prompt": "...", "labels": {...}}` (the card game's
 * records, `rlmesh data cards`) or `{"text": "..."}`. Each line's text is tokenized with the
 * directory's tokenizer and becomes one observation, right-padded to the longest line; its rows are
 * its token positions, each with the line's labels, so features can be read against them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Discrete, TokenSequence } from '@rlmesh/core';
import {
  type Gpt2Config,
  gpt2ConfigFromJson,
  gpt2Model,
  type HookInfo,
  loadSftCheckpoint,
  modelHooks,
  type PolicyModel,
} from '@rlmesh/learner';
import type { CapturedPolicy, RowContext } from './capture';

export interface TextRow {
  obs: Float32Array;
  /** Tokens in the line (positions captured). */
  length: number;
  context: RowContext;
}

/** A GPT-2 of `config` as a policy over token sequences of `width` (what its capture program reads). */
export function gpt2Policy(config: Gpt2Config, width: number, padId: number): PolicyModel {
  return gpt2Model.build(config, {
    observationSpace: new TokenSequence(config.vocab_size, width, padId) as never,
    actionSpace: new Discrete(config.vocab_size),
    distribution: { kind: 'categorical', n: config.vocab_size },
  });
}

/** The hook points of the GPT-2 in `dir`, traced on sequences of its full n_positions. */
export async function gpt2DirectoryHooks(dir: string): Promise<HookInfo[]> {
  const path = join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const config = gpt2ConfigFromJson(json, path);
  return modelHooks(gpt2Policy(config, config.n_positions, 0));
}

/** A GPT-2 directory's weights and tokenizer, and the id its sequences are padded with. */
export async function openGpt2Directory(dir: string) {
  const { config, params, tokenizer } = await loadSftCheckpoint(dir, false);
  // Padding is cut by each line's length, so any id pads; the model's own when it names one.
  const padId = config.pad_token_id >= 0 ? config.pad_token_id : config.eos_token_id >= 0 ? config.eos_token_id : 0;
  return { config, params, tokenizer, padId };
}

export async function readTextData(dir: string, path: string): Promise<{ policy: CapturedPolicy; rows: TextRow[] }> {
  const { config, params, tokenizer, padId } = await openGpt2Directory(dir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines: { ids: number[]; context: RowContext }[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let rec: { prompt?: unknown; text?: unknown; labels?: unknown };
    try {
      rec = JSON.parse(line);
    } catch {
      throw new Error(`${path}:${i + 1}: not JSON`);
    }
    const body = rec.text ?? rec.prompt;
    if (typeof body !== 'string' || body === '') throw new Error(`${path}:${i + 1}: needs a non-empty "prompt" or "text" string`);
    const ids = tokenizer.encode(body);
    if (ids.length > config.n_positions)
      throw new Error(`${path}:${i + 1}: ${ids.length} tokens, more than the model's n_positions ${config.n_positions}`);
    lines.push({ ids, context: { source: path, line: i + 1, ...(rec.labels !== undefined ? { labels: rec.labels } : {}) } });
  }
  if (lines.length === 0) throw new Error(`${path}: no data lines`);
  const width = Math.max(...lines.map((l) => l.ids.length));
  const model = gpt2Policy(config, width, padId);
  const rows = lines.map((l) => {
    const obs = new Float32Array(width).fill(padId);
    obs.set(l.ids);
    return { obs, length: l.ids.length, context: l.context };
  });
  return { policy: { model, params, padId }, rows };
}
