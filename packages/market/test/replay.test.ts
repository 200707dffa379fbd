/**
 * Agents are price takers: what they do never moves prices or news, so two markets of one seed
 * with different traders quote identical prices, and a market rebuilt by replaying recorded
 * decisions is the market that recorded them.
 */
import {
  type Agent,
  answerOf,
  describe as describeDecision,
  Market,
  momentum,
  newsFollower,
  randomTrader,
  replayDecisions,
  Simulation,
  windowReport,
} from '@rlmesh/market';
import { describe, expect, it } from 'vitest';

const HOUR = 3_600_000;

/** A text agent answering from a fixed list in turn: valid lines, refused orders and garbage. */
function scriptedText(id: string, answers: readonly string[], paceMs = 240_000): Agent {
  let i = 0;
  return { id, paceMs, act: () => answers[i++ % answers.length] };
}

const CAUTIOUS = ['HOLD', 'BUY 1 ACME', 'SELL 1 ACME'];
const WILD = ['BUY 50 ACME', 'I think... maybe?', 'SELL 9999 BOLT', 'BUY 2 NOPE', 'buy 3 bolt', 'HOLD\nSELL 1 ACME'];

function sim(seed: number, lmAnswers: readonly string[], extra: Agent[] = []): Simulation {
  const s = new Simulation(new Market({ seed }))
    .add(momentum({ id: 'momentum' }))
    .add(newsFollower({ id: 'news' }))
    .add(scriptedText('lm-0', lmAnswers))
    .add(scriptedText('lm-1', [...lmAnswers].reverse()));
  for (const a of extra) s.add(a);
  return s;
}

const pricesOf = (m: Market) => m.symbols.map((s) => Array.from({ length: 121 }, (_, i) => m.price(s, i * 60_000)));

describe('price takers', () => {
  it('two markets of one seed quote the same prices and news whatever their traders do', async () => {
    const a = sim(7, CAUTIOUS);
    const b = sim(7, WILD, [randomTrader({ id: 'random', seed: 1, fraction: 0.9 })]);
    await a.run(2 * HOUR);
    await b.run(2 * HOUR);
    expect(b.market.decisions({ agentId: 'lm-0' }).some((d) => d.status === 'filled')).toBe(true);
    expect(pricesOf(a.market)).toEqual(pricesOf(b.market));
    expect(a.market.headlines(0, 2 * HOUR)).toEqual(b.market.headlines(0, 2 * HOUR));
    // Same names in the same join order: the same turns, so a pair of traders decide at the same instants.
    const times = (m: Market, id: string) => m.decisions({ agentId: id }).map((d) => d.atMs);
    expect(times(b.market, 'lm-1')).toEqual(times(a.market, 'lm-1'));
    expect(b.market.equity('lm-0')).not.toBe(a.market.equity('lm-0'));
    // And a market of another seed does differ, so the comparison above can fail.
    const c = sim(8, CAUTIOUS);
    await c.run(2 * HOUR);
    expect(pricesOf(c.market)).not.toEqual(pricesOf(a.market));
  });
});

describe('replayDecisions', () => {
  it("rebuilds accounts, ledgers and each agent's last result from a window's recorded steps", async () => {
    const original = sim(5, WILD, [randomTrader({ id: 'random', seed: 2, fraction: 0.5 })]);
    await original.run(HOUR + original.market.config.outcome_horizon_ms);
    const report = windowReport(original.market, 0, HOUR);
    const recorded = report.trajectories.flatMap((t) => t.steps.map((s) => ({ agentId: t.agentId, atMs: s.atMs, action: s.action })));
    expect(recorded.some((d) => d.action.startsWith('"'))).toBe(true);

    const restored = new Market({ seed: 5 });
    for (const id of original.market.agents) restored.join(id);
    expect(replayDecisions(restored, recorded, HOUR)).toBe(recorded.length);
    for (const id of original.market.agents) {
      expect(restored.equity(id, HOUR)).toBe(original.market.equity(id, HOUR));
      const before = original.market.decisions({ agentId: id, toMs: HOUR });
      const after = restored.decisions({ agentId: id, toMs: HOUR });
      expect(after.map((d) => [d.atMs, d.status, d.reason, d.fill, d.equity])).toEqual(
        before.map((d) => [d.atMs, d.status, d.reason, d.fill, d.equity]),
      );
      // The last result, which the agent's next prompt shows.
      const last = before.at(-1);
      expect(restored.observe(id).last).toBe(last ? describeDecision(last) : null);
    }
    // The restored market continues as a simulation without joining its agents twice.
    const next = new Simulation(restored).add(momentum({ id: 'momentum' }));
    await next.run(HOUR);
    expect(restored.decisions({ agentId: 'momentum', fromMs: HOUR }).length).toBeGreaterThan(0);
    expect(() => next.add(momentum({ id: 'momentum' }))).toThrow(/already in this simulation/);
  });

  it('refuses decisions of an agent that has not joined, or outside the span', () => {
    const m = new Market({ seed: 1 });
    m.join('a');
    expect(() => replayDecisions(m, [{ agentId: 'b', atMs: 0, action: 'HOLD' }], HOUR)).toThrow(/agent "b" has not joined/);
    expect(() => replayDecisions(m, [{ agentId: 'a', atMs: HOUR, action: 'HOLD' }], HOUR)).toThrow(/outside \[0, 3600000\)/);
    expect(answerOf('"not json')).toBe('"not json');
    expect(answerOf(JSON.stringify('BUY 1 ACME\nSELL 1 ACME'))).toBe('BUY 1 ACME\nSELL 1 ACME');
  });
});
