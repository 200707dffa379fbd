/**
 * Versioned schema migrations. Each entry is applied once, in order, in its own transaction that
 * also records it in `schema_migrations`; a transaction-scoped advisory lock lets several processes
 * start against one server at once. A database whose version is newer than the last entry here is
 * refused: this code would misread tables it does not know.
 */
import { ArchiveStateError } from './errors';
import type { SqlClient } from './sql';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

// Arbitrary constant shared by every archive process: the advisory lock key for migrating.
const MIGRATION_LOCK = 7_302_114_001;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'trajectories, llm calls, market outcomes, training batches, trained models, judge scores',
    sql: `
CREATE TABLE trajectories (
  id            text PRIMARY KEY,
  agent_id      text NOT NULL,
  window_id     text NOT NULL,
  window_hours  integer NOT NULL CHECK (window_hours > 0),
  -- Every agent in one window faced the same market, so the window is the GRPO scenario.
  scenario_id   text NOT NULL CHECK (scenario_id = window_id),
  started_at    timestamptz NOT NULL,
  ended_at      timestamptz NOT NULL CHECK (ended_at >= started_at),
  steps         jsonb NOT NULL CHECK (jsonb_typeof(steps) = 'array'),
  step_count    integer NOT NULL,
  final_pnl     double precision NOT NULL,
  metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
  model_version text
);
CREATE INDEX trajectories_window_agent ON trajectories (window_id, agent_id);
CREATE INDEX trajectories_started_at ON trajectories (started_at);

CREATE TABLE llm_calls (
  id                text PRIMARY KEY,
  trajectory_id     text REFERENCES trajectories (id) ON DELETE CASCADE,
  seq               integer,
  window_id         text NOT NULL,
  agent_id          text,
  model             text NOT NULL,
  messages          jsonb NOT NULL CHECK (jsonb_typeof(messages) = 'array'),
  completion        text NOT NULL,
  finish_reason     text,
  prompt_tokens     integer,
  completion_tokens integer,
  latency_ms        double precision,
  logprobs          jsonb,
  at                timestamptz NOT NULL,
  UNIQUE (trajectory_id, seq)
);
CREATE INDEX llm_calls_window ON llm_calls (window_id);

CREATE TABLE market_outcomes (
  window_id   text NOT NULL,
  asset       text NOT NULL,
  start_price double precision NOT NULL,
  end_price   double precision NOT NULL,
  events      jsonb NOT NULL DEFAULT '[]'::jsonb,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (window_id, asset)
);

CREATE TABLE training_batches (
  id             text PRIMARY KEY,
  window_ids     text[] NOT NULL,
  trajectory_ids text[] NOT NULL,
  dropout_rate   double precision NOT NULL DEFAULT 0,
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'training', 'trained', 'failed')),
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trained_models (
  version    text PRIMARY KEY,
  path       text NOT NULL,
  base_model text NOT NULL,
  batch_id   text REFERENCES training_batches (id),
  metrics    jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE judge_scores (
  content_hash      text PRIMARY KEY,
  judge_id          text NOT NULL,
  scores            jsonb NOT NULL,
  explanation       text,
  prompt_tokens     integer NOT NULL DEFAULT 0,
  completion_tokens integer NOT NULL DEFAULT 0,
  cost_usd          double precision NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT now()
);
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** The highest applied version, 0 for an empty database. */
export async function schemaVersion(db: SqlClient): Promise<number> {
  const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('schema_migrations')::text AS t`);
  if (exists[0].t === null) return 0;
  const rows = await db.query<{ v: number | null }>('SELECT max(version)::int AS v FROM schema_migrations');
  return rows[0].v ?? 0;
}

function tooNew(found: number, known: number): ArchiveStateError {
  return new ArchiveStateError(
    `archive: the database schema is at version ${found} but this code knows versions up to ${known}; ` +
      'upgrade @rlmesh/archive rather than writing to it with older code',
  );
}

/** Applies every missing migration in order; returns the versions it applied (empty on a re-run). */
export async function migrate(db: SqlClient, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const known = migrations.length === 0 ? 0 : migrations[migrations.length - 1].version;
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations: entry ${i} has version ${m.version}, expected ${i + 1} (consecutive from 1)`);
  });
  const applied: number[] = [];
  for (const m of migrations) {
    const done = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await tx.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const rows = await tx.query<{ v: number | null }>('SELECT max(version)::int AS v FROM schema_migrations');
      const current = rows[0].v ?? 0;
      if (current > known) throw tooNew(current, known);
      if (current >= m.version) return false;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (done) applied.push(m.version);
  }
  // With nothing left to apply the loop above never looked; a newer database must still be refused.
  const current = await schemaVersion(db);
  if (current > known) throw tooNew(current, known);
  return applied;
}
