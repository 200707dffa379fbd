/**
 * The Pareto frontier a page draws: the evaluator's rule over every environment the evaluations
 * share (A beats B on an environment when A's interval low > B's interval high, both with enough
 * episodes; A dominates B when B beats A nowhere and A beats B somewhere).
 */
import type { EvaluationResult } from '@rlmesh/core';
import { DEFAULT_MIN_EPISODES, paretoFrontier } from '@rlmesh/evaluator';

export function frontierOf(results: readonly EvaluationResult[]): { frontier: string[] | null; frontierNote: string } {
  if (results.length === 0) return { frontier: [], frontierNote: '' };
  try {
    const frontier = paretoFrontier([...results]).map((r) => r.id);
    return {
      frontier,
      frontierNote:
        `${frontier.length} of ${results.length} on the frontier over all shared environments: A dominates B when B beats A ` +
        `nowhere and A beats B somewhere; A beats B when A's interval low > B's interval high, with >= ${DEFAULT_MIN_EPISODES} episodes each.`,
    };
  } catch (e) {
    // Evaluations that cannot be compared (intervals at different levels) are still drawn, unranked.
    return { frontier: null, frontierNote: `frontier not computed: ${(e as Error).message}` };
  }
}
