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

/** Whether anything accepts TCP connections at the server's address (checked synchronously, for skipIf). */
function serverListening(url: string): boolean {
  const { hostname, port } = new URL(url);
  const probe = `require('net').connect(${Number(port || 5432)}, ${JSON.stringify(hostname)})
    .on('connect', () => process.exit(0)).on('error', () => process.exit(1))`;
  return spawnSync(process.execPath, ['-e', probe], { timeout: 5000 }).status === 0;
}

function postgresMissing(): string | null {
  if (serverListening(ADMIN_URL)) return null;
  const why = `no PostgreSQL server answers at ${ADMIN_URL}`;
  if (process.env.CI === 'true') throw new Error(`archive tests need a PostgreSQL server: ${why} (.ci/run starts one)`);
  console.warn(`skipping the archive's PostgreSQL tests: ${why}`);
  return why;
}

export function urlFor(database: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

export const BACKENDS: Backend[] = [
  {
    name: 'PGlite (in process)',
    killable: false,
    missing: null,
    async create() {
      const client = new PgliteClient();
      return { client, drop: () => client.close() };
    },
  },
  {
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
  },
];
