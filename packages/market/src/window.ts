/**
 * A time window of the market as a judge reads it: each agent's decisions and P&L in the window
 * (what the agent did), and apart from them the ground truth (how every asset moved, which events
 * happened and whether they had been hinted, what each decision's asset did over the horizon after
 * it). The shape is the judge package's input, by structure, so the two packages stay independent.
 */
import type { Market } from './market';
import { actionText } from './market';

export interface WindowStep {
  atMs: number;
  time: string;
  /** The action in the text grammar, or the unreadable text in quotes. */
  action: string;
  side: 'buy' | 'sell' | 'hold' | null;
  asset?: string;
  size?: number;
  price?: number;
  status: 'filled' | 'held' | 'refused';
  reason?: string;
  equity: number;
}

export interface WindowTrajectory {
  id: string;
  agentId: string;
  steps: WindowStep[];
  /** Equity change over the window. */
  finalPnl: number;
  metrics: { startEquity: number; endEquity: number; maxDrawdown: number; trades: number; refused: number };
}

export interface WindowEvent {
  id: number;
  atMs: number;
  time: string;
  kind: 'jump' | 'drift';
  size: number;
  headline: string;
  hint: { time: string; text: string; tone: 'positive' | 'negative' } | null;
}

/** How one asset did over the window: the market outcome an archive stores per window and asset. */
export interface AssetOutcome {
  asset: string;
  startPrice: number;
  endPrice: number;
  high: number;
  low: number;
  return: number;
  events: WindowEvent[];
}

/** What one decision's asset did over the horizon after it, and the events in that time. */
export interface StepOutcome {
  trajectoryId: string;
  step: number;
  asset: string | null;
  horizonMs: number;
  /** The asset's simple return over the horizon; null for a hold or an unreadable action. */
  forwardReturn: number | null;
  news: string[];
}

export interface WindowReport {
  windowId: string;
  fromMs: number;
  toMs: number;
  trajectories: WindowTrajectory[];
  context: { from: string; to: string; assets: AssetOutcome[]; outcomes: StepOutcome[] };
}

/** The archive's window id format: the start's UTC minute, e.g. `2026-01-01T07:00Z`. */
export function windowIdOf(market: Market, fromMs: number): string {
  return `${market.timeOf(fromMs).toISOString().slice(0, 16)}Z`;
}

/** Every asset's outcome over [fromMs, toMs]. */
export function marketOutcomes(market: Market, fromMs: number, toMs: number): AssetOutcome[] {
  const iso = (ms: number) => market.timeOf(ms).toISOString();
  return market.symbols.map((asset) => {
    const startPrice = market.price(asset, fromMs);
    const endPrice = market.price(asset, toMs);
    const events = market
      .eventsBetween(fromMs, toMs + 1)
      .filter((e) => e.asset === asset)
      .map((e) => ({
        id: e.id,
        atMs: e.atMs,
        time: iso(e.atMs),
        kind: e.kind,
        size: e.size,
        headline: e.report.text,
        hint: e.hint ? { time: iso(e.hint.atMs), text: e.hint.text, tone: e.hint.tone } : null,
      }));
    return { asset, startPrice, endPrice, ...market.tape.range(asset, fromMs, toMs), return: endPrice / startPrice - 1, events };
  });
}

/** The window [fromMs, toMs) for a judge; the clock must have passed toMs plus the outcome horizon. */
export function windowReport(market: Market, fromMs: number, toMs: number, windowId = windowIdOf(market, fromMs)): WindowReport {
  if (!(toMs > fromMs)) throw new RangeError(`windowReport: toMs (${toMs}) must be after fromMs (${fromMs})`);
  if (fromMs < market.tape.earliestMs)
    throw new RangeError(
      `windowReport: the window starts at ${fromMs} ms, before the oldest data kept (${market.tape.earliestMs} ms; retain_ms ${market.config.retain_ms})`,
    );
  const ready = toMs + market.config.outcome_horizon_ms;
  if (market.now < ready)
    throw new RangeError(`windowReport: outcomes of the window are known at ${ready} ms; the clock is at ${market.now} ms`);
  const iso = (ms: number) => market.timeOf(ms).toISOString();
  const outcomes: StepOutcome[] = [];
  const trajectories = market.agents.map((agentId): WindowTrajectory => {
    const id = `${windowId}/${agentId}`;
    const decisions = market.decisions({ agentId, fromMs, toMs });
    const startEquity = market.equity(agentId, fromMs);
    const endEquity = market.equity(agentId, toMs);
    let peak = startEquity;
    let maxDrawdown = 0;
    for (const eq of [...decisions.map((d) => d.equity), endEquity]) {
      peak = Math.max(peak, eq);
      maxDrawdown = Math.max(maxDrawdown, (peak - eq) / peak);
    }
    const steps = decisions.map((d, i): WindowStep => {
      const a = d.action;
      const asset = a && a.kind !== 'hold' ? a.asset : null;
      const o = d.outcome!;
      outcomes.push({
        trajectoryId: id,
        step: i,
        asset,
        horizonMs: o.horizonMs,
        forwardReturn: asset ? o.returns[asset] : null,
        news: o.news.map((n) => `${iso(n.atMs)} ${n.headline}${n.hinted ? ' (hinted before the decision)' : ''}`),
      });
      const step: WindowStep = {
        atMs: d.atMs,
        time: iso(d.atMs),
        action: actionText(a) ?? JSON.stringify(d.text ?? ''),
        side: a ? a.kind : null,
        status: d.status,
        equity: d.equity,
      };
      if (a && a.kind !== 'hold') Object.assign(step, { asset: a.asset, size: a.size, price: d.prices[a.asset] });
      if (d.reason !== undefined) step.reason = d.reason;
      return step;
    });
    const trades = steps.filter((s) => s.status === 'filled').length;
    const refused = steps.filter((s) => s.status === 'refused').length;
    return { id, agentId, steps, finalPnl: endEquity - startEquity, metrics: { startEquity, endEquity, maxDrawdown, trades, refused } };
  });
  return {
    windowId,
    fromMs,
    toMs,
    trajectories,
    context: { from: iso(fromMs), to: iso(toMs), assets: marketOutcomes(market, fromMs, toMs), outcomes },
  };
}
