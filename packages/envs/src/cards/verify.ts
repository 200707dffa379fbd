/**
 * The verifier: parses the answer out of a completion and scores it. Two reward components:
 *
 *   correct  1 when the parsed answer equals the true one, else 0 (the task's reward)
 *   format   1 when the completion is exactly one well-formed answer of the rule's kind (an integer,
 *            BIG/SMALL or EVEN/ODD), alone or as the end of a well-formed worked line (prompts.ts:
 *            "RED 3 = 3 - BLUE 2 = 1, ODD"), with nothing but whitespace around it, else 0; an optional
 *            bonus the learner weights (0 by default in its reward weights).
 *
 * The parse is lenient so that correctness does not hinge on format. It reads the first non-blank
 * line: if that line holds an "=" between spaces (worked), the answer is its last token; otherwise its first. A token
 * is a signed integer or a word (case-insensitive), ending at whitespace, a full stop, a comma or the
 * end. " 17\nRule: ..." (a model that runs on) parses as 17, " RED 3 = 3, ODD." as ODD. The running
 * totals of the work are not checked: only the answer is scored.
 */
import type { Verdict } from '@rlmesh/core';
import type { ReadoutKind } from './rules';

export const CARD_REWARDS = ['correct', 'format'] as const;

const TOKEN = /^(-?\d+|[A-Za-z]+)(?=$|[\s.,;!])/;
const LAST_TOKEN = /(?:^|[\s=,])(-?\d+|[A-Za-z]+)[.,;!]?$/;
const WORK = '(?:none = -?\\d+|(?:- )?[A-Z]+ \\d+ = -?\\d+(?: [+-] [A-Z]+ \\d+ = -?\\d+)*)';
const WELL_FORMED: Record<ReadoutKind, RegExp> = {
  number: new RegExp(`^\\s*(?:-?\\d+|${WORK})\\s*$`),
  threshold: new RegExp(`^\\s*(?:(?:${WORK}) (?:>|<=) \\d+, )?(?:BIG|SMALL)\\s*$`),
  parity: new RegExp(`^\\s*(?:(?:${WORK}), )?(?:EVEN|ODD)\\s*$`),
};

/** The answer a completion gives, normalised (integers without leading zeros, words upper-case), or null. */
export function parseAnswer(completion: string): string | null {
  const line = completion.split('\n').find((l) => l.trim() !== '');
  if (line === undefined) return null;
  const text = line.trim();
  const m = /(?:^|\s)=(?:\s|$)/.test(text) ? LAST_TOKEN.exec(text) : TOKEN.exec(text);
  if (!m) return null;
  const t = m[1];
  if (/^-?\d+$/.test(t)) {
    const n = Number(t);
    return Number.isSafeInteger(n) ? String(n) : null;
  }
  return t.toUpperCase();
}

export function verifyAnswer(completion: string, answer: string, kind: ReadoutKind): Verdict {
  const parsed = parseAnswer(completion);
  const correct = parsed !== null && parsed === answer ? 1 : 0;
  const format = WELL_FORMED[kind].test(completion) ? 1 : 0;
  return { reward: { correct, format }, success: correct === 1, parsed };
}
