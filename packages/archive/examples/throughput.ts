/**
 * Recording throughput: N agents in parallel, each recording trajectories of S steps and C LLM calls
 * into one window, then the window query, a dropout pass and the ART export of that window.
 *   npx tsc -b packages/archive && npx tsx packages/archive/examples/throughput.ts [target] [agents] [per agent] [steps] [calls]
 * target: memory (default), postgres://..., or a PGlite data directory. Writes into the window of
 * 2000-01-01T00:00Z, which it empties first, so a server database is left as it was otherwise.
 */
import { openArchive } from '@rlmesh/archive';

async function main() {
  const [target = 'memory', agents = '8', perAgent = '50', steps = '20', calls = '5'] = process.argv.slice(2);
  const [n, k, s, c] = [agents, perAgent, steps, calls].map(Number);
  const archive = await openArchive(target);
  const window = '2000-01-01T00:00Z';
  await archive.db.query('DELETE FROM trajectories WHERE window_id = $1', [window]);
  const startedAt = new Date('2000-01-01T00:10:00Z');
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, a) => {
      for (let i = 0; i < k; i++) {
        const id = archive.startTrajectory({ agentId: `agent-${a}`, startedAt });
        for (let j = 0; j < s; j++)
          archive.appendStep(id, {
            observation: { price: 100 + j, book: [1, 2, 3] },
            action: { buy: j % 3 },
            reward: 0.01 * j,
            at: startedAt,
          });
        for (let j = 0; j < c; j++) {
          await archive.recordLlmCall({
            trajectoryId: id,
            model: 'm',
            messages: [{ role: 'user', content: `price ${100 + j}; what now?` }],
            completion: 'buy 1',
            logprobs: [
              { token: 'buy', logprob: -0.1 },
              { token: ' 1', logprob: -0.2 },
            ],
            at: startedAt,
          });
        }
        await archive.endTrajectory(id, { finalPnl: a - i, endedAt: new Date('2000-01-01T00:20:00Z') });
      }
    }),
  );
  const record = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const windows = await archive.windowsWithAgents(n, { from: window, to: '2000-01-01T01:00Z' });
  const groups = await archive.trainingGroups({
    minAgents: n,
    target: Math.ceil((n * k) / 2),
    seed: 1,
    from: window,
    to: '2000-01-01T01:00Z',
  });
  const query = (performance.now() - t1) / 1000;
  const t2 = performance.now();
  const jsonl = await archive.exportWindowArt(window);
  const exportS = (performance.now() - t2) / 1000;
  console.log(
    `${archive.db.kind}: ${n * k} trajectories (${s} steps, ${c} LLM calls each) by ${n} agents in ${record.toFixed(2)} s = ` +
      `${((n * k) / record).toFixed(0)} trajectories/s; window query + dropout (${groups.kept}/${groups.available}, ` +
      `${windows.length} window) ${query.toFixed(2)} s; ART export ${jsonl.length} bytes in ${exportS.toFixed(2)} s`,
  );
  await archive.db.query('DELETE FROM trajectories WHERE window_id = $1', [window]);
  await archive.close();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
