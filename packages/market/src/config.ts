/**
 * The market's configuration: its assets (each a geometric Brownian motion), how news is drawn,
 * the clock and the accounts. Scalars are checked with core's schema validator and every array
 * entry with its own schema, so an error names the entry, e.g. `assets.1.vol: must be a number >= 0`.
 */
import { ConfigError, type Infer, type Schema, validate } from '@rlmesh/core';

export const assetSchema = {
  symbol: { kind: 'string', doc: 'ticker the text interface uses: 1-6 capital letters' },
  name: { kind: 'string', default: '', doc: 'company name for headlines; the symbol when empty' },
  price: { kind: 'number', default: 100, min: 0, exclusiveMin: true, doc: 'price at the start' },
  drift: { kind: 'number', default: 0, doc: 'log-price drift per simulated hour' },
  vol: { kind: 'number', default: 0.01, min: 0, doc: 'log-price volatility per square-root simulated hour' },
} as const satisfies Schema;

/** A scheduled event: a one-off jump of the log price, or a drift shift that lasts `duration_ms`. */
export const eventSchema = {
  asset: { kind: 'string' },
  at_ms: { kind: 'number', min: 0, exclusiveMin: true, doc: 'when it happens, in simulated ms after the start' },
  kind: { kind: 'string', oneOf: ['jump', 'drift'] },
  size: { kind: 'number', doc: 'jump: log return (0.05 is about +5%); drift: added drift per hour' },
  duration_ms: { kind: 'number', default: 3_600_000, min: 0, exclusiveMin: true, doc: 'how long a drift shift lasts' },
  announce_lead_ms: { kind: 'number', default: 0, min: 0, doc: 'how long before it happens a headline hints at it (0: none)' },
} as const satisfies Schema;

export const marketSchema = {
  seed: { kind: 'int', default: 0 },
  start: { kind: 'string', default: '2026-01-01T00:00:00Z', doc: 'the simulated clock at time 0 (ISO 8601)' },
  tick_ms: { kind: 'number', default: 1000, min: 1, doc: 'simulated ms between price updates' },
  speed: { kind: 'number', default: 60, min: 0, exclusiveMin: true, doc: 'simulated ms per real ms when the clock runs on its own' },
  initial_cash: { kind: 'number', default: 10_000, min: 0 },
  fee_bps: { kind: 'number', default: 5, min: 0, doc: 'fee on each fill, in basis points of its value' },
  history_points: { kind: 'int', default: 12, min: 2, doc: 'prices per asset an observation carries' },
  history_interval_ms: { kind: 'number', default: 60_000, min: 1, doc: 'simulated ms between those prices' },
  news_items: { kind: 'int', default: 8, min: 0, doc: 'most headlines an observation carries (newest first)' },
  news_visible_ms: { kind: 'number', default: 1_800_000, min: 0, doc: 'how long a headline stays in observations' },
  outcome_horizon_ms: { kind: 'number', default: 600_000, min: 0, exclusiveMin: true, doc: 'how far after a decision its outcome is read' },
  retain_ms: { kind: 'number', default: 21_600_000, min: 0, exclusiveMin: true, doc: 'how much past the market keeps for queries' },
  news: {
    kind: 'section',
    fields: {
      per_hour: { kind: 'number', default: 1, min: 0, doc: 'random events per asset per simulated hour (Poisson)' },
      jump_share: { kind: 'number', default: 0.6, min: 0, max: 1, doc: 'share of random events that are jumps (the rest shift drift)' },
      jump_size: { kind: 'number', default: 0.04, min: 0, doc: 'standard deviation of a jump, in log return' },
      drift_size: { kind: 'number', default: 0.05, min: 0, doc: 'standard deviation of a drift shift, per hour' },
      drift_duration_ms: { kind: 'number', default: 1_800_000, min: 0, exclusiveMin: true },
      announce_share: { kind: 'number', default: 0.5, min: 0, max: 1, doc: 'share of random events hinted at in advance' },
      lead_min_ms: { kind: 'number', default: 120_000, min: 0 },
      lead_max_ms: { kind: 'number', default: 900_000, min: 0 },
      accuracy: { kind: 'number', default: 0.8, min: 0, max: 1, doc: 'chance that a hint (or a drift headline) has the true tone' },
    },
  },
} as const satisfies Schema;

export type AssetSpec = Infer<typeof assetSchema>;
export type EventSpec = Infer<typeof eventSchema>;
export type MarketConfig = Infer<typeof marketSchema> & { assets: AssetSpec[]; events: EventSpec[] };

const SYMBOL = /^[A-Z]{1,6}$/;
/** Words the action grammar owns; an asset named like one would make `SELL 1 HOLD` ambiguous. */
const RESERVED = new Set(['BUY', 'SELL', 'HOLD']);

/** Default assets: four tickers with different drift and volatility. */
export const DEFAULT_ASSETS: ReadonlyArray<Partial<AssetSpec>> = [
  { symbol: 'ACME', name: 'Acme Corp', price: 100, drift: 0.002, vol: 0.015 },
  { symbol: 'BOLT', name: 'Bolt Energy', price: 40, drift: 0, vol: 0.03 },
  { symbol: 'CRUX', name: 'Crux Biotech', price: 12, drift: -0.001, vol: 0.05 },
  { symbol: 'DUNE', name: 'Dune Logistics', price: 250, drift: 0.001, vol: 0.008 },
];

function list(raw: unknown, key: string): unknown[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError(key, `must be a list, got ${JSON.stringify(raw)}`);
  return raw;
}

/** Validates a market config (defaults filled in); throws ConfigError naming the key and the rule. */
export function marketConfig(raw: Record<string, unknown> = {}): MarketConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError('(root)', 'must be a mapping');
  const { assets: rawAssets, events: rawEvents, ...rest } = raw;
  const base = validate(marketSchema, rest);
  if (Number.isNaN(Date.parse(base.start))) throw new ConfigError('start', `must be an ISO 8601 time, got ${JSON.stringify(base.start)}`);
  if (base.news.lead_max_ms < base.news.lead_min_ms) throw new ConfigError('news.lead_max_ms', 'must be >= news.lead_min_ms');
  if (base.outcome_horizon_ms > base.retain_ms) throw new ConfigError('outcome_horizon_ms', 'must be <= retain_ms');
  const assetList = rawAssets === undefined ? DEFAULT_ASSETS : list(rawAssets, 'assets');
  if (assetList.length === 0) throw new ConfigError('assets', 'must list at least one asset');
  const assets = assetList.map((a, i) => validate(assetSchema, a, `assets.${i}`));
  const seen = new Set<string>();
  assets.forEach((a, i) => {
    if (!SYMBOL.test(a.symbol) || RESERVED.has(a.symbol))
      throw new ConfigError(`assets.${i}.symbol`, `must be 1-6 capital letters and not BUY, SELL or HOLD, got ${JSON.stringify(a.symbol)}`);
    if (seen.has(a.symbol)) throw new ConfigError(`assets.${i}.symbol`, `${a.symbol} is listed twice`);
    seen.add(a.symbol);
    if (a.name === '') a.name = a.symbol;
  });
  const events = list(rawEvents, 'events').map((e, i) => {
    const ev = validate(eventSchema, e, `events.${i}`);
    if (!seen.has(ev.asset))
      throw new ConfigError(`events.${i}.asset`, `unknown asset ${JSON.stringify(ev.asset)} (assets: ${[...seen].join(', ')})`);
    return ev;
  });
  return { ...base, assets, events };
}
