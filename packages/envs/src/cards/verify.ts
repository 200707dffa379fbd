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

/**
 * Where the answer the parse reads sits in a completion: its token's characters [start, end) and the
 * token as written; null when there is none. Circuit analysis scores a model on these characters.
 */
export function answerSpan(completion: string): { start: number; end: number; token: string } | null {
  let from = 0;
  for (const line of completion.split('\n')) {
    if (line.trim() !== '') {
      const text = line.trim();
      const at = from + line.length - line.trimStart().length;
      if (/(?:^|\s)=(?:\s|$)/.test(text)) {
        const m = LAST_TOKEN.exec(text);
        if (!m) return null;
        // The match may open with the separator before the token and close with a full stop after it.
        const end = at + m.index + m[0].length - (m[0].endsWith(m[1]) ? 0 : 1);
        return { start: end - m[1].length, end, token: m[1] };
      }
      const m = TOKEN.exec(text);
      return m ? { start: at, end: at + m[1].length, token: m[1] } : null;
    }
    from += line.length + 1;
  }
  return null;
}

/** The answer a completion gives, normalised (integers without leading zeros, words upper-case), or null. */
export function parseAnswer(completion: string): string | null {
  const span = answerSpan(completion);
  if (span === null) return null;
  const t = span.token;
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
