/** What the Affine reasoning tasks share: their reward components and the first-line reading of an answer. */

/**
 * correct  1 when the answer is right (the task's reward)
 * format   1 when the completion is exactly the documented answer format, else 0; an optional bonus
 *          the learner weights
 */
export const REASONING_REWARDS = ['correct', 'format'] as const;

/** The first non-blank line of a completion, trimmed, or null when it has none. */
export function firstLine(completion: string): string | null {
  const line = completion.split('\n').find((l) => l.trim() !== '');
  return line === undefined ? null : line.trim();
}
