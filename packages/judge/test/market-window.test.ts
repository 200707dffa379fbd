/**
 * The judges on real market windows (the market package's report is the judges' input by structure),
 * and the contract every judge keeps: one score in [0, 1] per trajectory id, in the window's order.
 */
import { CachedJudge, ChatJudge, HeuristicJudge, type Judge, type JudgeInput, MemoryScoreCache } from '@rlmesh/judge';
import { type Agent, buyAndHold, Market, momentum, newsFollower, randomTrader, Simulation, windowReport } from '@rlmesh/market';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOpenAI, startFakeOpenAI } from './fake-openai';

const HOUR = 3_600_000;
const MARKET = { seed: 5, outcome_horizon_ms: 300_000 };

/** Trades on the future: it reads prices 5 minutes ahead from a second market with the same seed. */
function oracle(future: Market): Agent {
  return {
    id: 'oracle',
    paceMs: 60_000,
    act(obs) {
      future.advanceTo(Math.max(future.now, obs.atMs + 300_000));
      const moves = obs.assets.map((a) => ({ a, r: future.price(a.symbol, obs.atMs + 300_000) / a.price - 1 }));
      const falling = moves.find((m) => m.r < 0 && obs.positions.some((p) => p.asset === m.a.symbol));
      if (falling) return `SELL ${obs.positions.find((p) => p.asset === falling.a.symbol)!.size} ${falling.a.symbol}`;
      const best = moves.reduce((x, y) => (y.r > x.r ? y : x));
      const size = Math.floor((obs.cash * 0.9) / best.a.price);
      return best.r > 0.001 && size > 0 ? `BUY ${size} ${best.a.symbol}` : 'HOLD';
    },
  };
}

async function marketWindow(): Promise<JudgeInput> {
  const sim = new Simulation(new Market(MARKET))
    .add(oracle(new Market(MARKET)))
    .add(buyAndHold({ id: 'hold' }))
    .add(randomTrader({ id: 'random', seed: 2 }))
    .add(momentum({ id: 'momentum' }))
    .add(newsFollower({ id: 'news' }));
  await sim.run(HOUR + 300_000);
  return windowReport(sim.market, 0, HOUR);
}

let server: FakeOpenAI;
let input: JudgeInput;
beforeAll(async () => {
  server = await startFakeOpenAI(['good']);
  input = await marketWindow();
});
afterAll(() => server.close());

describe('judges on a market window', () => {
  const judges: [string, () => Judge][] = [
    ['heuristic', () => new HeuristicJudge()],
    ['chat', () => new ChatJudge({ model: 'm', baseURL: server.url }, {})],
    ['cached heuristic', () => new CachedJudge(new HeuristicJudge(), new MemoryScoreCache())],
  ];
  it.each(judges)('%s: one score in [0, 1] per trajectory, in order', async (_, make) => {
    const r = await make().score(input);
    expect(r.kind).toBe('scored');
    if (r.kind !== 'scored') return;
    expect(r.windowId).toBe('2026-01-01T00:00Z');
    expect(r.scores.map((s) => s.id)).toEqual(input.trajectories.map((t) => t.id));
    for (const s of r.scores) expect(s.score >= 0 && s.score <= 1).toBe(true);
  });

  it('the heuristic judge puts the agent that saw the future first', async () => {
    const r = await new HeuristicJudge().score(input);
    if (r.kind !== 'scored') throw new Error('skipped');
    const oracleScore = r.scores.find((s) => s.id.endsWith('/oracle'))!.score;
    expect(oracleScore).toBe(Math.max(...r.scores.map((s) => s.score)));
    expect(oracleScore).toBeGreaterThan(0.9);
    const pnl = input.trajectories.find((t) => t.agentId === 'oracle')!.finalPnl;
    expect(pnl).toBeGreaterThan(0);
  });
});
