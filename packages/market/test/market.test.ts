import { ConfigError, Rng } from '@rlmesh/core';
import {
  actText,
  buyAndHold,
  Market,
  marketConfig,
  meanReversion,
  momentum,
  newsFollower,
  parseAction,
  randomTrader,
  renderPrompt,
  Simulation,
  windowReport,
} from '@rlmesh/market';
import { describe, expect, it } from 'vitest';

const HOUR = 3_600_000;

function fiveAgents(seed: number): Simulation {
  return new Simulation(new Market({ seed }))
    .add(buyAndHold({ id: 'hold' }))
    .add(randomTrader({ id: 'random', seed: seed + 1 }))
    .add(momentum({ id: 'momentum' }))
    .add(meanReversion({ id: 'reversion' }))
    .add(newsFollower({ id: 'news' }));
}

/** Everything an observer could compare: every decision with its outcome, and the prices. */
async function transcript(seed: number): Promise<string> {
  const sim = fiveAgents(seed);
  await sim.run(HOUR + 600_000);
  const m = sim.market;
  const prices = m.symbols.map((s) => [0, 1, 1000, 1_234_567, HOUR].map((t) => m.price(s, t)));
  return JSON.stringify({ decisions: m.decisions(), prices, report: windowReport(m, 0, HOUR) });
}

describe('config', () => {
  it('names the key and the rule', () => {
    const err = (cfg: Record<string, unknown>) => {
      try {
        marketConfig(cfg);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(err({ assets: [{ symbol: 'A' }, { symbol: 'B', vol: -1 }] })).toBe('assets.1.vol: must be a number >= 0, got -1');
    expect(err({ assets: [{ symbol: 'HOLD' }] })).toMatch(/^assets\.0\.symbol: must be 1-6 capital letters and not BUY, SELL or HOLD/);
    expect(err({ assets: [{ symbol: 'A' }, { symbol: 'A' }] })).toBe('assets.1.symbol: A is listed twice');
    expect(err({ assets: [{ symbol: 'A' }], events: [{ asset: 'B', at_ms: 5, kind: 'jump', size: 0.1 }] })).toMatch(
      /^events\.0\.asset: unknown asset "B"/,
    );
    expect(err({ news: { lead_min_ms: 10, lead_max_ms: 5 } })).toBe('news.lead_max_ms: must be >= news.lead_min_ms');
    expect(err({ tick: 5 })).toMatch(/^tick: unknown key/);
  });
});

describe('prices and news', () => {
  it('are a function of the seed alone, whatever steps the clock took', () => {
    const a = new Market({ seed: 7 });
    const b = new Market({ seed: 7 });
    a.advance(3 * HOUR);
    while (b.now + 997 <= 3 * HOUR) b.advance(997);
    b.advanceTo(3 * HOUR);
    for (const s of a.symbols) for (const t of [0, 5_000, HOUR, 2.5 * HOUR, 3 * HOUR]) expect(b.price(s, t)).toBe(a.price(s, t));
    expect(b.eventsBetween(0, 3 * HOUR)).toEqual(a.eventsBetween(0, 3 * HOUR));
    expect(a.eventsBetween(0, 3 * HOUR).length).toBeGreaterThan(0);
    expect(new Market({ seed: 8 }).price('ACME', 0)).toBe(a.price('ACME', 0));
    const c = new Market({ seed: 8 });
    c.advance(HOUR);
    expect(c.price('ACME', HOUR)).not.toBe(a.price('ACME', HOUR));
  });

  it('follow a geometric Brownian motion with the configured volatility', () => {
    const vol = 0.02;
    const m = new Market({ seed: 3, tick_ms: 10_000, assets: [{ symbol: 'X', vol }], news: { per_hour: 0 }, retain_ms: 40 * HOUR });
    m.advance(40 * HOUR);
    const r: number[] = [];
    for (let t = 10_000; t <= 40 * HOUR; t += 10_000) r.push(Math.log(m.price('X', t) / m.price('X', t - 10_000)));
    const mean = r.reduce((s, x) => s + x, 0) / r.length;
    const sdPerHour = Math.sqrt((r.reduce((s, x) => s + (x - mean) ** 2, 0) / (r.length - 1)) * 360);
    expect(sdPerHour).toBeGreaterThan(vol * 0.95);
    expect(sdPerHour).toBeLessThan(vol * 1.05);
  });

  it('jump at a scheduled event, shift drift for its duration, and hint ahead of time', () => {
    const m = new Market({
      assets: [{ symbol: 'X', price: 50, vol: 0 }],
      news: { per_hour: 0 },
      events: [
        { asset: 'X', at_ms: 600_000, kind: 'jump', size: Math.log(1.1), announce_lead_ms: 300_000 },
        { asset: 'X', at_ms: 7 * HOUR, kind: 'jump', size: 0.01, announce_lead_ms: 2 * HOUR },
        { asset: 'X', at_ms: 1_800_000, kind: 'drift', size: -0.2, duration_ms: 900_000 },
      ],
    });
    m.join('a');
    m.advanceTo(299_000);
    expect(m.observe('a').news).toEqual([]);
    m.advanceTo(300_000);
    const hint = m.observe('a').news[0];
    expect(hint).toMatchObject({ asset: 'X', hint: true, eventId: 0 });
    m.advance(HOUR);
    expect(m.price('X', 599_000)).toBe(50);
    expect(m.price('X', 600_000)).toBeCloseTo(55, 10);
    expect(Math.log(m.price('X', 2_700_000) / m.price('X', 1_800_000))).toBeCloseTo(-0.2 * 0.25, 10);
    expect(m.price('X', 3_600_000)).toBeCloseTo(m.price('X', 2_700_000), 10);
    expect(m.headlines(600_000, 600_000)[0].text).toBe('X (X) jumps 10.0% on surprise results');
    // A scheduled hint may come further ahead than random ones (news.lead_max_ms, 15 min).
    m.advanceTo(5 * HOUR);
    expect(m.observe('a').news[0]).toMatchObject({ eventId: 1, hint: true, atMs: 5 * HOUR });
  });

  it('drops what is older than retain_ms, with a clear error', () => {
    const m = new Market({ retain_ms: HOUR, outcome_horizon_ms: 60_000 });
    m.advance(5 * HOUR);
    expect(() => m.price('ACME', 0)).toThrow(/older than retain_ms/);
    expect(() => m.price('ACME', 6 * HOUR)).toThrow(/in the future/);
    expect(m.price('ACME', 4.5 * HOUR)).toBeGreaterThan(0);
    expect(() => windowReport(m, 0, HOUR)).toThrow(/^windowReport: the window starts at 0 ms, before the oldest data kept/);
  });
});

describe('accounts', () => {
  const flat = () => {
    const m = new Market({ assets: [{ symbol: 'X', price: 100, vol: 0 }], news: { per_hour: 0 }, fee_bps: 10, initial_cash: 1000 });
    m.join('a');
    return m;
  };

  it('fill market orders with fees, average cost and realised P&L', () => {
    const m = new Market({
      assets: [{ symbol: 'X', price: 100, vol: 0 }],
      news: { per_hour: 0 },
      fee_bps: 10,
      initial_cash: 1000,
      events: [{ asset: 'X', at_ms: 60_000, kind: 'jump', size: Math.log(1.2) }],
    });
    m.join('a');
    expect(m.act('a', { kind: 'buy', asset: 'X', size: 4 })).toMatchObject({ status: 'filled', fill: { price: 100, fee: 0.4 } });
    m.advance(60_000);
    const r = m.act('a', { kind: 'sell', asset: 'X', size: 3 });
    expect(r.fill!.realised).toBeCloseTo(60, 9);
    const o = m.observe('a');
    expect(o.cash).toBeCloseTo(1000 - 400.4 + 360 - 0.36, 9);
    expect(o.positions).toEqual([{ asset: 'X', size: 1, avgCost: 100, price: expect.closeTo(120, 9), unrealised: expect.closeTo(20, 9) }]);
    expect(o.pnl).toBeCloseTo(60 + 20 - 0.76, 9);
    expect(o.last).toBe('SELL 3 X filled at 120.00 (fee 0.36)');
    expect(m.equity('a', 30_000)).toBeCloseTo(1000 - 0.4, 9);
  });

  it('refuse bad orders with the reason and change nothing', () => {
    const m = flat();
    m.act('a', { kind: 'buy', asset: 'X', size: 2 });
    const before = JSON.stringify(m.observe('a'));
    const cases: [unknown, RegExp][] = [
      [{ kind: 'sell', asset: 'X', size: 3 }, /^cannot sell 3 X: holding 2 \(no short selling\)$/],
      [{ kind: 'buy', asset: 'Y', size: 1 }, /^unknown asset "Y" \(assets: X\)$/],
      [{ kind: 'buy', asset: 'X', size: Number.NaN }, /^size must be a positive finite number, got NaN$/],
      [{ kind: 'buy', asset: 'X', size: -1 }, /^size must be a positive finite number/],
      [{ kind: 'buy', asset: 'X', size: 9 }, /^insufficient cash: buying 9 X at 100.00 costs 900.90 with fees, cash is 799.80$/],
      [{ kind: 'short', asset: 'X', size: 1 }, /^kind must be buy, sell or hold/],
      [null, /^action must be an object/],
    ];
    for (const [action, reason] of cases) {
      const r = m.act('a', action as never);
      expect(r.status).toBe('refused');
      expect(r.reason).toMatch(reason);
      const after = m.observe('a');
      expect(after.last).toContain('refused: ');
      expect(JSON.stringify({ ...after, last: null })).toBe(JSON.stringify({ ...JSON.parse(before), last: null }));
    }
    expect(() => m.act('nobody', { kind: 'hold' })).toThrow('unknown agent "nobody": call join first');
  });
});

describe('text interface', () => {
  const syms = ['ACME', 'BOLT'];
  it('reads one action, leniently in form and exactly in content', () => {
    const ok: [string, unknown][] = [
      ['BUY 3 ACME', { kind: 'buy', asset: 'ACME', size: 3 }],
      ['  sell 1.5 bolt.  ', { kind: 'sell', asset: 'BOLT', size: 1.5 }],
      ['I think prices will rise.\nAction: **BUY 2 ACME**\n', { kind: 'buy', asset: 'ACME', size: 2 }],
      ['```\nHOLD\n```', { kind: 'hold' }],
      ['hold', { kind: 'hold' }],
      ['BUY 2 ACME\nBUY 2 ACME', { kind: 'buy', asset: 'ACME', size: 2 }],
    ];
    for (const [text, action] of ok) expect(parseAction(text, syms)).toEqual({ ok: true, action });
    const bad: [string, RegExp][] = [
      ['', /^no action found/],
      ['I would buy some stock', /^no action found/],
      ['BUY ACME 3', /^size must be a positive number, got "ACME"/],
      ['BUY -3 ACME', /^size must be a positive number/],
      ['BUY 1e3 ACME', /^size must be a positive number/],
      ['BUY 0 ACME', /^size must be a positive number/],
      ['SELL 1 ZETA', /^unknown asset ZETA \(assets: ACME, BOLT\)/],
      ['BUY 1 ACME\nSELL 1 BOLT', /^more than one action \(BUY 1 ACME; SELL 1 BOLT\)/],
      ['HOLD\nBUY 1 ACME', /^more than one action/],
    ];
    for (const [text, error] of bad) {
      const p = parseAction(text, syms);
      expect(p.ok).toBe(false);
      if (!p.ok) expect(p.error).toMatch(error);
    }
  });

  it('never throws, and only ever returns well-formed actions, on arbitrary text', () => {
    const rng = new Rng(9);
    const words = [
      'BUY',
      'sell',
      'Hold',
      'ACME',
      'bolt',
      'ZETA',
      '3',
      '0',
      '-2',
      '1.5',
      '.5',
      'NaN',
      'Infinity',
      '1e3',
      'Action:',
      '**',
      '`',
      '.',
      '\n',
      ' ',
      '\t',
      'ü',
      '{}',
    ];
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const text = Array.from({ length: 1 + rng.int(6) }, () => words[rng.int(words.length)]).join(rng.uniform() < 0.5 ? ' ' : '');
      const p = parseAction(text, syms);
      if (!p.ok) continue;
      accepted++;
      const a = p.action;
      if (a.kind !== 'hold') {
        expect(syms).toContain(a.asset);
        expect(Number.isFinite(a.size) && a.size > 0).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(10);
  });

  it('turns a malformed answer into an observation, never an exception', () => {
    const m = new Market({ seed: 2 });
    m.join('lm');
    const cash = m.observe('lm').cash;
    expect(actText(m, 'lm', 'BUY lots of ACME please')).toMatchObject({ status: 'refused' });
    const obs = m.observe('lm');
    expect(obs.cash).toBe(cash);
    expect(obs.last).toMatch(/^"BUY lots of ACME please" refused: unreadable action: no action found/);
    const prompt = renderPrompt(obs);
    expect(prompt).toContain('Your previous action: "BUY lots of ACME please" refused');
    expect(prompt).toContain('- ACME (Acme Corp): ');
    expect(prompt).toContain('Answer with exactly one line: BUY <size> <ASSET>, SELL <size> <ASSET> or HOLD.');
    expect(actText(m, 'lm', 'BUY 1 ACME')).toMatchObject({ status: 'filled' });
  });
});

describe('outcomes', () => {
  it('record what happened after each decision, apart from what the agent saw', () => {
    const m = new Market({
      seed: 4,
      news: { per_hour: 0 },
      outcome_horizon_ms: 600_000,
      events: [{ asset: 'BOLT', at_ms: 300_000, kind: 'jump', size: -0.2, announce_lead_ms: 60_000 }],
    });
    m.join('a');
    m.advance(100_000);
    m.act('a', { kind: 'buy', asset: 'BOLT', size: 10 });
    const [d] = m.decisions({ agentId: 'a' });
    expect(d.outcome).toBeNull();
    m.advance(599_999);
    expect(m.decisions()[0].outcome).toBeNull();
    m.advance(1);
    const o = m.decisions()[0].outcome!;
    expect(o.prices.BOLT).toBe(m.price('BOLT', 700_000));
    expect(o.returns.BOLT).toBeCloseTo(m.price('BOLT', 700_000) / d.prices.BOLT - 1, 12);
    expect(o.returns.BOLT).toBeLessThan(-0.1);
    expect(o.news).toEqual([expect.objectContaining({ asset: 'BOLT', atMs: 300_000, kind: 'jump', hinted: false })]);
  });
});

describe('simulation', () => {
  it('replays exactly for a seed, and differs for another', async () => {
    const a = await transcript(11);
    expect(await transcript(11)).toBe(a);
    expect(await transcript(12)).not.toBe(a);
  });

  it('replays the same whether run in one call or several', async () => {
    const whole = fiveAgents(3);
    await whole.run(HOUR);
    const parts = fiveAgents(3);
    await parts.run(1_000);
    await parts.run(HOUR / 2 - 1_000);
    await parts.run(HOUR / 2);
    expect(JSON.stringify(parts.market.decisions())).toBe(JSON.stringify(whole.market.decisions()));
  });

  it('runs a simulated hour of 5 agents in well under a second', async () => {
    const sim = fiveAgents(5);
    const t0 = performance.now();
    const decisions = await sim.run(HOUR);
    const ms = performance.now() - t0;
    expect(decisions).toBeGreaterThan(250);
    expect(ms).toBeLessThan(500);
  });

  it('reports a window with P&L, risk and each step outcome', async () => {
    const sim = fiveAgents(21);
    await sim.run(HOUR);
    expect(() => windowReport(sim.market, 0, HOUR)).toThrow(/outcomes of the window are known at 4200000 ms/);
    await sim.run(600_000);
    const w = windowReport(sim.market, 0, HOUR);
    expect(w.windowId).toBe('2026-01-01T00:00Z');
    expect(w.trajectories.map((t) => t.agentId)).toEqual(['hold', 'random', 'momentum', 'reversion', 'news']);
    for (const t of w.trajectories) {
      expect(t.finalPnl).toBeCloseTo(t.metrics.endEquity - t.metrics.startEquity, 9);
      expect(t.metrics.endEquity).toBeCloseTo(sim.market.equity(t.agentId, HOUR), 9);
      expect(t.steps.every((s) => s.atMs < HOUR)).toBe(true);
    }
    expect(w.context.outcomes.length).toBe(w.trajectories.reduce((s, t) => s + t.steps.length, 0));
    const trade = w.context.outcomes.find((o) => o.asset !== null)!;
    expect(typeof trade.forwardReturn).toBe('number');
    expect(w.context.assets.map((a) => a.asset)).toEqual(['ACME', 'BOLT', 'CRUX', 'DUNE']);
  });

  it('runs on the wall clock with asynchronous, slow agents', async () => {
    const m = new Market({ seed: 1 });
    const lm = {
      id: 'lm',
      paceMs: 5_000,
      act: async () => {
        await new Promise((r) => setTimeout(r, 5));
        return 'BUY 1 ACME';
      },
    };
    const sim = new Simulation(m).add(lm).add(momentum({ id: 'm', paceMs: 5_000 }));
    const n = await sim.runRealtime(60_000, { speed: 300 });
    expect(m.now).toBe(60_000);
    expect(n).toBeGreaterThan(2);
    expect(m.decisions({ agentId: 'lm' }).some((d) => d.status === 'filled')).toBe(true);
  });
});
