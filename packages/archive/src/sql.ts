/**
 * The archive's only view of a database: run a statement, or run several in one transaction.
 * Two implementations share every statement and migration: a PostgreSQL server through `pg`, and
 * in-process PostgreSQL through PGlite (WASM), so the embedded default needs no server.
 */
import { PGlite } from '@electric-sql/pglite';
import { Pool, type PoolClient } from 'pg';

export type Row = Record<string, unknown>;

export interface SqlQueryer {
  query<R extends Row = Row>(text: string, params?: unknown[]): Promise<R[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export interface SqlClient extends SqlQueryer {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` inside BEGIN ... COMMIT; any throw rolls the whole transaction back. */
  transaction<T>(fn: (tx: SqlQueryer) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/rlmesh';

export interface PostgresOptions {
  /** A libpq-style URL; default postgres://postgres@127.0.0.1:5432/rlmesh. */
  connectionString?: string;
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string;
  /** Pool size: how many statements run at once. */
  max?: number;
}

export class PostgresClient implements SqlClient {
  readonly kind = 'postgres';
  private readonly pool: Pool;

  constructor(options: PostgresOptions = {}) {
    const { connectionString, max = 10, ...rest } = options;
    const hasParts = Object.values(rest).some((v) => v !== undefined);
    this.pool = new Pool(
      hasParts && !connectionString
        ? { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'rlmesh', ...rest, max }
        : { connectionString: connectionString ?? DEFAULT_POSTGRES_URL, max },
    );
    // An idle pooled connection that the server terminates emits 'error' on the pool; without a
    // listener that would crash the process. The pool drops the client and the next query reconnects.
    this.pool.on('error', () => {});
  }

  async query<R extends Row = Row>(text: string, params: unknown[] = []): Promise<R[]> {
    const res = await this.pool.query(text, params);
    return res.rows as R[];
  }

  async exec(script: string): Promise<void> {
    // Without parameters node-postgres uses the simple protocol, which accepts several statements.
    await this.pool.query(script);
  }

  async transaction<T>(fn: (tx: SqlQueryer) => Promise<T>): Promise<T> {
    const client: PoolClient = await this.pool.connect();
    // A client that errors while checked out would otherwise raise an unhandled 'error' event.
    const onError = () => {};
    client.on('error', onError);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn({
        query: async <R extends Row = Row>(text: string, params: unknown[] = []) => (await client.query(text, params)).rows as R[],
        exec: async (script: string) => {
          await client.query(script);
        },
      });
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // A connection that cannot even roll back is dead or mid-protocol: destroy it rather than
      // return it to the pool. One that rolled back (a refused row, a thrown check) is reused.
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export class PgliteClient implements SqlClient {
  readonly kind = 'pglite';
  private readonly db: PGlite;

  /** `dataDir` undefined keeps the database in memory; a path persists it there. */
  constructor(dataDir?: string) {
    this.db = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
  }

  async query<R extends Row = Row>(text: string, params: unknown[] = []): Promise<R[]> {
    return (await this.db.query<R>(text, params)).rows;
  }

  transaction<T>(fn: (tx: SqlQueryer) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) =>
      fn({
        query: async <R extends Row = Row>(text: string, params: unknown[] = []) => (await tx.query<R>(text, params)).rows,
        exec: async (script: string) => {
          await tx.exec(script);
        },
      }),
    );
  }

  async exec(script: string): Promise<void> {
    await this.db.exec(script);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/**
 * One string picks the backend: `memory` (PGlite in memory), `postgres://...` or
 * `postgresql://...` (a server through pg), anything else a PGlite data directory.
 */
export function openSqlClient(target: string): SqlClient {
  if (target === '') throw new Error('archive target: must be "memory", a postgres:// URL or a directory, got an empty string');
  if (target === 'memory') return new PgliteClient();
  if (/^postgres(?:ql)?:\/\//.test(target)) return new PostgresClient({ connectionString: target });
  return new PgliteClient(target);
}

/**
 * `value` as the text of a jsonb parameter. PostgreSQL's text and jsonb cannot hold U+0000, which a
 * sampled completion or a token's text can contain, so each string's U+0000 is stored as U+FFFD
 * (a token's exact value survives in its recorded bytes).
 */
export function toJsonb(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'string' && v.includes('\u0000') ? v.replaceAll('\u0000', '\ufffd') : v));
}
