/**
 * The market: a simulated clock over the price tape, one account per agent, and a record of every
 * decision with what happened after it. There is no episode end: the clock only moves forward
 * (`advance`), agents observe and act whenever they like, and each decision's outcome (prices one
 * horizon later, the news that came in between) is filled in once the clock has passed it. The
 * outcome is kept apart from the observation, so a judge can see what the agent could not.
 */
import { Account, type Action, type Fill } from './account';
import { type MarketConfig, marketConfig } from './config';
import type { Headline, NewsEvent } from './news';
import { PriceTape } from './prices';

export interface AssetView {
  symbol: string;
  name: string;
  price: number;
  /** Prices `history_interval_ms` apart, oldest first, the last being `price`. */
  history: number[];
}

export interface PositionView {
  asset: string;
  size: number;
  avgCost: number;
  price: number;
  unrealised: number;
}

/** What an agent sees: the market now, its own account, and the recent headlines. */
export interface Observation {
  agentId: string;
  atMs: number;
  time: string;
  historyIntervalMs: number;
  cash: number;
  equity: number;
  /** equity - initial cash: realised + unrealised - fees. */
  pnl: number;
  realised: number;
  unrealised: number;
  fees: number;
  positions: PositionView[];
  assets: AssetView[];
  /** Newest first. */
  news: Headline[];
  /** How the agent's previous action went, e.g. `refused: cannot sell 5 ACME: holding 2 (no short selling)`. */
  last: string | null;
}

export type DecisionStatus = 'filled' | 'held' | 'refused';

export interface ActResult {
  decisionId: number;
  status: DecisionStatus;
  reason?: string;
  fill?: Fill;
}

/** An event as a decision's outcome reports it: `hinted` says whether a hint was out when the agent decided. */
export interface ComingEvent {
  id: number;
  asset: string;
  atMs: number;
  kind: 'jump' | 'drift';
  size: number;
  headline: string;
  hinted: boolean;
}

/** What happened after a decision: ground truth the agent did not have. */
export interface Outcome {
  horizonMs: number;
  prices: Record<string, number>;
  /** Simple return of each asset over the horizon. */
  returns: Record<string, number>;
  news: ComingEvent[];
}

export interface Decision {
  id: number;
  agentId: string;
  /** The agent's own decision count, from 0. */
  step: number;
  atMs: number;
  /** The action text as given, for text agents. */
  text?: string;
  /** The action, or null when the text could not be read. */
  action: Action | null;
  status: DecisionStatus;
  reason?: string;
  fill?: Fill;
  /** Prices when the agent decided. */
  prices: Record<string, number>;
  /** Equity after the action. */
  equity: number;
  outcome: Outcome | null;
}

export class Market {
  readonly config: MarketConfig;
  readonly tape: PriceTape;
  private nowMs = 0;
  private readonly startMs: number;
  private readonly accounts = new Map<string, Account>();
  private readonly lastResult = new Map<string, string>();
  private readonly steps = new Map<string, number>();
  private readonly decisionLog: Decision[] = [];
  /** Decisions whose outcome is not in yet, oldest first. */
  private readonly unresolved: Decision[] = [];
  private nextDecisionId = 0;

  constructor(config: Record<string, unknown> = {}) {
    this.config = marketConfig(config);
    this.startMs = Date.parse(this.config.start);
    this.tape = new PriceTape(this.config);
    this.tape.extendTo(0);
  }

  /** Simulated ms since the start. */
  get now(): number {
    return this.nowMs;
  }

  /** The wall-clock time a simulated instant stands for. */
  timeOf(ms: number): Date {
    return new Date(this.startMs + ms);
  }

  get symbols(): string[] {
    return this.tape.symbols;
  }

  /** Moves the clock forward by `ms` simulated milliseconds. */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance: ms must be a finite number >= 0, got ${ms}`);
    this.advanceTo(this.nowMs + ms);
  }

  /** Moves the clock to `ms` (never backwards) and fills in the outcomes that are now known. */
  advanceTo(ms: number): void {
    if (!Number.isFinite(ms) || ms < this.nowMs) throw new RangeError(`advanceTo: ms must be >= now (${this.nowMs}), got ${ms}`);
    this.tape.extendTo(ms);
    this.nowMs = ms;
    const h = this.config.outcome_horizon_ms;
    while (this.unresolved.length > 0 && this.unresolved[0].atMs + h <= ms) this.resolve(this.unresolved.shift()!);
    const cutoff = ms - this.config.retain_ms;
    let drop = 0;
    while (drop < this.decisionLog.length && this.decisionLog[drop].atMs < cutoff && this.decisionLog[drop].outcome) drop++;
    if (drop > 0) this.decisionLog.splice(0, drop);
  }

  /** Opens an account with the configured cash. */
  join(agentId: string): void {
    if (typeof agentId !== 'string' || agentId === '') throw new Error('join: agentId must be a non-empty string');
    if (this.accounts.has(agentId)) throw new Error(`join: agent ${JSON.stringify(agentId)} has already joined`);
    this.accounts.set(agentId, new Account(this.config.initial_cash));
    this.steps.set(agentId, 0);
  }

  get agents(): string[] {
    return [...this.accounts.keys()];
  }

  price(symbol: string, ms = this.nowMs): number {
    return this.tape.priceAt(symbol, ms);
  }

  observe(agentId: string): Observation {
    const acct = this.account(agentId);
    const now = this.nowMs;
    const { history_points: n, history_interval_ms: dt } = this.config;
    const earliest = Math.max(0, this.tape.earliestMs);
    const assets = this.config.assets.map((a) => {
      const history: number[] = [];
      for (let i = n - 1; i >= 0; i--) history.push(this.price(a.symbol, Math.max(earliest, now - i * dt)));
      return { symbol: a.symbol, name: a.name, price: history[n - 1], history };
    });
    const positions = [...acct.positions].map(([asset, p]) => {
      const price = this.price(asset);
      return { asset, size: p.size, avgCost: p.avgCost, price, unrealised: (price - p.avgCost) * p.size };
    });
    const unrealised = positions.reduce((s, p) => s + p.unrealised, 0);
    const equity = this.equity(agentId);
    return {
      agentId,
      atMs: now,
      time: this.timeOf(now).toISOString(),
      historyIntervalMs: dt,
      cash: acct.cash,
      equity,
      pnl: equity - acct.initialCash,
      realised: acct.realised,
      unrealised,
      fees: acct.fees,
      positions,
      assets,
      news: this.headlines(now - this.config.news_visible_ms, now).slice(0, this.config.news_items),
      last: this.lastResult.get(agentId) ?? null,
    };
  }

  /** Headlines published in [fromMs, toMs], newest first. */
  headlines(fromMs: number, toMs: number): Headline[] {
    const out: Headline[] = [];
    for (const e of this.eventsBetween(fromMs, toMs + this.tape.maxLeadMs + 1)) {
      for (const h of [e.hint, e.report]) if (h && h.atMs >= fromMs && h.atMs <= toMs) out.push(h);
    }
    return out.sort((a, b) => b.atMs - a.atMs || b.eventId - a.eventId);
  }

  /** Events that happen in [fromMs, toMs), by time. */
  eventsBetween(fromMs: number, toMs: number): NewsEvent[] {
    const evs = this.tape.events;
    let lo = 0;
    let hi = evs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (evs[mid].atMs < fromMs) lo = mid + 1;
      else hi = mid;
    }
    const out: NewsEvent[] = [];
    for (let i = lo; i < evs.length && evs[i].atMs < toMs; i++) out.push(evs[i]);
    return out;
  }

  /** Cash plus holdings at current prices (or at `ms`, rebuilt from the ledger). */
  equity(agentId: string, ms = this.nowMs): number {
    const acct = this.account(agentId);
    if (ms === this.nowMs) {
      let eq = acct.cash;
      for (const [asset, p] of acct.positions) eq += p.size * this.price(asset);
      return eq;
    }
    const { cash, sizes } = acct.holdingsAt(ms);
    let eq = cash;
    for (const [asset, size] of sizes) if (size > 1e-12) eq += size * this.price(asset, ms);
    return eq;
  }

  /** Acts now. A bad action is refused with its reason and changes nothing but the record. */
  act(agentId: string, action: Action): ActResult {
    const acct = this.account(agentId);
    const reason = this.check(action);
    if (reason) return this.record(agentId, null, 'refused', reason, undefined, shown(action));
    if (action.kind === 'hold') return this.record(agentId, action, 'held');
    const price = this.price(action.asset);
    const feeRate = this.config.fee_bps / 10_000;
    const refusal = acct.refusal(action.kind, action.asset, action.size, price, feeRate);
    if (refusal) return this.record(agentId, action, 'refused', refusal);
    const fill = acct.fillFor(this.nowMs, action.kind, action.asset, action.size, price, feeRate);
    acct.apply(fill);
    return this.record(agentId, action, 'filled', undefined, fill);
  }

  /** Records a text the caller could not read as an action: a refused decision, shown in the next observation. */
  refuseText(agentId: string, text: string, reason: string): ActResult {
    this.account(agentId);
    return this.record(agentId, null, 'refused', reason, undefined, text);
  }

  /** Decisions of one agent (or all) in [fromMs, toMs), oldest first. */
  decisions(filter: { agentId?: string; fromMs?: number; toMs?: number } = {}): Decision[] {
    const { agentId, fromMs = -Infinity, toMs = Infinity } = filter;
    return this.decisionLog.filter((d) => (agentId === undefined || d.agentId === agentId) && d.atMs >= fromMs && d.atMs < toMs);
  }

  private account(agentId: string): Account {
    const acct = this.accounts.get(agentId);
    if (!acct) throw new Error(`unknown agent ${JSON.stringify(agentId)}: call join first`);
    return acct;
  }

  /** The reason an action is malformed, or null; checked before any account is touched. */
  private check(action: Action): string | null {
    const a = action as { kind?: unknown; asset?: unknown; size?: unknown } | null;
    if (!a || typeof a !== 'object') return 'action must be an object with kind buy, sell or hold';
    if (a.kind === 'hold') return null;
    if (a.kind !== 'buy' && a.kind !== 'sell') return `kind must be buy, sell or hold, got ${JSON.stringify(a.kind)}`;
    if (typeof a.asset !== 'string' || !this.tape.has(a.asset))
      return `unknown asset ${JSON.stringify(a.asset)} (assets: ${this.symbols.join(', ')})`;
    if (typeof a.size !== 'number' || !Number.isFinite(a.size) || a.size <= 0)
      return `size must be a positive finite number, got ${String(a.size)}`;
    return null;
  }

  private record(
    agentId: string,
    action: Action | null,
    status: Decision['status'],
    reason?: string,
    fill?: Fill,
    text?: string,
  ): ActResult {
    const prices: Record<string, number> = {};
    for (const s of this.symbols) prices[s] = this.price(s);
    const step = this.steps.get(agentId)!;
    this.steps.set(agentId, step + 1);
    const d: Decision = {
      id: this.nextDecisionId++,
      agentId,
      step,
      atMs: this.nowMs,
      action,
      status,
      prices,
      equity: this.equity(agentId),
      outcome: null,
    };
    if (text !== undefined) d.text = text;
    if (reason !== undefined) d.reason = reason;
    if (fill) d.fill = fill;
    this.decisionLog.push(d);
    this.unresolved.push(d);
    this.lastResult.set(agentId, describe(d));
    const result: ActResult = { decisionId: d.id, status };
    if (reason !== undefined) result.reason = reason;
    if (fill) result.fill = fill;
    return result;
  }

  private resolve(d: Decision): void {
    const h = this.config.outcome_horizon_ms;
    const prices: Record<string, number> = {};
    const returns: Record<string, number> = {};
    for (const s of this.symbols) {
      prices[s] = this.price(s, d.atMs + h);
      returns[s] = prices[s] / d.prices[s] - 1;
    }
    const news = this.eventsBetween(d.atMs + 1, d.atMs + h + 1).map((e) => ({
      id: e.id,
      asset: e.asset,
      atMs: e.atMs,
      kind: e.kind,
      size: e.size,
      headline: e.report.text,
      hinted: e.hint !== null && e.hint.atMs <= d.atMs,
    }));
    d.outcome = { horizonMs: h, prices, returns, news };
  }
}

function shown(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** One line on how a decision went, as the agent's next observation shows it. */
export function describe(d: Decision): string {
  const what = actionText(d.action) ?? JSON.stringify(d.text ?? '');
  if (d.status === 'refused') return `${what} refused: ${d.reason}`;
  if (d.status === 'held') return 'HOLD';
  return `${what} filled at ${d.fill!.price.toFixed(2)} (fee ${d.fill!.fee.toFixed(2)})`;
}

/** The action in the text grammar, e.g. `BUY 3 ACME`, or null for none. */
export function actionText(a: Action | null): string | null {
  if (!a) return null;
  if (a.kind === 'hold') return 'HOLD';
  return `${a.kind.toUpperCase()} ${a.size} ${a.asset}`;
}
