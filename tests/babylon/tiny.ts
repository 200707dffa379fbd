/**
 * The tiny `rlmesh babylon` config the loop tests share (2 iterations of two simulated hours, a
 * 1-layer GPT-2), and the checks every backend's loop must pass: results and what the archive holds.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Archive } from '@rlmesh/archive';
import { expect } from 'vitest';
import type { BabylonResults } from '../../packages/cli/src/babylon';

export const TINY = {
  seed: 3,
  // Less retained data than an iteration's hours: each window must be read as soon as it is known.
  market: { history_points: 4, retain_ms: 4_500_000 },
  agents: { scripted: 'momentum,mean-reversion,news-follower', lm: 2, pace_ms: 600_000, max_tokens: 6 },
  model: { vocab_size: 800, n_positions: 512, n_embd: 16, n_layer: 1, n_head: 2 },
  sft: { hours: 1, steps: 6, micro_batch_size: 8 },
  loop: { iterations: 2, hours: 2, calls_per_trajectory: 2 },
  algo: { learning_rate: 0.001 },
  eval: { seeds: 1, hours: 1, bootstrap: 200 },
  threads: 1,
};

/** The results of TINY's two iterations: one update per window, two per iteration, each served next. */
export function expectTinyResults(r: BabylonResults, out: string): void {
  expect(r.iterations.map((m) => m.iteration)).toEqual([1, 2]);
  for (const [i, m] of r.iterations.entries()) {
    expect(m.version).toBe(1 + 2 * i);
    expect(m.windows).toBe(2);
    expect(m.lm_decisions).toBeGreaterThan(0);
    expect(m.prompt_tokens).toBeGreaterThan(0);
    expect(m.completion_tokens).toBeGreaterThan(0);
    expect(m.grpo.trainedWindows).toBe(2);
    expect(m.grpo.version).toBe(`trader-v${3 + 2 * i}`);
    expect(m.grpo.skipped).toEqual({});
  }
  // One held-out seed, one hour, two LM traders per model: two pairs.
  expect(r.eval.initial.n).toBe(2);
  expect(r.eval.trained.n).toBe(2);
  expect(r.eval.difference.n).toBe(2);
  expect(r.eval.difference.lo).toBeLessThanOrEqual(r.eval.difference.hi);
  expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).iterations).toHaveLength(2);
  expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('Held-out markets');
}

/**
 * What TINY's loop leaves in the archive: four windows of 5 agents, each agent once per window, each
 * LM decision's call once, two trained models with checkpoints and batches, and the calls of
 * `servedV3` (window index) answered by version 3. Returns the windows.
 */
export async function expectTinyArchive(archive: Archive, servedV3: number) {
  const windows = await archive.windowsWithAgents(1);
  expect(windows.map((w) => [w.agents, w.trajectories])).toEqual([
    [5, 5],
    [5, 5],
    [5, 5],
    [5, 5],
  ]);
  const models = await archive.trainedModels();
  expect(models.map((m) => m.version).sort()).toEqual(['trader-v3', 'trader-v5']);
  for (const m of models) {
    expect(existsSync(join(m.path, 'config.json'))).toBe(true);
    expect((await archive.trainingBatch(m.batchId as string))?.status).toBe('trained');
  }
  for (const w of windows) {
    const calls = await archive.llmCallsInWindow(w.windowId);
    for (const t of await archive.trajectoriesOf(w.windowId)) {
      if (!t.agentId.startsWith('lm-')) continue;
      // Each LM decision is one call of the endpoint, recorded once, in the window of its time.
      const times = (xs: { at: Date | string }[]) => xs.map((x) => new Date(x.at).toISOString());
      expect({ window: w.windowId, agent: t.agentId, calls: times(calls.filter((c) => c.agentId === t.agentId)) }).toEqual({
        window: w.windowId,
        agent: t.agentId,
        calls: times(t.steps),
      });
    }
  }
  expect((await archive.llmCallsInWindow(windows[0].windowId)).every((c) => c.model === 'trader@v1')).toBe(true);
  expect((await archive.llmCallsInWindow(windows[servedV3].windowId)).some((c) => c.model === 'trader@v3')).toBe(true);
  return windows;
}
