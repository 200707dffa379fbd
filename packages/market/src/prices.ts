/**
 * The price tape: every asset's price on a fixed tick grid, as a geometric Brownian motion
 *
 *   log S(t + dt) = log S(t) + (mu(t) - sigma^2 / 2) dt + sigma sqrt(dt) Z + J(t)
 *
 * with dt in hours, mu(t) the asset's drift plus every drift shift active at t, Z standard normal
 * from the asset's own generator, and J(t) the jumps of events falling in the tick. Prices do not
 * react to trades (agents are price takers), so the tape depends on the seed alone.
 *
 * Ticks older than `retain_ms` are dropped, so an endless run holds bounded memory.
 */
import { Rng } from '@rlmesh/core';
import type { MarketConfig } from './config';
import { BLOCK_MS, blockEvents, type NewsEvent, scheduledEvents } from './news';

/** A growable float64 series indexed by absolute tick, with a droppable head. */
class Series {
  private data = new Float64Array(4096);
  private first = 0;
  private length = 0;

  get firstIndex(): number {
    return this.first;
  }
  get endIndex(): number {
    return this.first + this.length;
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
  at(k: number): number {
    return this.data[k - this.first];
  }
  dropBefore(k: number): void {
    const n = Math.min(Math.max(0, k - this.first), this.length);
    if (n < 4096) return; // drop in large steps: copyWithin is O(length)
    this.data.copyWithin(0, n, this.length);
    this.first += n;
    this.length -= n;
  }
}

interface AssetState {
  series: Series;
  price: number;
  priceRng: Rng;
  newsRng: Rng;
  /** The asset's events not yet fully applied (jumps ahead, drift shifts ahead or running), by time. */
  pending: NewsEvent[];
}

export class PriceTape {
  readonly symbols: string[];
  /** Every event generated so far, by time (ties by id). */
  readonly events: NewsEvent[] = [];
  /** The longest time a hint can precede its event (scheduled events may hint further ahead than random ones). */
  readonly maxLeadMs: number;
  private readonly assets: AssetState[];
  private readonly index = new Map<string, number>();
  private readonly dtHours: number;
  private blocksGenerated = 0;
  private nextEventId: number;

  constructor(private readonly cfg: MarketConfig) {
    const root = new Rng(cfg.seed);
    const scheduledRng = root.fork();
    this.symbols = cfg.assets.map((a) => a.symbol);
    this.assets = cfg.assets.map((a, i) => {
      this.index.set(a.symbol, i);
      return { series: new Series(), price: a.price, priceRng: root.fork(), newsRng: root.fork(), pending: [] };
    });
    this.dtHours = cfg.tick_ms / 3_600_000;
    this.maxLeadMs = Math.max(cfg.news.lead_max_ms, ...cfg.events.map((e) => e.announce_lead_ms));
    const scheduled = scheduledEvents(cfg, scheduledRng);
    this.nextEventId = scheduled.length;
    this.addEvents(scheduled);
    for (const a of this.assets) a.series.push(a.price);
  }

  has(symbol: string): boolean {
    return this.index.has(symbol);
  }

  /** The time of the last generated tick. */
  get lastTickMs(): number {
    return (this.assets[0].series.endIndex - 1) * this.cfg.tick_ms;
  }

  /** The earliest time still held. */
  get earliestMs(): number {
    return this.assets[0].series.firstIndex * this.cfg.tick_ms;
  }

  /** Generates ticks up to and including time `ms`, and the events they (and hints ahead) need. */
  extendTo(ms: number): void {
    this.ensureEvents(ms + this.maxLeadMs + this.cfg.outcome_horizon_ms);
    const lastTick = Math.floor(ms / this.cfg.tick_ms);
    for (let k = this.assets[0].series.endIndex; k <= lastTick; k++) {
      const t = k * this.cfg.tick_ms;
      const from = t - this.cfg.tick_ms;
      this.cfg.assets.forEach((spec, i) => {
        const st = this.assets[i];
        let drift = spec.drift;
        let jump = 0;
        let expired = 0;
        for (const e of st.pending) {
          if (e.atMs > t) break;
          if (e.kind === 'jump') {
            if (e.atMs > from) jump += e.size;
          } else if (e.atMs <= from && from < e.atMs + e.durationMs) drift += e.size;
        }
        // Events are sorted by start; drop the finished ones at the head.
        while (expired < st.pending.length && this.finished(st.pending[expired], t)) expired++;
        if (expired > 0) st.pending.splice(0, expired);
        const sigma = spec.vol;
        st.price *= Math.exp((drift - 0.5 * sigma * sigma) * this.dtHours + sigma * Math.sqrt(this.dtHours) * st.priceRng.normal() + jump);
        st.series.push(st.price);
      });
    }
    const keepFromMs = ms - this.cfg.retain_ms;
    for (const a of this.assets) a.series.dropBefore(Math.floor(keepFromMs / this.cfg.tick_ms));
    if (this.events.length > 0 && this.events[0].atMs < keepFromMs - BLOCK_MS) {
      const keep = this.events.filter((e) => e.atMs >= keepFromMs);
      this.events.splice(0, this.events.length, ...keep);
    }
  }

  /** The price at time `ms` (the last tick at or before it). */
  priceAt(symbol: string, ms: number): number {
    const i = this.index.get(symbol);
    if (i === undefined) throw new Error(`unknown asset ${symbol}`);
    const k = Math.floor(ms / this.cfg.tick_ms);
    const s = this.assets[i].series;
    if (ms < 0) throw new Error(`price of ${symbol} at ${ms} ms is before the market opened`);
    if (k >= s.endIndex) throw new Error(`price of ${symbol} at ${ms} ms is in the future (the tape ends at ${this.lastTickMs} ms)`);
    if (k < s.firstIndex)
      throw new Error(`price of ${symbol} at ${ms} ms is older than retain_ms (${this.cfg.retain_ms} ms) and was dropped`);
    return s.at(k);
  }

  /** Highest and lowest tick prices in [fromMs, toMs]. */
  range(symbol: string, fromMs: number, toMs: number): { high: number; low: number } {
    let high = this.priceAt(symbol, fromMs);
    let low = high;
    this.priceAt(symbol, toMs);
    const s = this.assets[this.index.get(symbol)!].series;
    for (let k = Math.floor(fromMs / this.cfg.tick_ms); k <= Math.floor(toMs / this.cfg.tick_ms); k++) {
      const p = s.at(k);
      if (p > high) high = p;
      if (p < low) low = p;
    }
    return { high, low };
  }

  /**
   * A jump is applied in the tick whose interval (from, t] holds it, a drift shift in every tick
   * whose interval starts within [at, at + duration); the next tick's interval starts at t.
   */
  private finished(e: NewsEvent, t: number): boolean {
    return e.kind === 'jump' ? e.atMs <= t : e.atMs + e.durationMs <= t;
  }

  private ensureEvents(untilMs: number): void {
    while (this.blocksGenerated * BLOCK_MS <= untilMs) {
      const b = this.blocksGenerated++;
      const fresh: NewsEvent[] = [];
      this.cfg.assets.forEach((spec, i) => {
        const evs = blockEvents(this.cfg, spec, b, this.assets[i].newsRng, this.nextEventId);
        this.nextEventId += evs.length;
        fresh.push(...evs);
      });
      this.addEvents(fresh);
    }
  }

  private addEvents(evs: NewsEvent[]): void {
    const byTime = (a: NewsEvent, b: NewsEvent) => a.atMs - b.atMs || a.id - b.id;
    this.events.push(...evs);
    this.events.sort(byTime);
    for (const e of evs) this.assets[this.index.get(e.asset)!].pending.push(e);
    for (const a of this.assets) a.pending.sort(byTime);
  }
}
