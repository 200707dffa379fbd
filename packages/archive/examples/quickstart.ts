/**
 * Five agents trade through one clock window; the archive records them, finds the window as a GRPO
 * group, applies dropout, caches a judge's scores and prints the group as ART JSONL.
 *   npx tsc -b packages/archive && npx tsx packages/archive/examples/quickstart.ts [memory | postgres://... | ./data-dir]
 */
import { openArchive } from '@rlmesh/archive';

async function main() {
  const archive = await openArchive(process.argv[2] ?? 'memory', { windowHours: 1 });
  const windowId = archive.windowOf(new Date());

  // 1. Record: start, steps and LLM calls buffer in memory; endTrajectory writes all in one transaction.
  for (let a = 0; a < 5; a++) {
    const id = archive.startTrajectory({ agentId: `agent-${a}`, modelVersion: 'gpt2-base' });
    const price = 100 + a;
    archive.appendStep(id, { observation: { asset: 'ACME', price }, action: { buy: a }, reward: 0 });
    await archive.recordLlmCall({
      trajectoryId: id,
      model: 'gpt2-base',
      messages: [
        { role: 'system', content: 'You trade ACME. Answer with a number of shares to buy.' },
        { role: 'user', content: `ACME is at ${price}.` },
      ],
      completion: String(a),
      promptTokens: 24,
      completionTokens: 1,
      latencyMs: 12,
      logprobs: [{ token: String(a), logprob: -0.7 }],
    });
    await archive.endTrajectory(id, { finalPnl: a * (95 - price) });
  }
  // 2. The ground truth the agents did not have, for the judge.
  await archive.recordMarketOutcome({ windowId, asset: 'ACME', startPrice: 100, endPrice: 95, events: ['guidance cut'] });

  // 3. Read back: windows with at least 5 agents, thinned by dropout for a batch of 4.
  console.log(await archive.windowsWithAgents(5));
  const groups = await archive.trainingGroups({ minAgents: 5, target: 4, seed: 1 });
  console.log(`dropout ${groups.rate.toFixed(2)}: kept ${groups.kept} of ${groups.available}`);
  console.log(await archive.outcomesOf(windowId));

  // 4. A judge's scores, cached by content hash, then the group as ART trajectories.
  const members = groups.windows[0].members;
  await archive.putScore(`example:${windowId}`, {
    judgeId: 'example',
    scores: members.map((t, i) => ({ trajectoryId: t.id, score: (i + 1) / members.length })),
    promptTokens: 0,
    completionTokens: 0,
    costUsd: 0,
  });
  const cached = await archive.getScore(`example:${windowId}`);
  const rewards = new Map(cached?.scores.map((s) => [s.trajectoryId, s.score]));
  process.stdout.write(await archive.exportWindowArt(windowId, { rewards }));
  await archive.close();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
