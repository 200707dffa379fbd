/**
 * `rlmesh babylon`'s held-out comparison. The initial and the trained model each trade their own
 * market of every held-out seed, beside the same scripted traders and under the names training used
 * (`lm-<k>`), since the prompt names the trader: both models see exactly the training-time prompt
 * distribution. Agents are price takers, so the two markets of a seed quote identical prices (checked
 * window by window here, and in @rlmesh/market's replay test), and with the same names in the same
 * join order lm-<k> decides at the same instants in both: P&L pairs by (seed, hour, trader index).
 */
import { type Agent, type Market, Simulation, type WindowTrajectory, windowReport } from '@rlmesh/market';

const HOUR = 3_600_000;

export type HeldOutModel = 'initial' | 'trained';

export interface HeldOutPnl {
  /** P&L per LM trader-hour, in the same (seed, hour, trader) order for both models. */
  initial: number[];
  trained: number[];
  /** trained - initial, pair by pair. */
  difference: number[];
  /** [refused decisions, decisions] of each model's LM traders. */
  refused: Record<HeldOutModel, [number, number]>;
}

export interface HeldOutOptions {
  seeds: readonly number[];
  hours: number;
  market(seed: number): Market;
  /** Every agent of a held-out market of `seed` for `model`: the scripted ones, then the LM traders. */
  agents(seed: number, model: HeldOutModel): Agent[];
  /** The LM traders' ids (the same in both markets). */
  lmIds: readonly string[];
}

/** One model's market of one seed: its hourly windows' trajectories by agent, and each window's asset outcomes. */
async function trade(o: HeldOutOptions, seed: number, model: HeldOutModel) {
  const market = o.market(seed);
  const sim = new Simulation(market);
  for (const a of o.agents(seed, model)) sim.add(a);
  const hours: { byAgent: Map<string, WindowTrajectory>; prices: string }[] = [];
  for (let w = 0; w < o.hours * HOUR; w += HOUR) {
    await sim.run(w + HOUR + market.config.outcome_horizon_ms - market.now);
    const report = windowReport(market, w, w + HOUR);
    hours.push({ byAgent: new Map(report.trajectories.map((t) => [t.agentId, t])), prices: JSON.stringify(report.context.assets) });
  }
  return hours;
}

export async function heldOutPnl(o: HeldOutOptions): Promise<HeldOutPnl> {
  const out: HeldOutPnl = { initial: [], trained: [], difference: [], refused: { initial: [0, 0], trained: [0, 0] } };
  for (const seed of o.seeds) {
    const initial = await trade(o, seed, 'initial');
    const trained = await trade(o, seed, 'trained');
    for (const [h, a] of initial.entries()) {
      const b = trained[h];
      // The pairing rests on this: a difference here would mean an agent moved a price.
      if (a.prices !== b.prices)
        throw new Error(`held-out seed ${seed}, hour ${h}: the initial and the trained model's markets quote different prices`);
      for (const id of o.lmIds) {
        const x = a.byAgent.get(id);
        const y = b.byAgent.get(id);
        if (!x || !y) continue;
        out.initial.push(x.finalPnl);
        out.trained.push(y.finalPnl);
        out.difference.push(y.finalPnl - x.finalPnl);
        out.refused.initial[0] += x.metrics.refused;
        out.refused.initial[1] += x.steps.length;
        out.refused.trained[0] += y.metrics.refused;
        out.refused.trained[1] += y.steps.length;
      }
    }
  }
  return out;
}
