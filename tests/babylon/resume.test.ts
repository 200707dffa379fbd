/**
 * `rlmesh babylon` resumes: the tiny loop (tiny.ts) is cut in the second iteration, just after its
 * first window was archived, as a crash would cut it; the same config run again continues after
 * iteration 1 (the archive's trained model and its checkpoint), discards the half-recorded window,
 * and ends with what an uninterrupted loop leaves: each window once, each call once, versions 3 and 5.
 * A finished loop re-run only evaluates; another config or another out_dir on its archive is refused.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openArchive } from '@rlmesh/archive';
import { afterAll, describe, expect, it } from 'vitest';
import { runBabylon } from '../../packages/cli/src/babylon';
import { parseBabylonConfig } from '../../packages/cli/src/babylon-config';
import { expectTinyArchive, expectTinyResults, TINY } from './tiny';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-babylon-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

class Cut extends Error {}

describe('rlmesh babylon resume', () => {
  it('continues an interrupted loop from its last finished iteration', async () => {
    const out = join(dir, 'run');
    const archivePath = join(dir, 'archive');
    const cfg = parseBabylonConfig({ ...TINY, out_dir: out, archive: archivePath });

    const first: string[] = [];
    await expect(
      runBabylon(cfg, (l) => first.push(l), {
        afterWindow(_window, iteration) {
          if (iteration === 2) throw new Cut('cut');
        },
      }),
    ).rejects.toThrow(Cut);
    expect(first.filter((l) => l.startsWith('iteration '))).toHaveLength(1);
    let archive = await openArchive(archivePath, { windowHours: 1 });
    try {
      // Iteration 1's two windows, and the first of iteration 2 that the cut left behind.
      expect((await archive.windowsWithAgents(1)).map((w) => w.trajectories)).toEqual([5, 5, 5]);
      expect((await archive.trainedModels()).map((m) => m.version)).toEqual(['trader-v3']);
    } finally {
      await archive.close();
    }

    const second: string[] = [];
    const r = await runBabylon(cfg, (l) => second.push(l));
    expect(r.resumed_after).toBe(1);
    expect(second.some((l) => l.startsWith('sft'))).toBe(false);
    expect(second.find((l) => l.startsWith('resume: discarded'))).toMatch(/from 2026-\d\d-\d\dT\d\d:00Z on .*"trajectories":5/);
    expect(second.filter((l) => l.startsWith('iteration ')).map((l) => l.split(':')[0])).toEqual(['iteration 2']);
    // Iteration 1's metrics come from the first run; iteration 2 starts at version 3 and trains 4 and 5.
    expectTinyResults(r, out);
    expect(readFileSync(join(out, 'iterations.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    // The learner's log holds each of the four updates once.
    const updates = readFileSync(join(out, 'grpo', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n');
    expect(updates).toHaveLength(4);

    archive = await openArchive(archivePath, { windowHours: 1 });
    try {
      const windows = await expectTinyArchive(archive, 2);
      // The resumed market continues the accounts: each agent's equity at the cut is where it was.
      const before = await archive.trajectoriesOf(windows[1].windowId);
      const after = new Map((await archive.trajectoriesOf(windows[2].windowId)).map((t) => [t.agentId, t]));
      for (const t of before) expect(after.get(t.agentId)?.metadata.startEquity).toBe(t.metadata.endEquity);
      expect(before.some((t) => t.metadata.endEquity !== 10_000)).toBe(true);
      // Every call of the resumed iteration came from version 3, the checkpoint it resumed from.
      for (const w of windows.slice(2)) {
        const models = new Set((await archive.llmCallsInWindow(w.windowId)).map((c) => c.model));
        expect([...models]).toEqual(['trader@v3']);
      }
    } finally {
      await archive.close();
    }

    // A finished loop run again only evaluates, and refuses another config in its out_dir.
    const third = await runBabylon(cfg);
    expect(third.resumed_after).toBe(2);
    expect(third.iterations).toEqual(r.iterations);
    await expect(runBabylon(parseBabylonConfig({ ...TINY, seed: 4, out_dir: out, archive: archivePath }))).rejects.toThrow(
      /out_dir: .*config.json holds another config's run/,
    );
    expect(existsSync(join(out, 'sft.json'))).toBe(true);
    // Nor does another out_dir take over this loop's archive (it would discard its windows).
    const other = join(dir, 'other');
    const foreign = parseBabylonConfig({ ...TINY, out_dir: other, archive: archivePath });
    await expect(runBabylon(foreign)).rejects.toThrow(
      /archive: .* holds windows from 2026-\d\d-\d\dT00:00Z on that no run in .*other recorded/,
    );
    await expect(runBabylon(foreign)).rejects.toThrow(/holds windows/);
    expect(existsSync(join(other, 'config.json'))).toBe(false);
  }, 900_000);
});
