/**
 * News: events that move prices (a jump of the log price, or a drift shift for a while) and the
 * headlines agents read about them. A hint may come ahead of an event, and its tone is right only
 * with the configured accuracy; the event's own headline reports a jump truthfully (the price shows
 * it anyway) but a drift shift only as reliably as a hint, since its effect unfolds later.
 *
 * Random events are drawn per asset in one-hour blocks, in block order, each asset from its own
 * generator, so the schedule depends on the seed alone, never on how the clock was advanced.
 */
import type { Rng } from '@rlmesh/core';
import type { AssetSpec, EventSpec, MarketConfig } from './config';

export type Tone = 'positive' | 'negative';

export interface Headline {
  atMs: number;
  asset: string;
  text: string;
  tone: Tone;
  eventId: number;
  /** A hint before the event (true) or the report at the event (false). */
  hint: boolean;
}

export interface NewsEvent {
  id: number;
  asset: string;
  atMs: number;
  kind: 'jump' | 'drift';
  /** jump: log return; drift: drift added per hour while it lasts. */
  size: number;
  durationMs: number;
  /** The hint's headline, when the event was hinted at in advance. */
  hint: Headline | null;
  report: Headline;
}

export const BLOCK_MS = 3_600_000;

const HINTS: Record<Tone, string[]> = {
  positive: [
    'Analysts expect strong quarterly numbers from {name} ({sym})',
    '{name} ({sym}) said to be close to a major contract',
    'Insiders reported buying shares of {name} ({sym})',
  ],
  negative: [
    'Regulator reportedly examining {name} ({sym})',
    'A supplier of {name} ({sym}) warns of delays',
    'Short sellers build positions against {name} ({sym})',
  ],
};
const DRIFT_REPORTS: Record<Tone, string[]> = {
  positive: ['{name} ({sym}) announces an expansion plan', '{name} ({sym}) wins a long-term supply deal'],
  negative: ['{name} ({sym}) loses a key customer', '{name} ({sym}) cuts its outlook'],
};

const toneOf = (size: number): Tone => (size >= 0 ? 'positive' : 'negative');
const flip = (t: Tone): Tone => (t === 'positive' ? 'negative' : 'positive');
const fill = (template: string, a: AssetSpec) => template.replace('{name}', a.name).replace('{sym}', a.symbol);

/** Builds an event's headlines; `rng` draws the hint's and the drift report's tone and wording. */
export function makeEvent(
  id: number,
  asset: AssetSpec,
  spec: { atMs: number; kind: 'jump' | 'drift'; size: number; durationMs: number; leadMs: number },
  accuracy: number,
  rng: Rng,
): NewsEvent {
  const truth = toneOf(spec.size);
  const noisy = (): Tone => (rng.uniform() < accuracy ? truth : flip(truth));
  const pick = (xs: string[]) => xs[rng.int(xs.length)];
  let hint: Headline | null = null;
  if (spec.leadMs > 0) {
    const tone = noisy();
    hint = {
      atMs: Math.max(0, spec.atMs - spec.leadMs),
      asset: asset.symbol,
      text: fill(pick(HINTS[tone]), asset),
      tone,
      eventId: id,
      hint: true,
    };
  }
  let report: Headline;
  if (spec.kind === 'jump') {
    const pct = Math.abs(Math.expm1(spec.size) * 100).toFixed(1);
    const text =
      truth === 'positive' ? `{name} ({sym}) jumps ${pct}% on surprise results` : `{name} ({sym}) falls ${pct}% after a profit warning`;
    report = { atMs: spec.atMs, asset: asset.symbol, text: fill(text, asset), tone: truth, eventId: id, hint: false };
  } else {
    const tone = noisy();
    report = { atMs: spec.atMs, asset: asset.symbol, text: fill(pick(DRIFT_REPORTS[tone]), asset), tone, eventId: id, hint: false };
  }
  return { id, asset: asset.symbol, atMs: spec.atMs, kind: spec.kind, size: spec.size, durationMs: spec.durationMs, hint, report };
}

/** Configured events, with ids 0..n-1, in the order given. */
export function scheduledEvents(cfg: MarketConfig, rng: Rng): NewsEvent[] {
  const bySymbol = new Map(cfg.assets.map((a) => [a.symbol, a]));
  return cfg.events.map((e: EventSpec, i) =>
    makeEvent(
      i,
      bySymbol.get(e.asset)!,
      { atMs: e.at_ms, kind: e.kind, size: e.size, durationMs: e.duration_ms, leadMs: e.announce_lead_ms },
      cfg.news.accuracy,
      rng,
    ),
  );
}

/** A Poisson(lambda) count by Knuth's product of uniforms (lambda is a few events per hour). */
function poisson(rng: Rng, lambda: number): number {
  const limit = Math.exp(-lambda);
  let k = 0;
  let p = rng.uniform();
  while (p > limit) {
    k++;
    p *= rng.uniform();
  }
  return k;
}

/** The random events of one asset in one block, sorted by time; ids from `nextId` on. */
export function blockEvents(cfg: MarketConfig, asset: AssetSpec, block: number, rng: Rng, nextId: number): NewsEvent[] {
  const n = cfg.news.per_hour > 0 ? poisson(rng, (cfg.news.per_hour * BLOCK_MS) / 3_600_000) : 0;
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(block * BLOCK_MS + 1 + Math.floor(rng.uniform() * (BLOCK_MS - 1)));
  times.sort((a, b) => a - b);
  const nw = cfg.news;
  return times.map((atMs, i) => {
    const jump = rng.uniform() < nw.jump_share;
    const size = rng.normal() * (jump ? nw.jump_size : nw.drift_size);
    const leadMs = rng.uniform() < nw.announce_share ? nw.lead_min_ms + rng.uniform() * (nw.lead_max_ms - nw.lead_min_ms) : 0;
    const spec = {
      atMs,
      kind: jump ? ('jump' as const) : ('drift' as const),
      size,
      durationMs: nw.drift_duration_ms,
      leadMs: Math.round(leadMs),
    };
    return makeEvent(nextId + i, asset, spec, nw.accuracy, rng);
  });
}
