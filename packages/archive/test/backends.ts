/**
 * The two backends the archive contract runs on: in-memory PGlite, and a fresh database with a
 * random name on the PostgreSQL server at 127.0.0.1:5432 (user postgres, trust auth; override with
 * RLMESH_TEST_POSTGRES_URL), dropped afterwards. Under CI=true a missing server fails the tests;
 * elsewhere they are skipped with a message.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { PgliteClient, PostgresClient, type SqlClient } from '../src';

export const ADMIN_URL = process.env.RLMESH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  client: SqlClient;
  /** Connection string of the fresh database (server only). */
  url?: string;
  drop(): Promise<void>;
}

export interface Backend {
  name: string;
  /** Whether a second session can terminate the archive's connection (a server, not in-process). */
  killable: boolean;
  /** Why this backend cannot run here, or null. */
  missing: string | null;
  create(): Promise<TestDatabase>;
}

/**
 * Why the server cannot be used (nothing listening, a refused login...), or null. Checked in a child
 * process because describe.skipIf needs the answer synchronously.
 */
function serverProblem(url: string): string | null {
  const probe = `const { Client } = require('pg');
    const c = new Client({ connectionString: ${JSON.stringify(url)}, connectionTimeoutMillis: 3000 });
    c.connect().then(() => c.query('SELECT 1')).then(() => c.end()).then(
      () => process.exit(0),
      (e) => { process.stderr.write(String(e.message || e.code || e)); process.exit(1); });`;
  const res = spawnSync(process.execPath, ['-e', probe], { cwd: __dirname, timeout: 10_000, encoding: 'utf8' });
  return res.status === 0 ? null : res.stderr.trim() || `no answer within 10 s`;
}

function postgresMissing(): string | null {
  const problem = serverProblem(ADMIN_URL);
  if (problem === null) return null;
  const why = `cannot use the PostgreSQL server at ${ADMIN_URL}: ${problem}`;
  if (process.env.CI === 'true') throw new Error(`archive tests need a PostgreSQL server; ${why} (.ci/run starts one)`);
  console.warn(`skipping the archive's PostgreSQL tests: ${why}`);
  return why;
}

export function urlFor(database: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

export const pgliteBackend: Backend = {
  name: 'PGlite (in process)',
  killable: false,
  missing: null,
  async create() {
    const client = new PgliteClient();
    return { client, drop: () => client.close() };
  },
};

/** The server backend; probing it (and failing under CI) happens when a test file asks for it. */
export function postgresBackend(): Backend {
  return {
    name: 'PostgreSQL server',
    killable: true,
    missing: postgresMissing(),
    async create() {
      const name = `rlmesh_archive_test_${randomBytes(6).toString('hex')}`;
      const admin = new Client({ connectionString: ADMIN_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      const url = urlFor(name);
      const client = new PostgresClient({ connectionString: url });
      return {
        client,
        url,
        async drop() {
          await client.close();
          const cleanup = new Client({ connectionString: ADMIN_URL });
          await cleanup.connect();
          await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          await cleanup.end();
        },
      };
    },
  };
}
