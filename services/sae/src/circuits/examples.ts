/**
 * The card game's records as circuit analysis reads them: each record tokenised as SFT trains on it
 * (prompt, then completion and EOS), with named token positions ("slots") that mean the same thing
 * in every prompt, so activations can be compared and patched across prompts of different lengths:
 *   answer          the last prompt token (the end of "Answer:"), where the answer is read out
 *   rule.colour     the first colour the rule names (colour_sum and add_sub rules)
 *   card<i>.colour  card i's colour (1-based), its last token
 *   card<i>.value   card i's value, its last token
 * A slot is the token holding the slot's last character. Patching adds `readout` (patching.ts).
 * The answer is what the card game's verifier reads (`answerSpan`): the whole completion when it is
 * the answer alone (" 7"), the last token of a worked line (" RED 3 = 3 - BLUE 2 = 1, ODD" -> ODD).
 * Scores are taken on the answer's tokens and what follows them (EOS), teacher-forced after the
 * completion's work, so a worked completion is judged by its answer and not by its first step.
 */
import { readFileSync } from 'node:fs';
import { answerSpan, type Card, type CardLabels, type Rule, ruleColours } from '@rlmesh/envs';
import { encodePrompt } from '@rlmesh/learner';
import type { Tokenizer } from '@rlmesh/text';

export interface CardRecord {
  prompt: string;
  completion: string;
  answer: string;
  family: string;
  rule: Rule & { text: string; template: number };
  cards: Card[];
  labels: CardLabels;
  /** The split the record says it is from (`id`, `ood_values`, ...). */
  split: string;
  /** 1-based line in its file; 0 for a record built here. */
  line: number;
}

export interface TokenizedRecord {
  record: CardRecord;
  /** Prompt ids, then completion ids and EOS. */
  ids: number[];
  promptLength: number;
  /** Index in `ids` of the first token of the answer (promptLength when the completion is the answer alone). */
  answerStart: number;
  /** Slot name -> token index in `ids`. */
  slots: Map<string, number>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why a parsed line is not a card record with labels, or null when it is one. */
function recordProblem(r: Record<string, unknown>): string | null {
  for (const k of ['prompt', 'completion', 'answer'])
    if (typeof r[k] !== 'string' || r[k] === '') return `"${k}" must be a non-empty string`;
  if (!isObject(r.rule) || !isObject(r.rule.aggregate) || !isObject(r.rule.readout) || typeof r.rule.text !== 'string')
    return '"rule" must hold aggregate, readout and text (a card game record, as rlmesh data cards writes)';
  if (!Array.isArray(r.cards) || !r.cards.every((c) => isObject(c) && typeof c.colour === 'string' && Number.isInteger(c.value)))
    return '"cards" must be a list of {colour, value}';
  const l = r.labels;
  if (!isObject(l)) return 'no "labels" (circuit analysis needs the card game\'s intermediate labels: colour_sums, selected, total, label)';
  if (!isObject(l.colour_sums) || !Object.values(l.colour_sums).every((v) => typeof v === 'number'))
    return '"labels.colour_sums" must map colours to numbers';
  if (!Array.isArray(l.selected) || l.selected.length !== r.cards.length) return '"labels.selected" must hold one 0/1 per card';
  if (typeof l.total !== 'number' || typeof l.label !== 'string') return '"labels.total" must be a number and "labels.label" a string';
  return null;
}

/** Reads a card game JSONL (rlmesh data cards); every line must carry the intermediate labels. */
export function readCardRecords(path: string): CardRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const out: CardRecord[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      throw new Error(`${path}:${i + 1}: not JSON`);
    }
    if (!isObject(r)) throw new Error(`${path}:${i + 1}: must be a JSON object`);
    const problem = recordProblem(r);
    if (problem) throw new Error(`${path}:${i + 1}: ${problem}`);
    out.push({ ...(r as unknown as CardRecord), family: String(r.family ?? ''), split: String(r.split ?? ''), line: i + 1 });
  }
  if (out.length === 0) throw new Error(`${path}: no data lines`);
  return out;
}

/** Character offset just past the end of each slot's text in the prompt. */
function slotEnds(rec: CardRecord): Map<string, number> {
  const ends = new Map<string, number>();
  const p = rec.prompt;
  ends.set('answer', p.length);
  const ruleStart = p.indexOf(rec.rule.text);
  const named = ruleColours(rec.rule.aggregate);
  if (ruleStart >= 0 && named.length > 0) {
    const at = rec.rule.text.indexOf(named[0]);
    if (at >= 0) ends.set('rule.colour', ruleStart + at + named[0].length);
  }
  let from = p.indexOf('\nCards:\n');
  if (from < 0) return ends;
  from += '\nCards:\n'.length;
  for (const [i, c] of rec.cards.entries()) {
    const line = `${c.colour} ${c.value}`;
    const at = p.indexOf(line, from);
    if (at < 0) break;
    ends.set(`card${i + 1}.colour`, at + c.colour.length);
    ends.set(`card${i + 1}.value`, at + line.length);
    from = at + line.length;
  }
  return ends;
}

/** Each token's first byte in the text `ids` decode to, plus the end (special tokens cover no bytes). */
function byteStarts(tok: Tokenizer, ids: readonly number[]): number[] {
  const starts: number[] = [0];
  for (const id of ids) starts.push(starts[starts.length - 1] + tok.decodeBytes([id], { skipSpecialTokens: true }).length);
  return starts;
}

/** The token of `ids` (whose byte starts are `starts`) that holds byte `byte`, or -1. */
function tokenAt(starts: readonly number[], byte: number): number {
  return starts.findIndex((s, i) => i < starts.length - 1 && s <= byte && byte < starts[i + 1]);
}

/** Tokenises a record as SFT does and finds its slots (by each prompt token's byte span) and its answer. */
export function tokenizeRecord(rec: CardRecord, tok: Tokenizer, eosId: number): TokenizedRecord {
  const prompt = encodePrompt(tok, rec.prompt);
  const completion = tok.encode(rec.completion, { addSpecialTokens: false, splitSpecialTokens: true });
  const enc = new TextEncoder();
  const slots = new Map<string, number>();
  const starts = byteStarts(tok, prompt);
  for (const [name, end] of slotEnds(rec)) {
    const t = tokenAt(starts, enc.encode(rec.prompt.slice(0, end)).length - 1);
    if (t >= 0) slots.set(name, t);
  }
  const span = answerSpan(rec.completion);
  // The answer starts at the blank before it: byte-level BPE writes that space into the answer's first
  // token (" 17", " ODD"), and a tokenizer that keeps it apart must still see it before the answer.
  let from = span?.start ?? -1;
  while (from > 0 && /\s/.test(rec.completion[from - 1])) from--;
  const answer = span ? tokenAt(byteStarts(tok, completion), enc.encode(rec.completion.slice(0, from)).length) : -1;
  if (answer < 0)
    throw new Error(`line ${rec.line}: completion ${JSON.stringify(rec.completion)} has no answer the card game's verifier reads`);
  return {
    record: rec,
    ids: [...prompt, ...completion, ...(eosId >= 0 ? [eosId] : [])],
    promptLength: prompt.length,
    answerStart: prompt.length + answer,
    slots,
  };
}

/** The slots to show, in reading order, for records with up to `maxCards` cards. */
export function slotOrder(maxCards: number): string[] {
  const cards = Array.from({ length: maxCards }, (_, i) => [`card${i + 1}.colour`, `card${i + 1}.value`]).flat();
  return ['rule.colour', ...cards, 'answer', 'readout'];
}
