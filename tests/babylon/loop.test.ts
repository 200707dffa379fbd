/**
 * `rlmesh babylon` end to end on a tiny config (2 iterations of two simulated hours, a 1-layer
 * GPT-2): SFT, the served model called by LM traders and recorded in a PGlite archive, windows
 * judged, GRPO by window, the new version served to the next iteration's traders, the held-out
 * comparison; then the archive, reopened, holds what the loop says it wrote.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openArchive } from '@rlmesh/archive';
import { afterAll, describe, expect, it } from 'vitest';
import { type BabylonResults, runBabylon } from '../../packages/cli/src/babylon';
import { parseBabylonConfig } from '../../packages/cli/src/babylon-config';
import { main } from '../../packages/cli/src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-babylon-loop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TINY = {
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

describe('rlmesh babylon', () => {
  it('runs the loop: recorded calls, judged windows, GRPO by window, the new version served, held-out P&L', async () => {
    const out = join(dir, 'run');
    const archivePath = join(dir, 'archive');
    const r: BabylonResults = await runBabylon(parseBabylonConfig({ ...TINY, out_dir: out, archive: archivePath }));
    expect(r.iterations).toHaveLength(2);
    for (const [i, m] of r.iterations.entries()) {
      // One update per window: two per iteration.
      expect(m.version).toBe(1 + 2 * i);
      expect(m.windows).toBe(2);
      expect(m.lm_decisions).toBeGreaterThan(0);
      expect(m.prompt_tokens).toBeGreaterThan(0);
      expect(m.completion_tokens).toBeGreaterThan(0);
      expect(m.grpo.trainedWindows).toBe(2);
      expect(m.grpo.version).toBe(`trader-v${3 + 2 * i}`);
      expect(m.grpo.skipped).toEqual({});
    }
    expect(r.eval.initial.n).toBe(2);
    expect(r.eval.difference.n).toBe(2);
    expect(r.eval.difference.lo).toBeLessThanOrEqual(r.eval.difference.hi);
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).iterations).toHaveLength(2);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('Held-out markets');

    const archive = await openArchive(archivePath, { windowHours: 1 });
    try {
      const windows = await archive.windowsWithAgents(5);
      expect(windows.map((w) => w.agents)).toEqual([5, 5, 5, 5]);
      const models = await archive.trainedModels();
      expect(models.map((m) => m.version).sort()).toEqual(['trader-v3', 'trader-v5']);
      for (const m of models) {
        expect(existsSync(join(m.path, 'config.json'))).toBe(true);
        expect((await archive.trainingBatch(m.batchId as string))?.status).toBe('trained');
      }
      // The second iteration's LM traders were answered by the version trained on the first.
      const second = await archive.llmCallsInWindow(windows[3].windowId);
      expect(second.some((c) => c.model === 'trader@v3')).toBe(true);
      expect((await archive.llmCallsInWindow(windows[0].windowId)).every((c) => c.model === 'trader@v1')).toBe(true);
    } finally {
      await archive.close();
    }
  }, 120_000);

  it('refuses a config that can never fill a window, in one line with exit 2', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, `out_dir: ${join(dir, 'bad')}\nagents: { scripted: momentum, lm: 2 }\nloop: { min_agents: 5 }\n`);
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => errors.push(line);
    try {
      expect(await main(['babylon', path])).toBe(2);
    } finally {
      console.error = original;
    }
    expect(errors).toEqual(['rlmesh: config error: loop.min_agents: 1 scripted + 2 LM traders can never make a window of 5 agents']);
  });
});
