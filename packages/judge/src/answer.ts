/**
 * Reading a judge model's answer: JSON (bare, or inside a code fence or prose), `scores` with one
 * entry per trajectory of the window, ids exactly those given, each score a number in [0, 1].
 * Anything else is an error that says what was wrong, so it can be logged and retried.
 */
import type { TrajectoryScore } from './types';

export type ReadScores = { ok: true; scores: TrajectoryScore[] } | { ok: false; error: string };

function jsonOf(text: string): unknown {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) throw new Error('no JSON object in the answer');
  return JSON.parse(text.slice(start, end + 1));
}

/** Checks scores (`trajectory_id` as models write it, `trajectoryId` as the cache stores it) against the window's ids; returns them in the window's order. */
export function readScores(entries: unknown, ids: readonly string[]): ReadScores {
  if (!Array.isArray(entries)) return { ok: false, error: '"scores" must be a list' };
  const byId = new Map<string, TrajectoryScore>();
  for (const [i, e] of entries.entries()) {
    const entry = e as { trajectory_id?: unknown; trajectoryId?: unknown; score?: unknown; explanation?: unknown } | null;
    const id = entry?.trajectory_id ?? entry?.trajectoryId;
    if (typeof id !== 'string') return { ok: false, error: `scores[${i}].trajectory_id must be a string` };
    if (!ids.includes(id))
      return { ok: false, error: `scores[${i}].trajectory_id ${JSON.stringify(id)} is not a trajectory of the window` };
    if (byId.has(id)) return { ok: false, error: `trajectory ${JSON.stringify(id)} is scored twice` };
    const score = entry?.score;
    if (typeof score !== 'number' || !Number.isFinite(score) || score < 0 || score > 1)
      return { ok: false, error: `scores[${i}].score must be a number in [0, 1], got ${JSON.stringify(score)}` };
    const s: TrajectoryScore = { id, score };
    if (typeof entry?.explanation === 'string') s.explanation = entry.explanation;
    byId.set(id, s);
  }
  const missing = ids.filter((id) => !byId.has(id));
  if (missing.length > 0) return { ok: false, error: `no score for ${missing.map((m) => JSON.stringify(m)).join(', ')}` };
  return { ok: true, scores: ids.map((id) => byId.get(id)!) };
}

/** Parses a model's answer text; never throws. */
export function parseAnswer(text: string, ids: readonly string[]): ReadScores {
  let parsed: unknown;
  try {
    parsed = jsonOf(text);
  } catch (e) {
    return { ok: false, error: `unreadable answer: ${(e as Error).message}` };
  }
  return readScores((parsed as { scores?: unknown }).scores, ids);
}
