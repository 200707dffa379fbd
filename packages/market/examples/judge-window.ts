/**
 * Five scripted traders for a simulated hour, then the hour as a window scored by the heuristic
 * judge (and by a chat judge when JUDGE_MODEL is set, against OPENAI_BASE_URL / OPENAI_API_KEY).
 *
 *   npx tsx --conditions=source packages/market/examples/judge-window.ts [seed]
 */
import { CachedJudge, ChatJudge, HeuristicJudge, type Judge, JudgeMeter, MemoryScoreCache } from '@rlmesh/judge';
import {
  buyAndHold,
  Market,
  meanReversion,
  momentum,
  newsFollower,
  randomTrader,
  renderPrompt,
  Simulation,
  windowReport,
} from '@rlmesh/market';

const HOUR = 3_600_000;

async function main() {
  const seed = Number(process.argv[2] ?? 1);
  const market = new Market({ seed });
  const sim = new Simulation(market)
    .add(buyAndHold({ id: 'hold' }))
    .add(randomTrader({ id: 'random', seed }))
    .add(momentum({ id: 'momentum' }))
    .add(meanReversion({ id: 'reversion' }))
    .add(newsFollower({ id: 'news' }));
  const t0 = performance.now();
  const decisions = await sim.run(HOUR);
  console.log(`one simulated hour, 5 agents: ${decisions} decisions in ${(performance.now() - t0).toFixed(1)} ms`);
  console.log(`\nwhat the news trader saw last:\n${renderPrompt(market.observe('news'))}\n`);

  await sim.run(market.config.outcome_horizon_ms); // the last decisions' outcomes come in
  const window = windowReport(market, 0, HOUR);
  for (const a of window.context.assets)
    console.log(
      `${a.asset}: ${a.startPrice.toFixed(2)} -> ${a.endPrice.toFixed(2)} (${(a.return * 100).toFixed(2)}%), ${a.events.length} events`,
    );

  const judges: Judge[] = [new HeuristicJudge()];
  if (process.env.JUDGE_MODEL) judges.push(new ChatJudge({ prices: { inputPerMillion: 0.15, outputPerMillion: 0.6 } }));
  const cache = new MemoryScoreCache();
  for (const inner of judges) {
    const meter = new JudgeMeter();
    const r = meter.record(await new CachedJudge(inner, cache).score(window));
    console.log(`\n${inner.id}`);
    if (r.kind === 'skipped') console.log(`  skipped: ${r.reason}`);
    else
      for (const s of r.scores) {
        const t = window.trajectories.find((x) => x.id === s.id)!;
        console.log(
          `  ${t.agentId.padEnd(10)} P&L ${t.finalPnl.toFixed(2).padStart(8)}  score ${s.score.toFixed(3)}  ${s.explanation ?? ''}`,
        );
      }
    console.log(`  meter: ${JSON.stringify(meter)}`);
  }
}

main();
