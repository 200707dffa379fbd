/**
 * A market brought back to an instant from recorded decisions: each answer replayed at its recorded
 * time, so accounts, ledgers, step counts and every agent's last result are what they were. Prices
 * and news are a function of the seed alone (agents are price takers), so the decisions are all a
 * restored market needs. A loop that resumes after an interruption rebuilds its market this way.
 */
import type { Market } from './market';
import { actText } from './text';

export interface RecordedDecision {
  agentId: string;
  atMs: number;
  /** A window step's action: a line of the text grammar, or the unreadable answer as a JSON string. */
  action: string;
}

/** The answer a window step's action stands for (window.ts quotes an unreadable answer). */
export function answerOf(action: string): string {
  if (!action.startsWith('"')) return action;
  try {
    const text = JSON.parse(action);
    return typeof text === 'string' ? text : action;
  } catch {
    return action;
  }
}

/**
 * Replays `decisions` on `market` (whose agents have joined) in time order, ties in join order as
 * Simulation.run takes them, then moves the clock to `untilMs`. Each answer goes through the text
 * parser again, so a fill, a refusal and its reason come out as they did. Returns how many replayed.
 */
export function replayDecisions(market: Market, decisions: readonly RecordedDecision[], untilMs: number): number {
  const order = new Map(market.agents.map((id, i) => [id, i]));
  for (const d of decisions) {
    if (!order.has(d.agentId)) throw new Error(`replayDecisions: agent ${JSON.stringify(d.agentId)} has not joined the market`);
    if (!(d.atMs >= market.now && d.atMs < untilMs))
      throw new RangeError(`replayDecisions: a decision of ${d.agentId} at ${d.atMs} ms is outside [${market.now}, ${untilMs}) ms`);
  }
  const sorted = [...decisions].sort((a, b) => a.atMs - b.atMs || (order.get(a.agentId) ?? 0) - (order.get(b.agentId) ?? 0));
  for (const d of sorted) {
    market.advanceTo(d.atMs);
    actText(market, d.agentId, answerOf(d.action));
  }
  market.advanceTo(untilMs);
  return sorted.length;
}
