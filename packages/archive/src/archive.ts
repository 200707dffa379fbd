/**
 * The trajectory archive: agents record what they saw, did and earned; trainers read it back by
 * clock window. One class over a SqlClient, so the same code runs on a PostgreSQL server and on
 * in-process PGlite.
 *
 * Recording is atomic per trajectory: startTrajectory / appendStep / recordLlmCall only buffer in
 * memory, and endTrajectory writes the trajectory and its LLM calls in one transaction, keyed by the
 * trajectory id (calls by trajectory id and index). A failed end (bad P&L, lost connection) leaves
 * the trajectory open, so the caller retries endTrajectory; a retry after a commit whose answer was
 * lost finds the id and writes nothing. A process that dies before endTrajectory records nothing.
 */
import { randomUUID } from 'node:crypto';
import { toArtTrajectory } from './art';
import { applyDropout, type DropoutResult, MAX_DROPOUT_RATE } from './dropout';
import { ArchiveInputError, guardConnection } from './errors';
import { migrate } from './migrations';
import {
  type CachedJudgeScores,
  LLM_CALL_COLUMNS,
  llmCallFromRow,
  type MarketOutcome,
  type StoredLlmCall,
  type StoredTrajectory,
  TRAINING_BATCH_STATUSES,
  TRAJECTORY_COLUMNS,
  type TrainedModel,
  type TrainingBatch,
  type TrainingBatchStatus,
  trainedModelFromRow,
  trainingBatchFromRow,
  trajectoryFromRow,
  type WindowSummary,
} from './rows';
import { openSqlClient, type SqlClient, type SqlQueryer, toJsonb } from './sql';
import {
  type CheckedLlmCall,
  type CheckedTrajectory,
  checkDate,
  checkFinite,
  checkId,
  checkJson,
  checkLlmCall,
  checkStep,
  checkString,
  checkTrajectory,
  isPlainObject,
  type Json,
  type LlmCallInput,
  type Step,
  type StepInput,
  type TrajectoryInput,
} from './validate';
import { checkWindowHours, windowBounds, windowId } from './window';

export interface ArchiveOptions {
  /** Window length in hours (must divide 24); default 1. Queries see windows of this length only. */
  windowHours?: number;
  /** The clock that stamps rows; default the system clock. */
  now?: () => Date;
}

export interface StartTrajectoryInput {
  agentId: string;
  id?: string;
  startedAt?: Date | string;
  metadata?: { [key: string]: Json };
  modelVersion?: string;
}

export interface RecordResult {
  id: string;
  windowId: string;
  /** False when a trajectory with this id was already recorded (a retry): nothing was written. */
  written: boolean;
}

interface OpenTrajectory {
  agentId: string;
  startedAt: Date;
  metadata: { [key: string]: Json };
  modelVersion?: string;
  steps: Step[];
  calls: CheckedLlmCall[];
}

export class Archive {
  readonly windowHours: number;
  private readonly now: () => Date;
  private readonly open = new Map<string, OpenTrajectory>();

  private constructor(
    readonly db: SqlClient,
    options: ArchiveOptions,
  ) {
    this.windowHours = checkWindowHours(options.windowHours ?? 1);
    this.now = options.now ?? (() => new Date());
  }

  /** Migrates the database to this code's schema (refusing a newer one) and returns the archive. */
  static async open(db: SqlClient, options: ArchiveOptions = {}): Promise<Archive> {
    const archive = new Archive(db, options);
    await guardConnection('migrate', () => migrate(db));
    return archive;
  }

  /** A statement whose lost connection becomes an ArchiveConnectionError naming the operation. */
  private run(operation: string, text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    return guardConnection(operation, () => this.db.query(text, params));
  }

  /** The window id of an instant under this archive's window length. */
  windowOf(at: Date): string {
    return windowId(at, this.windowHours);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  // ---- recording -------------------------------------------------------------------------------

  /** Opens a trajectory in memory and returns its id; nothing is written until endTrajectory. */
  startTrajectory(input: StartTrajectoryInput): string {
    if (!isPlainObject(input)) throw new ArchiveInputError('startTrajectory: expected an object with agentId');
    const id = input.id === undefined ? randomUUID() : checkId(input.id, 'trajectory.id');
    if (this.open.has(id)) throw new ArchiveInputError(`trajectory.id: ${JSON.stringify(id)} is already open`);
    const metadata = input.metadata === undefined ? {} : input.metadata;
    if (!isPlainObject(metadata)) throw new ArchiveInputError('trajectory.metadata: must be an object');
    this.open.set(id, {
      agentId: checkId(input.agentId, 'trajectory.agentId'),
      startedAt: input.startedAt === undefined ? this.now() : checkDate(input.startedAt, 'trajectory.startedAt'),
      metadata: checkJson(metadata, 'trajectory.metadata') as { [key: string]: Json },
      modelVersion: input.modelVersion === undefined ? undefined : checkString(input.modelVersion, 'trajectory.modelVersion', 200),
      steps: [],
      calls: [],
    });
    return id;
  }

  private openTrajectory(id: string, field: string): OpenTrajectory {
    const t = this.open.get(id);
    if (!t) throw new ArchiveInputError(`${field}: no open trajectory ${JSON.stringify(id)} (startTrajectory first)`);
    return t;
  }

  /** Buffers one step; returns its index. */
  appendStep(trajectoryId: string, step: StepInput): number {
    const t = this.openTrajectory(trajectoryId, 'appendStep.trajectoryId');
    const index = t.steps.length;
    t.steps.push(checkStep(step, `steps[${index}]`, this.now()));
    return index;
  }

  /**
   * Records one LLM call and returns its id. A call with the trajectoryId of an open trajectory is
   * buffered and written with it; any other call is written now, stamped with its own window.
   */
  async recordLlmCall(call: LlmCallInput): Promise<string> {
    const checked = checkLlmCall(call, 'llmCall', this.now());
    if (checked.trajectoryId !== undefined) {
      const t = this.openTrajectory(checked.trajectoryId, 'llmCall.trajectoryId');
      if (checked.agentId !== undefined && checked.agentId !== t.agentId) {
        throw new ArchiveInputError(`llmCall.agentId: must be the trajectory's agent ${JSON.stringify(t.agentId)} or absent`);
      }
      const id = checked.id ?? randomUUID();
      t.calls.push({ ...checked, id });
      return id;
    }
    const id = checked.id ?? randomUUID();
    await guardConnection(`recordLlmCall ${id}`, () =>
      insertCalls(this.db, [{ ...checked, id }], { trajectoryId: null, windowId: this.windowOf(checked.at), agentId: null }),
    );
    return id;
  }

  /** Writes the open trajectory with its final P&L in one transaction and closes it. */
  async endTrajectory(trajectoryId: string, end: { finalPnl: number; endedAt?: Date | string }): Promise<RecordResult> {
    const t = this.openTrajectory(trajectoryId, 'endTrajectory.trajectoryId');
    if (!isPlainObject(end)) throw new ArchiveInputError('endTrajectory: expected {finalPnl}');
    const result = await this.recordTrajectory({
      id: trajectoryId,
      agentId: t.agentId,
      startedAt: t.startedAt,
      endedAt: end.endedAt ?? this.now(),
      steps: t.steps,
      finalPnl: end.finalPnl,
      metadata: t.metadata,
      modelVersion: t.modelVersion,
      llmCalls: t.calls as LlmCallInput[],
    });
    this.open.delete(trajectoryId);
    return result;
  }

  /** Writes a whole trajectory (and its LLM calls) in one transaction; idempotent by id. */
  async recordTrajectory(input: TrajectoryInput): Promise<RecordResult> {
    const t: CheckedTrajectory = checkTrajectory(input);
    const id = t.id ?? randomUUID();
    t.llmCalls.forEach((c, i) => {
      if (c.trajectoryId !== undefined && c.trajectoryId !== id) {
        throw new ArchiveInputError(`trajectory.llmCalls[${i}].trajectoryId: must be ${JSON.stringify(id)} or absent`);
      }
    });
    const window = this.windowOf(t.startedAt);
    const written = await guardConnection(`recordTrajectory ${id}`, () =>
      this.db.transaction(async (tx) => {
        const inserted = await tx.query(
          `INSERT INTO trajectories (id, agent_id, window_id, window_hours, scenario_id, started_at, ended_at, steps, step_count,
                                     final_pnl, metadata, model_version)
           VALUES ($1, $2, $3, $4, $3, $5, $6, $7::jsonb, $8, $9, $10::jsonb, $11)
           ON CONFLICT (id) DO NOTHING RETURNING id`,
          [
            id,
            t.agentId,
            window,
            this.windowHours,
            t.startedAt.toISOString(),
            t.endedAt.toISOString(),
            toJsonb(t.steps),
            t.steps.length,
            t.finalPnl,
            toJsonb(t.metadata),
            t.modelVersion,
          ],
        );
        if (inserted.length === 0) {
          const [prior] = await tx.query<{ agent_id: string }>('SELECT agent_id FROM trajectories WHERE id = $1', [id]);
          if (prior && prior.agent_id !== t.agentId) {
            throw new ArchiveInputError(
              `trajectory.id: ${JSON.stringify(id)} is already recorded for agent ${JSON.stringify(prior.agent_id)}`,
            );
          }
          return false;
        }
        await insertCalls(tx, t.llmCalls, { trajectoryId: id, windowId: window, agentId: t.agentId });
        return true;
      }),
    );
    return { id, windowId: window, written };
  }

  // ---- windows ---------------------------------------------------------------------------------

  /** Windows (oldest first) with at least `minAgents` distinct agents, optionally in [from, to). */
  async windowsWithAgents(minAgents: number, range: { from?: string; to?: string } = {}): Promise<WindowSummary[]> {
    if (!Number.isInteger(minAgents) || minAgents < 1)
      throw new ArchiveInputError(`minAgents: must be a positive integer, got ${minAgents}`);
    if (range.from !== undefined) windowBounds(range.from, this.windowHours);
    if (range.to !== undefined) windowBounds(range.to, this.windowHours);
    const rows = await this.run(
      'windowsWithAgents',
      `SELECT window_id, count(DISTINCT agent_id)::int AS agents, count(*)::int AS trajectories, avg(final_pnl) AS mean_pnl
       FROM trajectories
       WHERE window_hours = $2 AND ($3::text IS NULL OR window_id >= $3) AND ($4::text IS NULL OR window_id < $4)
       GROUP BY window_id HAVING count(DISTINCT agent_id) >= $1 ORDER BY window_id`,
      [minAgents, this.windowHours, range.from ?? null, range.to ?? null],
    );
    return rows.map((r) => ({
      windowId: r.window_id as string,
      agents: r.agents as number,
      trajectories: r.trajectories as number,
      meanPnl: r.mean_pnl as number,
    }));
  }

  /** The finished trajectories of one window, by start time. */
  async trajectoriesOf(window: string): Promise<StoredTrajectory[]> {
    windowBounds(window, this.windowHours);
    const rows = await this.run(
      'trajectoriesOf',
      `SELECT ${TRAJECTORY_COLUMNS} FROM trajectories WHERE window_id = $1 AND window_hours = $2 ORDER BY started_at, id`,
      [window, this.windowHours],
    );
    return rows.map(trajectoryFromRow);
  }

  /** The LLM calls of one trajectory in order. */
  async llmCallsOf(trajectoryId: string): Promise<StoredLlmCall[]> {
    checkId(trajectoryId, 'trajectoryId');
    const rows = await this.run('llmCallsOf', `SELECT ${LLM_CALL_COLUMNS} FROM llm_calls WHERE trajectory_id = $1 ORDER BY seq`, [
      trajectoryId,
    ]);
    return rows.map(llmCallFromRow);
  }

  /** Every LLM call stamped with a window, in or outside trajectories, by time. */
  async llmCallsInWindow(window: string): Promise<StoredLlmCall[]> {
    windowBounds(window, this.windowHours);
    const rows = await this.run('llmCallsInWindow', `SELECT ${LLM_CALL_COLUMNS} FROM llm_calls WHERE window_id = $1 ORDER BY at, id`, [
      window,
    ]);
    return rows.map(llmCallFromRow);
  }

  // ---- market outcomes -------------------------------------------------------------------------

  /** Records (or replaces) what an asset did during a window: the ground truth agents lacked. */
  async recordMarketOutcome(outcome: MarketOutcome): Promise<void> {
    if (!isPlainObject(outcome)) throw new ArchiveInputError('marketOutcome: expected an object');
    windowBounds(outcome.windowId, this.windowHours);
    const asset = checkString(outcome.asset, 'marketOutcome.asset', 200);
    const start = checkFinite(outcome.startPrice, 'marketOutcome.startPrice');
    const end = checkFinite(outcome.endPrice, 'marketOutcome.endPrice');
    const events = outcome.events ?? [];
    if (!Array.isArray(events)) throw new ArchiveInputError('marketOutcome.events: must be an array');
    checkJson(events, 'marketOutcome.events');
    await guardConnection(`recordMarketOutcome ${outcome.windowId}/${asset}`, () =>
      this.db.query(
        `INSERT INTO market_outcomes (window_id, asset, start_price, end_price, events) VALUES ($1, $2, $3, $4, $5::jsonb)
         ON CONFLICT (window_id, asset) DO UPDATE SET start_price = excluded.start_price, end_price = excluded.end_price,
           events = excluded.events, recorded_at = now()`,
        [outcome.windowId, asset, start, end, toJsonb(events)],
      ),
    );
  }

  async outcomesOf(window: string): Promise<MarketOutcome[]> {
    windowBounds(window, this.windowHours);
    const rows = await this.run(
      'outcomesOf',
      'SELECT window_id, asset, start_price, end_price, events FROM market_outcomes WHERE window_id = $1 ORDER BY asset',
      [window],
    );
    return rows.map((r) => ({
      windowId: r.window_id as string,
      asset: r.asset as string,
      startPrice: r.start_price as number,
      endPrice: r.end_price as number,
      events: r.events as Json[],
    }));
  }

  // ---- training data ---------------------------------------------------------------------------

  /**
   * The GRPO groups for a batch: every window with at least `minAgents` agents, thinned by
   * automatic dropout when they hold more than `target` trajectories (see dropout.ts for the rule).
   */
  async trainingGroups(options: {
    minAgents: number;
    target: number;
    seed: number;
    maxDropout?: number;
    from?: string;
    to?: string;
  }): Promise<DropoutResult<StoredTrajectory>> {
    const windows = await this.windowsWithAgents(options.minAgents, options);
    const groups = [];
    for (const w of windows) groups.push({ windowId: w.windowId, members: await this.trajectoriesOf(w.windowId) });
    return applyDropout(groups, { target: options.target, seed: options.seed, maxRate: options.maxDropout ?? MAX_DROPOUT_RATE });
  }

  async createTrainingBatch(input: { id?: string; windowIds: string[]; trajectoryIds: string[]; dropoutRate?: number }): Promise<string> {
    const id = input.id === undefined ? randomUUID() : checkId(input.id, 'trainingBatch.id');
    for (const [key, list] of [
      ['windowIds', input.windowIds],
      ['trajectoryIds', input.trajectoryIds],
    ] as const) {
      if (!Array.isArray(list) || list.length === 0) throw new ArchiveInputError(`trainingBatch.${key}: must be a non-empty array`);
      list.forEach((v, i) => {
        checkId(v, `trainingBatch.${key}[${i}]`);
      });
    }
    const rate = input.dropoutRate ?? 0;
    if (!(rate >= 0 && rate < 1)) throw new ArchiveInputError(`trainingBatch.dropoutRate: must be in [0, 1), got ${rate}`);
    await guardConnection(`createTrainingBatch ${id}`, () =>
      this.db.query(
        `INSERT INTO training_batches (id, window_ids, trajectory_ids, dropout_rate) VALUES ($1, $2::text[], $3::text[], $4)
         ON CONFLICT (id) DO NOTHING`,
        [id, input.windowIds, input.trajectoryIds, rate],
      ),
    );
    return id;
  }

  async setTrainingBatchStatus(id: string, status: TrainingBatchStatus): Promise<void> {
    if (!TRAINING_BATCH_STATUSES.includes(status)) {
      throw new ArchiveInputError(
        `trainingBatch.status: must be one of ${TRAINING_BATCH_STATUSES.join(', ')}, got ${JSON.stringify(status)}`,
      );
    }
    const rows = await this.run('setTrainingBatchStatus', 'UPDATE training_batches SET status = $2 WHERE id = $1 RETURNING id', [
      checkId(id, 'trainingBatch.id'),
      status,
    ]);
    if (rows.length === 0) throw new ArchiveInputError(`trainingBatch.id: no batch ${JSON.stringify(id)}`);
  }

  async trainingBatch(id: string): Promise<TrainingBatch | undefined> {
    const rows = await this.run('trainingBatch', 'SELECT * FROM training_batches WHERE id = $1', [checkId(id, 'trainingBatch.id')]);
    return rows.length === 0 ? undefined : trainingBatchFromRow(rows[0]);
  }

  async recordTrainedModel(input: {
    version: string;
    path: string;
    baseModel: string;
    batchId?: string;
    metrics?: { [key: string]: Json };
  }): Promise<void> {
    const version = checkId(input.version, 'trainedModel.version');
    const metrics = input.metrics ?? {};
    if (!isPlainObject(metrics)) throw new ArchiveInputError('trainedModel.metrics: must be an object');
    checkJson(metrics, 'trainedModel.metrics');
    await guardConnection(`recordTrainedModel ${version}`, () =>
      this.db.query(
        `INSERT INTO trained_models (version, path, base_model, batch_id, metrics) VALUES ($1, $2, $3, $4, $5::jsonb)
         ON CONFLICT (version) DO NOTHING`,
        [
          version,
          checkString(input.path, 'trainedModel.path', 4096),
          checkString(input.baseModel, 'trainedModel.baseModel', 500),
          input.batchId === undefined ? null : checkId(input.batchId, 'trainedModel.batchId'),
          toJsonb(metrics),
        ],
      ),
    );
  }

  /** Trained models, newest first. */
  async trainedModels(): Promise<TrainedModel[]> {
    const rows = await this.run('trainedModels', 'SELECT * FROM trained_models ORDER BY created_at DESC, version DESC');
    return rows.map(trainedModelFromRow);
  }

  /**
   * Deletes what was recorded in windows from `window` on: trajectories with their LLM calls, the
   * calls recorded outside trajectories, market outcomes, and the training batches over those
   * windows that no trained model names. One transaction, so a loop resuming from an earlier point
   * records those windows again once, never beside an interrupted run's half. Trained models and
   * their batches stay: a resuming caller starts after the last of them.
   */
  async discardFrom(window: string): Promise<{ trajectories: number; llmCalls: number; outcomes: number; batches: number }> {
    windowBounds(window, this.windowHours);
    return guardConnection(`discardFrom ${window}`, () =>
      this.db.transaction(async (tx) => {
        const n = async (text: string) => (await tx.query(text, [window])).length;
        const llmCalls = await n('DELETE FROM llm_calls WHERE window_id >= $1 RETURNING id');
        const trajectories = await n('DELETE FROM trajectories WHERE window_id >= $1 RETURNING id');
        const outcomes = await n('DELETE FROM market_outcomes WHERE window_id >= $1 RETURNING window_id');
        const batches = await n(
          `DELETE FROM training_batches b WHERE EXISTS (SELECT 1 FROM unnest(b.window_ids) AS w WHERE w >= $1)
             AND NOT EXISTS (SELECT 1 FROM trained_models m WHERE m.batch_id = b.id) RETURNING id`,
        );
        return { trajectories, llmCalls, outcomes, batches };
      }),
    );
  }

  // ---- judge cache -----------------------------------------------------------------------------

  /**
   * The judge cache as a `{get, put}` pair: structurally @rlmesh/judge's ScoreCache, so a judge can
   * take the archive's table without either package depending on the other.
   */
  get scoreCache(): {
    get(hash: string): Promise<CachedJudgeScores | undefined>;
    put(hash: string, scores: CachedJudgeScores): Promise<void>;
  } {
    return { get: (hash) => this.getScore(hash), put: (hash, scores) => this.putScore(hash, scores) };
  }

  /** The cached scores for a content hash (e.g. sha256 of the window's canonical input and the judge id). */
  async getScore(hash: string): Promise<CachedJudgeScores | undefined> {
    const rows = await this.run(
      'getScore',
      `SELECT judge_id, scores, explanation, prompt_tokens, completion_tokens, cost_usd
       FROM judge_scores WHERE content_hash = $1`,
      [checkString(hash, 'hash', 200)],
    );
    if (rows.length === 0) return undefined;
    const r = rows[0];
    return {
      judgeId: r.judge_id as string,
      scores: r.scores as CachedJudgeScores['scores'],
      ...(r.explanation === null ? {} : { explanation: r.explanation as string }),
      promptTokens: r.prompt_tokens as number,
      completionTokens: r.completion_tokens as number,
      costUsd: r.cost_usd as number,
    };
  }

  /** Caches a judge's scores under a content hash; the first entry for a hash wins. */
  async putScore(hash: string, entry: CachedJudgeScores): Promise<void> {
    checkString(hash, 'hash', 200);
    if (!isPlainObject(entry)) throw new ArchiveInputError('judgeScore: expected an object');
    if (!Array.isArray(entry.scores) || entry.scores.length === 0)
      throw new ArchiveInputError('judgeScore.scores: must be a non-empty array');
    entry.scores.forEach((s, i) => {
      checkString(s?.trajectoryId, `judgeScore.scores[${i}].trajectoryId`, 200);
      const score = checkFinite(s.score, `judgeScore.scores[${i}].score`);
      if (score < 0 || score > 1) throw new ArchiveInputError(`judgeScore.scores[${i}].score: must be in [0, 1], got ${score}`);
      if (s.explanation !== undefined && typeof s.explanation !== 'string') {
        throw new ArchiveInputError(`judgeScore.scores[${i}].explanation: must be a string`);
      }
    });
    for (const key of ['promptTokens', 'completionTokens'] as const) {
      const n = entry[key];
      if (!Number.isInteger(n) || n < 0) throw new ArchiveInputError(`judgeScore.${key}: must be a non-negative integer, got ${n}`);
    }
    const cost = checkFinite(entry.costUsd, 'judgeScore.costUsd');
    if (cost < 0) throw new ArchiveInputError(`judgeScore.costUsd: must be >= 0, got ${cost}`);
    await guardConnection(`putScore ${hash}`, () =>
      this.db.query(
        `INSERT INTO judge_scores (content_hash, judge_id, scores, explanation, prompt_tokens, completion_tokens, cost_usd)
         VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) ON CONFLICT (content_hash) DO NOTHING`,
        [
          hash,
          checkString(entry.judgeId, 'judgeScore.judgeId', 200),
          toJsonb(entry.scores),
          entry.explanation ?? null,
          entry.promptTokens,
          entry.completionTokens,
          cost,
        ],
      ),
    );
  }

  // ---- export ----------------------------------------------------------------------------------

  /**
   * A window's group as ART trajectory JSONL, one line per trajectory. `rewards` (e.g. judge
   * scores by trajectory id) sets each reward; a trajectory without one gets its final P&L.
   */
  async exportWindowArt(window: string, options: { rewards?: ReadonlyMap<string, number> } = {}): Promise<string> {
    const trajectories = await this.trajectoriesOf(window);
    // One query for the whole window's calls rather than one per trajectory.
    const rows = await this.run(
      'exportWindowArt',
      `SELECT ${LLM_CALL_COLUMNS} FROM llm_calls WHERE window_id = $1 AND trajectory_id IS NOT NULL ORDER BY trajectory_id, seq`,
      [window],
    );
    const calls = new Map<string, StoredLlmCall[]>();
    for (const call of rows.map(llmCallFromRow)) {
      const list = calls.get(call.trajectoryId!) ?? [];
      list.push(call);
      calls.set(call.trajectoryId!, list);
    }
    const lines: string[] = [];
    for (const t of trajectories) {
      const reward = options.rewards?.get(t.id);
      if (reward !== undefined) checkFinite(reward, `rewards[${t.id}]`);
      lines.push(JSON.stringify(toArtTrajectory(t, calls.get(t.id) ?? [], { reward })));
    }
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  }
}

/** Inserts LLM calls in one statement; a call already present (same id or same index) is skipped. */
async function insertCalls(
  db: SqlQueryer,
  calls: CheckedLlmCall[],
  owner: { trajectoryId: string | null; windowId: string; agentId: string | null },
): Promise<void> {
  if (calls.length === 0) return;
  const rows = calls.map((c, seq) => ({
    id: c.id ?? `${owner.trajectoryId}:${seq}`,
    trajectory_id: owner.trajectoryId,
    seq: owner.trajectoryId === null ? null : seq,
    window_id: owner.windowId,
    agent_id: owner.agentId ?? c.agentId ?? null,
    model: c.model,
    messages: c.messages,
    completion: c.completion,
    finish_reason: c.finishReason,
    prompt_tokens: c.promptTokens,
    completion_tokens: c.completionTokens,
    latency_ms: c.latencyMs,
    logprobs: c.logprobs,
    at: c.at.toISOString(),
  }));
  await db.query(
    `INSERT INTO llm_calls (${LLM_CALL_COLUMNS})
     SELECT ${LLM_CALL_COLUMNS} FROM jsonb_to_recordset($1::jsonb) AS x(
       id text, trajectory_id text, seq integer, window_id text, agent_id text, model text, messages jsonb, completion text,
       finish_reason text, prompt_tokens integer, completion_tokens integer, latency_ms double precision, logprobs jsonb, at timestamptz)
     ON CONFLICT DO NOTHING`,
    [toJsonb(rows)],
  );
}

/** Opens an archive on `target`: `memory`, a `postgres://` URL, or a PGlite data directory. */
export function openArchive(target = 'memory', options: ArchiveOptions = {}): Promise<Archive> {
  return Archive.open(openSqlClient(target), options);
}
