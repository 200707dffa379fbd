/**
 * `rlmesh babylon`'s tiny loop with `archive: postgres://...`: the same run and the same checks as
 * loop.test.ts's PGlite one, against the PostgreSQL server at 127.0.0.1:5432 in a fresh database
 * created for the test and dropped after it (the archive tests' backend: under CI=true a missing
 * server fails, elsewhere the test is skipped with a message).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openArchive } from '@rlmesh/archive';
import { afterAll, describe, expect, it } from 'vitest';
import { postgresBackend, type TestDatabase } from '../../packages/archive/test/backends';
import { runBabylon } from '../../packages/cli/src/babylon';
import { parseBabylonConfig } from '../../packages/cli/src/babylon-config';
import { expectTinyArchive, expectTinyResults, TINY } from './tiny';

const backend = postgresBackend();
const dir = mkdtempSync(join(tmpdir(), 'rlmesh-babylon-pg-'));
let db: TestDatabase | undefined;
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(backend.missing !== null)('rlmesh babylon on the PostgreSQL server', () => {
  it('runs the loop into a fresh database and leaves there what the PGlite loop leaves', async () => {
    db = await backend.create();
    const url = db.url as string;
    expect(url).toMatch(/^postgres:\/\/.*\/rlmesh_archive_test_[0-9a-f]{12}$/);
    const out = join(dir, 'run');
    const r = await runBabylon(parseBabylonConfig({ ...TINY, out_dir: out, archive: url }));
    expectTinyResults(r, out);
    const archive = await openArchive(url, { windowHours: 1 });
    try {
      await expectTinyArchive(archive, 3);
    } finally {
      await archive.close();
    }
  }, 600_000);
});
