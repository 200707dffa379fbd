/**
 * `rlmesh babylon` end to end on a tiny config (2 iterations of two simulated hours, a 1-layer
 * GPT-2): SFT, the served model called by LM traders and recorded in a PGlite archive, windows
 * judged, GRPO by window, the new version served to the next iteration's traders, the held-out
 * comparison; then the archive, reopened, holds what the loop says it wrote (tiny.ts's checks,
 * which loop-postgres.test.ts runs against the PostgreSQL server).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openArchive } from '@rlmesh/archive';
import { afterAll, describe, expect, it } from 'vitest';
import { type BabylonResults, runBabylon } from '../../packages/cli/src/babylon';
import { parseBabylonConfig } from '../../packages/cli/src/babylon-config';
import { main } from '../../packages/cli/src/main';
import { expectTinyArchive, expectTinyResults, TINY } from './tiny';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-babylon-loop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('rlmesh babylon', () => {
  it('runs the loop: recorded calls, judged windows, GRPO by window, the new version served, held-out P&L', async () => {
    const out = join(dir, 'run');
    const archivePath = join(dir, 'archive');
    const lines: string[] = [];
    const r: BabylonResults = await runBabylon(parseBabylonConfig({ ...TINY, out_dir: out, archive: archivePath }), (l) => lines.push(l));
    expect(lines.filter((l) => l.startsWith('warning'))).toEqual([]);
    expectTinyResults(r, out);
    expect(r.resumed_after).toBe(0);
    const archive = await openArchive(archivePath, { windowHours: 1 });
    try {
      // The second iteration's LM traders were answered by the version trained on the first.
      await expectTinyArchive(archive, 3);
    } finally {
      await archive.close();
    }
  }, 600_000);

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
