/**
 * A local judge without a model: deterministic, free, and a baseline for the chat judge.
 *
 * Three components per trajectory, each turned into a rank within the window:
 *   pnl      = finalPnl - riskAversion * maxDrawdown * startEquity   (risk-adjusted P&L)
 *   timing   = sum over filled trades of side * forwardReturn * value / sum of value
 *              (side +1 buy, -1 sell, value = size * price when both are given, else 1:
 *              did the asset move the traded way over the horizon, money-weighted?  0 with no trades)
 *   validity = 1 - refused steps / steps                              (1 with no steps)
 *   score    = sum_c w_c * (rank_c - 1) / (n - 1) / sum_c w_c
 * Ties share their mean rank, so equal trajectories get equal scores; one trajectory alone gets 0.5.
 */
import { checkInput, type Judge, type JudgeInput, type JudgeResult, type JudgeTrajectory, noUsage, type StepOutcome } from './types';

export interface HeuristicOptions {
  weights?: { pnl?: number; timing?: number; validity?: number };
  /** Cost of a drawdown, as a share of its size in money. */
  riskAversion?: number;
}

/** Ranks from 1 (lowest) to n; tied values share the mean of their ranks. */
export function ranks(values: number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) out[order[k][1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return out;
}

interface Components {
  pnl: number;
  timing: number;
  trades: number;
  validity: number;
  refused: number;
}

function components(t: JudgeTrajectory, outcomes: Map<string, StepOutcome>, riskAversion: number): Components {
  const dd = t.metrics?.maxDrawdown ?? 0;
  const equity = t.metrics?.startEquity ?? 0;
  let edge = 0;
  let weight = 0;
  let trades = 0;
  let refused = 0;
  t.steps.forEach((s, i) => {
    if (s.status === 'refused') refused++;
    if ((s.side !== 'buy' && s.side !== 'sell') || (s.status !== undefined && s.status !== 'filled')) return;
    const r = outcomes.get(`${t.id}\u0000${i}`)?.forwardReturn;
    if (r === null || r === undefined) return;
    const value = s.size !== undefined && s.price !== undefined ? s.size * s.price : 1;
    edge += (s.side === 'buy' ? 1 : -1) * r * value;
    weight += value;
    trades++;
  });
  return {
    pnl: t.finalPnl - riskAversion * dd * equity,
    timing: weight > 0 ? edge / weight : 0,
    trades,
    validity: t.steps.length > 0 ? 1 - refused / t.steps.length : 1,
    refused,
  };
}

export class HeuristicJudge implements Judge {
  readonly id: string;
  private readonly w: { pnl: number; timing: number; validity: number };
  private readonly riskAversion: number;

  constructor(opts: HeuristicOptions = {}) {
    this.w = { pnl: 0.5, timing: 0.35, validity: 0.15, ...opts.weights };
    this.riskAversion = opts.riskAversion ?? 0.5;
    for (const [k, v] of Object.entries(this.w))
      if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`weights.${k}: must be a finite number >= 0, got ${v}`);
    if (!(this.w.pnl + this.w.timing + this.w.validity > 0)) throw new RangeError('weights: must not all be 0');
    if (!(this.riskAversion >= 0) || !Number.isFinite(this.riskAversion))
      throw new RangeError(`riskAversion: must be a finite number >= 0, got ${this.riskAversion}`);
    this.id = `heuristic:pnl=${this.w.pnl},timing=${this.w.timing},validity=${this.w.validity},risk=${this.riskAversion}`;
  }

  async score(input: JudgeInput): Promise<JudgeResult> {
    checkInput(input);
    const outcomes = new Map((input.context.outcomes ?? []).map((o) => [`${o.trajectoryId}\u0000${o.step}`, o]));
    const cs = input.trajectories.map((t) => components(t, outcomes, this.riskAversion));
    const n = cs.length;
    const norm = (values: number[]) => ranks(values).map((r) => (n === 1 ? 0.5 : (r - 1) / (n - 1)));
    const pnl = norm(cs.map((c) => c.pnl));
    const timing = norm(cs.map((c) => c.timing));
    const validity = norm(cs.map((c) => c.validity));
    const total = this.w.pnl + this.w.timing + this.w.validity;
    const scores = input.trajectories.map((t, i) => {
      const c = cs[i];
      const score = (this.w.pnl * pnl[i] + this.w.timing * timing[i] + this.w.validity * validity[i]) / total;
      const explanation =
        `risk-adjusted P&L ${c.pnl.toFixed(2)}, timing edge ${(c.timing * 100).toFixed(3)}% over ${c.trades} trades, ` +
        `${c.refused} of ${t.steps.length} steps refused`;
      return { id: t.id, score, explanation };
    });
    return { kind: 'scored', windowId: input.windowId, judgeId: this.id, scores, usage: noUsage(), attempts: 1, cached: false };
  }
}
