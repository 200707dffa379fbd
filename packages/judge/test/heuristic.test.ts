import { HeuristicJudge, type JudgeInput, JudgeInputError, type JudgeTrajectory, ranks } from '@rlmesh/judge';
import { describe, expect, it } from 'vitest';

const trade = (side: 'buy' | 'sell', status = 'filled') => ({ action: `${side.toUpperCase()} 1 ACME`, side, asset: 'ACME', status });

function window(trajectories: JudgeTrajectory[], returns: Record<string, number[]>): JudgeInput {
  const outcomes = Object.entries(returns).flatMap(([id, rs]) => rs.map((r, step) => ({ trajectoryId: id, step, forwardReturn: r })));
  return { windowId: 'w', trajectories, context: { outcomes } };
}

const scoresOf = async (input: JudgeInput) => {
  const r = await new HeuristicJudge().score(input);
  if (r.kind !== 'scored') throw new Error('skipped');
  return Object.fromEntries(r.scores.map((s) => [s.id, s.score]));
};

describe('HeuristicJudge', () => {
  it('ranks with ties sharing their mean rank', () => {
    expect(ranks([3, 1, 2])).toEqual([3, 1, 2]);
    expect(ranks([5, 5, 1, 9])).toEqual([2.5, 2.5, 1, 4]);
    expect(ranks([0, 0, 0])).toEqual([2, 2, 2]);
  });

  it('scores a clearly better trajectory higher', async () => {
    const good = {
      id: 'good',
      agentId: 'g',
      finalPnl: 300,
      steps: [trade('buy'), trade('sell')],
      metrics: { maxDrawdown: 0.01, startEquity: 10_000 },
    };
    const poor = {
      id: 'poor',
      agentId: 'p',
      finalPnl: -200,
      steps: [trade('buy'), trade('sell', 'refused')],
      metrics: { maxDrawdown: 0.05, startEquity: 10_000 },
    };
    const meh = { id: 'meh', agentId: 'm', finalPnl: 10, steps: [], metrics: { maxDrawdown: 0, startEquity: 10_000 } };
    const s = await scoresOf(window([poor, good, meh], { good: [0.02, -0.01], poor: [-0.03, 0.01] }));
    expect(s.good).toBeGreaterThan(s.meh);
    expect(s.meh).toBeGreaterThan(s.poor);
    for (const v of Object.values(s)) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('prefers good timing when P&L ties, and lets drawdown cost P&L rank', async () => {
    const a = { id: 'a', agentId: 'a', finalPnl: 50, steps: [trade('buy')] };
    const b = { id: 'b', agentId: 'b', finalPnl: 50, steps: [trade('buy')] };
    const s = await scoresOf(window([a, b], { a: [0.01], b: [-0.01] }));
    expect(s.a).toBeGreaterThan(s.b);
    const risky = { id: 'risky', agentId: 'r', finalPnl: 60, steps: [], metrics: { maxDrawdown: 0.2, startEquity: 1000 } };
    const calm = { id: 'calm', agentId: 'c', finalPnl: 50, steps: [], metrics: { maxDrawdown: 0, startEquity: 1000 } };
    const t = await scoresOf(window([risky, calm], {}));
    expect(t.calm).toBeGreaterThan(t.risky);
  });

  it('weighs timing by the money traded', async () => {
    const sized = (size: number) => ({ ...trade('buy'), size, price: 10 });
    // a: a big good trade and a small bad one; b: the reverse. Unweighted, their timing would tie.
    const a = { id: 'a', agentId: 'a', finalPnl: 0, steps: [sized(100), sized(1)] };
    const b = { id: 'b', agentId: 'b', finalPnl: 0, steps: [sized(1), sized(100)] };
    const s = await scoresOf(window([a, b], { a: [0.02, -0.02], b: [0.02, -0.02] }));
    expect(s.a).toBeGreaterThan(s.b);
  });

  it('gives equal trajectories equal scores, one alone 0.5, and the same answer every time', async () => {
    const t = (id: string) => ({ id, agentId: id, finalPnl: 5, steps: [trade('buy')] });
    const input = window([t('x'), t('y')], { x: [0.01], y: [0.01] });
    const s = await scoresOf(input);
    expect(s.x).toBe(s.y);
    expect(await scoresOf(input)).toEqual(s);
    expect(await scoresOf(window([t('solo')], {}))).toEqual({ solo: 0.5 });
  });

  it('refuses a malformed window naming the field', async () => {
    const t = { id: 'a', agentId: 'a', finalPnl: 1, steps: [] };
    const judge = new HeuristicJudge();
    await expect(judge.score({ windowId: 'w', trajectories: [t, { ...t }], context: {} })).rejects.toThrow(
      'trajectories.1.id: "a" is used twice',
    );
    await expect(judge.score({ windowId: 'w', trajectories: [{ ...t, finalPnl: Number.NaN }], context: {} })).rejects.toThrow(
      JudgeInputError,
    );
    await expect(
      judge.score({ windowId: 'w', trajectories: [t], context: { outcomes: [{ trajectoryId: 'b', step: 0, forwardReturn: 0 }] } }),
    ).rejects.toThrow(/^context\.outcomes\.0\.trajectoryId: names no trajectory of the window/);
    expect(() => new HeuristicJudge({ weights: { pnl: -1 } })).toThrow('weights.pnl: must be a finite number >= 0, got -1');
  });
});
