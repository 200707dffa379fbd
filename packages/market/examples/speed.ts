/**
 * How fast the market simulates: five scripted agents, one simulated hour per run, then one day.
 *
 *   npx tsx --conditions=source packages/market/examples/speed.ts
 */
import { buyAndHold, Market, meanReversion, momentum, newsFollower, randomTrader, Simulation } from '@rlmesh/market';

const HOUR = 3_600_000;

function five(seed: number): Simulation {
  return new Simulation(new Market({ seed }))
    .add(buyAndHold({ id: 'hold' }))
    .add(randomTrader({ id: 'random', seed }))
    .add(momentum({ id: 'momentum' }))
    .add(meanReversion({ id: 'reversion' }))
    .add(newsFollower({ id: 'news' }));
}

async function main() {
  const times: number[] = [];
  for (let seed = 1; seed <= 10; seed++) {
    const sim = five(seed);
    const t0 = performance.now();
    await sim.run(HOUR);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(`one simulated hour, 5 agents, 10 seeds: median ${times[5].toFixed(1)} ms, max ${times[9].toFixed(1)} ms`);
  const sim = five(1);
  const t0 = performance.now();
  const n = await sim.run(24 * HOUR);
  console.log(`one simulated day, 5 agents: ${n} decisions in ${(performance.now() - t0).toFixed(0)} ms`);
}

main();
