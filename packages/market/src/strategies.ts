/**
 * Scripted traders that run as agents: baselines for judges and opponents for learning agents.
 * Each reads only its observation (plus its own seeded generator), so it could be swapped for a
 * language model without touching the market. Order sizes are a fraction of equity in whole shares.
 */
import { Rng } from '@rlmesh/core';
import type { Action } from './account';
import type { Observation } from './market';

/**
 * An agent: it decides from an observation, either an Action or a text answer the parser reads;
 * null passes the turn without a decision (an agent that could not decide, e.g. its model was down).
 */
export interface Agent {
  readonly id: string;
  /** Mean simulated ms between its decisions; the simulation jitters each gap by +-50%. */
  readonly paceMs: number;
  act(obs: Observation): AgentAnswer | Promise<AgentAnswer>;
}

export type AgentAnswer = Action | string | null;

export interface StrategyOptions {
  id: string;
  paceMs?: number;
  /** Share of equity one order may spend. */
  fraction?: number;
  seed?: number;
}

const HOLD: Action = { kind: 'hold' };

function sharesFor(obs: Observation, symbol: string, fraction: number): number {
  const price = obs.assets.find((a) => a.symbol === symbol)!.price;
  const fee = 1.01; // room for the fee, so a full-cash order is not refused
  return Math.floor(Math.min(obs.equity * fraction, obs.cash / fee) / price);
}

const held = (obs: Observation, symbol: string) => obs.positions.find((p) => p.asset === symbol)?.size ?? 0;

function buy(obs: Observation, symbol: string, fraction: number): Action {
  const size = sharesFor(obs, symbol, fraction);
  return size > 0 ? { kind: 'buy', asset: symbol, size } : HOLD;
}

function sellAll(obs: Observation, symbol: string): Action {
  const size = held(obs, symbol);
  return size > 0 ? { kind: 'sell', asset: symbol, size } : HOLD;
}

/** Spends its cash evenly on every asset at its first decision, then holds. */
export function buyAndHold(o: StrategyOptions): Agent {
  let next = 0;
  return {
    id: o.id,
    paceMs: o.paceMs ?? 60_000,
    act(obs) {
      if (next >= obs.assets.length) return HOLD;
      const a = obs.assets[next++];
      const size = Math.floor(obs.cash / (obs.assets.length - next + 1) / (a.price * 1.01));
      return size > 0 ? { kind: 'buy', asset: a.symbol, size } : HOLD;
    },
  };
}

/** Holds half the time; otherwise buys or sells a random asset it can (seeded). */
export function randomTrader(o: StrategyOptions): Agent {
  const rng = new Rng(o.seed ?? 0);
  const fraction = o.fraction ?? 0.1;
  return {
    id: o.id,
    paceMs: o.paceMs ?? 30_000,
    act(obs) {
      if (rng.uniform() < 0.5) return HOLD;
      const a = obs.assets[rng.int(obs.assets.length)];
      if (rng.uniform() < 0.5) return buy(obs, a.symbol, fraction * rng.uniform());
      const h = held(obs, a.symbol);
      return h > 0 ? { kind: 'sell', asset: a.symbol, size: Math.max(1, Math.floor(h * rng.uniform())) } : HOLD;
    },
  };
}

/** Buys the asset with the strongest rise over its history, sells what is falling. */
export function momentum(o: StrategyOptions & { threshold?: number }): Agent {
  const threshold = o.threshold ?? 0.002;
  const fraction = o.fraction ?? 0.25;
  return {
    id: o.id,
    paceMs: o.paceMs ?? 60_000,
    act(obs) {
      const moves = obs.assets.map((a) => ({ symbol: a.symbol, r: a.price / a.history[0] - 1 }));
      const falling = moves.find((m) => m.r < -threshold && held(obs, m.symbol) > 0);
      if (falling) return sellAll(obs, falling.symbol);
      const best = moves.reduce((x, y) => (y.r > x.r ? y : x));
      return best.r > threshold ? buy(obs, best.symbol, fraction) : HOLD;
    },
  };
}

/** Buys an asset stretched below its recent mean, sells one stretched above (z-score of the history). */
export function meanReversion(o: StrategyOptions & { z?: number }): Agent {
  const zEntry = o.z ?? 1.5;
  const fraction = o.fraction ?? 0.25;
  return {
    id: o.id,
    paceMs: o.paceMs ?? 60_000,
    act(obs) {
      for (const a of obs.assets) {
        const mean = a.history.reduce((s, p) => s + p, 0) / a.history.length;
        const sd = Math.sqrt(a.history.reduce((s, p) => s + (p - mean) ** 2, 0) / a.history.length);
        if (sd === 0) continue;
        const z = (a.price - mean) / sd;
        if (z > zEntry && held(obs, a.symbol) > 0) return sellAll(obs, a.symbol);
        if (z < -zEntry) {
          const order = buy(obs, a.symbol, fraction);
          if (order.kind !== 'hold') return order;
        }
      }
      return HOLD;
    },
  };
}

/** Trades on each headline's tone once: buys on good news, sells its holding on bad news. */
export function newsFollower(o: StrategyOptions): Agent {
  const seen = new Set<string>();
  const fraction = o.fraction ?? 0.25;
  return {
    id: o.id,
    paceMs: o.paceMs ?? 45_000,
    act(obs) {
      for (const h of [...obs.news].reverse()) {
        const key = `${h.eventId}:${h.hint}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const order = h.tone === 'positive' ? buy(obs, h.asset, fraction) : sellAll(obs, h.asset);
        if (order.kind !== 'hold') return order;
      }
      return HOLD;
    },
  };
}

/** The scripted strategies by name, for configs and command lines. */
export const STRATEGIES = {
  'buy-and-hold': buyAndHold,
  random: randomTrader,
  momentum,
  'mean-reversion': meanReversion,
  'news-follower': newsFollower,
} as const;

export type StrategyName = keyof typeof STRATEGIES;
