/**
 * The archive contract, run unchanged against in-process PGlite and a real PostgreSQL server (a fresh
 * database per run). The server alone also gets its connection killed in the middle of a write.
 */
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Archive,
  ArchiveConnectionError,
  ArchiveInputError,
  ArchiveStateError,
  type ArtTrajectory,
  isChoice,
  type LlmCallInput,
  MIGRATIONS,
  migrate,
  PostgresClient,
  schemaVersion,
} from '../src';
import type { Backend, TestDatabase } from './backends';

const HOUR = 3_600_000;
const at = (iso: string, plusMs = 0) => new Date(new Date(iso).getTime() + plusMs);

function call(content: string, extra: Partial<LlmCallInput> = {}): LlmCallInput {
  return {
    model: 'gpt2-tiny',
    messages: [
      { role: 'system', content: 'You trade.' },
      { role: 'user', content },
    ],
    completion: `answer to ${content}`,
    promptTokens: 12,
    completionTokens: 3,
    latencyMs: 4.5,
    logprobs: [
      { token: 'answer', logprob: -0.25 },
      { token: ' to', logprob: -0.5 },
    ],
    ...extra,
  };
}

async function count(db: TestDatabase, sql: string, params: unknown[] = []): Promise<number> {
  const rows = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0].n;
}

/** Registers the whole contract for one backend (one test file per backend, so the two run in parallel). */
export function archiveContract(backend: Backend): void {
  describe.skipIf(backend.missing !== null)(`archive on ${backend.name}`, () => {
    let db: TestDatabase;
    let archive: Archive;

    beforeAll(async () => {
      db = await backend.create();
    });
    afterAll(async () => {
      await db?.drop();
    });

    it('migrates an empty database, re-runs as a no-op, and refuses a newer schema', async () => {
      expect(await schemaVersion(db.client)).toBe(0);
      // Two processes starting at once: the advisory lock lets exactly one apply each migration.
      const [one, two] = await Promise.all([migrate(db.client), migrate(db.client)]);
      expect([...one, ...two]).toEqual(MIGRATIONS.map((m) => m.version));
      expect(await migrate(db.client)).toEqual([]);
      expect(await schemaVersion(db.client)).toBe(MIGRATIONS.length);
      const tables = await db.client.query<{ t: string }>(
        `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
      );
      expect(tables.map((r) => r.t)).toEqual([
        'judge_scores',
        'llm_calls',
        'market_outcomes',
        'schema_migrations',
        'trained_models',
        'training_batches',
        'trajectories',
      ]);
      await db.client.query(`INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')`);
      await expect(Archive.open(db.client)).rejects.toThrow(ArchiveStateError);
      await expect(migrate(db.client)).rejects.toThrow(/schema is at version 99 but this code knows versions up to 1/);
      await db.client.query('DELETE FROM schema_migrations WHERE version = 99');
      archive = await Archive.open(db.client);
    });

    it('records 8 agents in parallel, each trajectory once and whole, stamped with its window', async () => {
      const agents = Array.from({ length: 8 }, (_, i) => `agent-${i}`);
      const windows = ['2026-12-02T07:00Z', '2026-12-02T08:00Z'];
      await Promise.all(
        agents.map(async (agent, a) => {
          for (const [w, window] of windows.entries()) {
            const start = at(`${window.slice(0, -1)}:00Z`, (a + 1) * 60_000);
            const id = archive.startTrajectory({ agentId: agent, startedAt: start, metadata: { style: a % 2 ? 'momentum' : 'value' } });
            for (let s = 0; s < 5; s++) {
              archive.appendStep(id, {
                observation: { price: 100 + s },
                action: { buy: s },
                reward: s / 10,
                at: at(start.toISOString(), s * 1000),
              });
              await archive.recordLlmCall({ ...call(`${agent} step ${s}`), trajectoryId: id, at: at(start.toISOString(), s * 1000) });
              await new Promise((r) => setImmediate(r));
            }
            const result = await archive.endTrajectory(id, { finalPnl: a * 10 - w, endedAt: at(start.toISOString(), 10 * 60_000) });
            expect(result).toEqual({ id, windowId: window, written: true });
          }
        }),
      );
      expect(await count(db, 'trajectories')).toBe(16);
      expect(await count(db, 'llm_calls')).toBe(80);
      const seven = await archive.trajectoriesOf('2026-12-02T07:00Z');
      expect(seven).toHaveLength(8);
      for (const t of seven) {
        expect(t.scenarioId).toBe(t.windowId);
        expect(t.steps.map((s) => s.reward)).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
        const calls = await archive.llmCallsOf(t.id);
        expect(calls.map((c) => c.seq)).toEqual([0, 1, 2, 3, 4]);
        expect(calls.every((c) => c.agentId === t.agentId && c.windowId === t.windowId)).toBe(true);
        expect(calls[0].logprobs).toEqual([
          { token: 'answer', logprob: -0.25 },
          { token: ' to', logprob: -0.5 },
        ]);
      }
    });

    it('finds windows with enough agents, by range and by window length', async () => {
      // One more window with only 3 agents.
      for (let a = 0; a < 3; a++) {
        await archive.recordTrajectory({
          agentId: `agent-${a}`,
          startedAt: '2026-12-02T09:30:00Z',
          endedAt: '2026-12-02T09:40:00Z',
          steps: [],
          finalPnl: 1,
        });
      }
      const eight = await archive.windowsWithAgents(8);
      expect(eight.map((w) => [w.windowId, w.agents, w.trajectories])).toEqual([
        ['2026-12-02T07:00Z', 8, 8],
        ['2026-12-02T08:00Z', 8, 8],
      ]);
      expect(eight[0].meanPnl).toBeCloseTo(35, 10);
      expect((await archive.windowsWithAgents(3)).map((w) => w.windowId)).toContain('2026-12-02T09:00Z');
      expect(await archive.windowsWithAgents(9)).toEqual([]);
      const ranged = await archive.windowsWithAgents(1, { from: '2026-12-02T08:00Z', to: '2026-12-02T09:00Z' });
      expect(ranged.map((w) => w.windowId)).toEqual(['2026-12-02T08:00Z']);
      // Two-hour windows are a different slicing: an archive with that length does not mix them in.
      const twoHour = await Archive.open(db.client, { windowHours: 2 });
      expect(await twoHour.windowsWithAgents(1)).toEqual([]);
      expect(twoHour.windowOf(new Date('2026-12-02T09:30:00Z'))).toBe('2026-12-02T08:00Z');
      await expect(archive.trajectoriesOf('2026-12-02T07:30Z')).rejects.toThrow(/windowId: expected YYYY-MM-DDTHH:00Z/);
    });

    it('stores market outcomes per window and asset, replacing a re-recorded one', async () => {
      await archive.recordMarketOutcome({
        windowId: '2026-12-02T07:00Z',
        asset: 'TRUMP',
        startPrice: 12.5,
        endPrice: 10,
        events: ['SEC probe'],
      });
      await archive.recordMarketOutcome({ windowId: '2026-12-02T07:00Z', asset: 'BTC', startPrice: 100, endPrice: 101, events: [] });
      await archive.recordMarketOutcome({
        windowId: '2026-12-02T07:00Z',
        asset: 'TRUMP',
        startPrice: 12.5,
        endPrice: 9.5,
        events: [{ kind: 'news', text: 'SEC probe' }],
      });
      expect(await archive.outcomesOf('2026-12-02T07:00Z')).toEqual([
        { windowId: '2026-12-02T07:00Z', asset: 'BTC', startPrice: 100, endPrice: 101, events: [] },
        { windowId: '2026-12-02T07:00Z', asset: 'TRUMP', startPrice: 12.5, endPrice: 9.5, events: [{ kind: 'news', text: 'SEC probe' }] },
      ]);
      expect(await archive.outcomesOf('2026-12-02T08:00Z')).toEqual([]);
      await expect(
        archive.recordMarketOutcome({ windowId: '2026-12-02T07:00Z', asset: 'X', startPrice: Number.NaN, endPrice: 1, events: [] }),
      ).rejects.toThrow(/marketOutcome.startPrice: must be a finite number, got NaN/);
    });

    it('drops at most the capped share of every window, reproducibly from the seed', async () => {
      const from = '2026-11-01T00:00Z';
      for (let w = 0; w < 3; w++) {
        for (let a = 0; a < 10; a++) {
          const start = at('2026-11-01T00:00:00Z', w * HOUR + a * 1000);
          await archive.recordTrajectory({ agentId: `d-${a}`, startedAt: start, endedAt: start, steps: [], finalPnl: a });
        }
      }
      const range = { minAgents: 5, from, to: '2026-11-02T00:00Z' };
      // 30 available, 10 wanted: 1 - 10/30 would be 67%, capped at 30%, so each window of 10 loses 3.
      const capped = await archive.trainingGroups({ ...range, target: 10, seed: 7 });
      expect(capped.rate).toBe(0.3);
      expect(capped.available).toBe(30);
      expect(capped.windows.map((w) => w.members.length)).toEqual([7, 7, 7]);
      expect(capped.kept).toBe(21);
      const again = await archive.trainingGroups({ ...range, target: 10, seed: 7 });
      expect(again.windows.map((w) => w.members.map((t) => t.id))).toEqual(capped.windows.map((w) => w.members.map((t) => t.id)));
      const other = await archive.trainingGroups({ ...range, target: 10, seed: 8 });
      expect(other.windows.map((w) => w.members.map((t) => t.id))).not.toEqual(capped.windows.map((w) => w.members.map((t) => t.id)));
      // Below the cap the rule's own rate applies: 1 - 25/30 = 1/6, one of 10 per window.
      const mild = await archive.trainingGroups({ ...range, target: 25, seed: 7 });
      expect(mild.rate).toBeCloseTo(1 / 6, 12);
      expect(mild.windows.map((w) => w.members.length)).toEqual([9, 9, 9]);
      expect((await archive.trainingGroups({ ...range, target: 30, seed: 7 })).kept).toBe(30);

      const batch = await archive.createTrainingBatch({
        windowIds: capped.windows.map((w) => w.windowId),
        trajectoryIds: capped.windows.flatMap((w) => w.members.map((t) => t.id)),
        dropoutRate: capped.rate,
      });
      await archive.setTrainingBatchStatus(batch, 'trained');
      const stored = await archive.trainingBatch(batch);
      expect(stored?.status).toBe('trained');
      expect(stored?.trajectoryIds).toHaveLength(21);
      expect(stored?.windowIds).toEqual(['2026-11-01T00:00Z', '2026-11-01T01:00Z', '2026-11-01T02:00Z']);
      await expect(archive.setTrainingBatchStatus(batch, 'done' as 'trained')).rejects.toThrow(/trainingBatch.status: must be one of/);
      await archive.recordTrainedModel({
        version: 'babylon-1',
        path: 'runs/b/step_1',
        baseModel: 'gpt2',
        batchId: batch,
        metrics: { loss: 0.5 },
      });
      expect((await archive.trainedModels()).map((m) => [m.version, m.batchId, m.metrics])).toEqual([['babylon-1', batch, { loss: 0.5 }]]);
    });

    it('writes an LLM call outside any trajectory at once, stamped with its own window, once per id', async () => {
      const outside = { ...call('standalone'), id: 'chatcmpl-42', agentId: 'api-user', at: '2026-12-02T07:45:00Z' };
      expect(await archive.recordLlmCall(outside)).toBe('chatcmpl-42');
      expect(await archive.recordLlmCall(outside)).toBe('chatcmpl-42');
      const inWindow = await archive.llmCallsInWindow('2026-12-02T07:00Z');
      const standalone = inWindow.filter((c) => c.trajectoryId === null);
      expect(standalone.map((c) => [c.id, c.agentId, c.seq, c.windowId, c.completion])).toEqual([
        ['chatcmpl-42', 'api-user', null, '2026-12-02T07:00Z', 'answer to standalone'],
      ]);
      expect(inWindow).toHaveLength(41);
      await expect(archive.recordLlmCall({ ...outside, trajectoryId: 'closed' })).rejects.toThrow(
        /llmCall.trajectoryId: no open trajectory "closed"/,
      );
      await expect(archive.recordLlmCall({ ...outside, logprobs: [{ token: 'a', logprob: 0.5 }] })).rejects.toThrow(
        'llmCall.logprobs[0].logprob: must be <= 0 (a log-probability), got 0.5',
      );
    });

    it('caches judge scores by content hash; the first entry wins', async () => {
      expect(await archive.getScore('sha256:abc')).toBeUndefined();
      const entry = {
        judgeId: 'heuristic-v1',
        scores: [
          { trajectoryId: 't1', score: 0.9, explanation: 'sold before the crash' },
          { trajectoryId: 't2', score: 0.1 },
        ],
        promptTokens: 120,
        completionTokens: 30,
        costUsd: 0.0004,
      };
      await archive.putScore('sha256:abc', entry);
      await archive.scoreCache.put('sha256:abc', { ...entry, scores: [{ trajectoryId: 't1', score: 0 }] });
      expect(await archive.getScore('sha256:abc')).toEqual(entry);
      expect(await archive.scoreCache.get('sha256:abc')).toEqual(entry);
      await expect(archive.putScore('h2', { ...entry, scores: [{ trajectoryId: 't1', score: 1.5 }] })).rejects.toThrow(
        /judgeScore.scores\[0\].score: must be in \[0, 1\], got 1.5/,
      );
    });

    it('exports a window as ART JSONL: one line per trajectory, choices with logprobs, no repeated history', async () => {
      const start = new Date('2026-12-03T10:05:00Z');
      const id = archive.startTrajectory({
        agentId: 'chatty',
        startedAt: start,
        modelVersion: 'babylon-1',
        metadata: { style: 'momentum' },
      });
      archive.appendStep(id, { observation: 'p=10', action: 'buy', reward: 1 });
      const first = call('price 10');
      await archive.recordLlmCall({ ...first, trajectoryId: id });
      // The second call continues the chat: its prompt repeats the first exchange.
      await archive.recordLlmCall({
        ...call('price 9'),
        trajectoryId: id,
        messages: [...first.messages, { role: 'assistant', content: first.completion }, { role: 'user', content: 'price 9' }],
        finishReason: 'length',
      });
      await archive.endTrajectory(id, { finalPnl: -2.5, endedAt: new Date('2026-12-03T10:20:00Z') });
      await archive.recordTrajectory({
        agentId: 'scripted',
        startedAt: start,
        endedAt: start,
        steps: [{ observation: 1, action: 2, reward: 0 }],
        finalPnl: 4,
      });

      const jsonl = await archive.exportWindowArt('2026-12-03T10:00Z', { rewards: new Map([[id, 0.75]]) });
      const lines = jsonl.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      const parsed = lines.map((l) => JSON.parse(l) as ArtTrajectory);
      const [chat, scripted] = ['chatty', 'scripted'].map((agent) => parsed.find((t) => t.metadata.agent_id === agent)!);
      expect(Object.keys(chat).sort()).toEqual(['logs', 'messages_and_choices', 'metadata', 'metrics', 'reward']);
      expect(chat.reward).toBe(0.75);
      expect(chat.metrics).toMatchObject({ final_pnl: -2.5, steps: 1, llm_calls: 2, completion_tokens: 6 });
      expect(chat.metadata).toMatchObject({
        trajectory_id: id,
        agent_id: 'chatty',
        window_id: '2026-12-03T10:00Z',
        model_version: 'babylon-1',
        style: 'momentum',
      });
      const roles = chat.messages_and_choices.map((m) => (isChoice(m) ? `choice:${m.finish_reason}` : m.role));
      expect(roles).toEqual(['system', 'user', 'choice:stop', 'user', 'choice:length']);
      const choice = chat.messages_and_choices[2];
      expect(choice).toEqual({
        finish_reason: 'stop',
        index: 0,
        logprobs: {
          content: [
            { token: 'answer', logprob: -0.25, bytes: [...Buffer.from('answer')], top_logprobs: [] },
            { token: ' to', logprob: -0.5, bytes: [...Buffer.from(' to')], top_logprobs: [] },
          ],
          refusal: null,
        },
        message: { role: 'assistant', content: 'answer to price 10', refusal: null },
      });
      expect(scripted.reward).toBe(4);
      expect(scripted.messages_and_choices).toEqual([
        { role: 'user', content: '1' },
        { role: 'assistant', content: '2' },
      ]);
      expect(await archive.exportWindowArt('2026-12-04T10:00Z')).toBe('');
    });

    it('rejects malformed trajectories naming the field, writes nothing, and keeps an open one retryable', async () => {
      const before = await count(db, 'trajectories');
      const good = { agentId: 'm', startedAt: '2026-12-05T00:00:00Z', endedAt: '2026-12-05T00:01:00Z', steps: [], finalPnl: 0 };
      const bad = (patch: object) => archive.recordTrajectory({ ...good, ...patch } as never);
      await expect(bad({ agentId: undefined })).rejects.toThrow(/^trajectory.agentId: must be 1-200 characters.*got undefined$/);
      await expect(bad({ finalPnl: Number.NaN })).rejects.toThrow('trajectory.finalPnl: must be a finite number, got NaN');
      await expect(bad({ steps: 'many' })).rejects.toThrow('trajectory.steps: must be an array of steps, got "many"');
      await expect(bad({ steps: [{ observation: 1, action: 1, reward: '1' }] })).rejects.toThrow(
        'trajectory.steps[0].reward: must be a finite number, got "1"',
      );
      await expect(bad({ steps: [{ action: 1, reward: 1 }] })).rejects.toThrow(/trajectory.steps\[0\].observation: is required/);
      await expect(bad({ endedAt: '2026-12-04T00:00:00Z' })).rejects.toThrow(/trajectory.endedAt: must not be before startedAt/);
      await expect(bad({ llmCalls: [{ ...call('x'), messages: [] }] })).rejects.toThrow(
        /trajectory.llmCalls\[0\].messages: must be a non-empty array/,
      );
      await expect(bad({ metadata: { f: () => 1 } })).rejects.toThrow(/trajectory.metadata.f: must be JSON/);
      await expect(bad({ agentId: undefined })).rejects.toBeInstanceOf(ArchiveInputError);
      expect(() => archive.appendStep('nope', { observation: 1, action: 1, reward: 1 })).toThrow(
        /appendStep.trajectoryId: no open trajectory "nope"/,
      );

      const id = archive.startTrajectory({ agentId: 'm', startedAt: good.startedAt });
      await expect(archive.endTrajectory(id, { finalPnl: Number.POSITIVE_INFINITY, endedAt: good.endedAt })).rejects.toThrow(
        /finalPnl: must be a finite number, got Infinity/,
      );
      expect(await count(db, 'trajectories')).toBe(before);
      expect((await archive.endTrajectory(id, { finalPnl: 3, endedAt: good.endedAt })).written).toBe(true);
      // A retry of a write whose answer was lost finds the id and writes nothing.
      expect((await archive.recordTrajectory({ ...good, id })).written).toBe(false);
      await expect(archive.recordTrajectory({ ...good, id, agentId: 'other' })).rejects.toThrow(/already recorded for agent "m"/);
      expect(await count(db, 'trajectories')).toBe(before + 1);
    });

    it('stores U+0000, which PostgreSQL text refuses, as U+FFFD, keeping the token bytes exact', async () => {
      const nul = 'BUY\u00001 ACME';
      const { id } = await archive.recordTrajectory({
        agentId: 'nul',
        startedAt: '2029-01-01T00:01:00Z',
        endedAt: '2029-01-01T00:02:00Z',
        steps: [{ observation: { text: nul }, action: nul, reward: 0, at: '2029-01-01T00:01:00Z' }],
        finalPnl: 0,
        llmCalls: [{ ...call(nul), completion: nul, logprobs: [{ token: '\u0000', logprob: -1, bytes: [0] }] }],
      });
      await archive.recordLlmCall({ ...call(nul), completion: nul, agentId: 'nul', at: '2029-01-01T00:03:00Z' });
      const [t] = await archive.trajectoriesOf('2029-01-01T00:00Z');
      expect(t.steps[0].action).toBe('BUY\ufffd1 ACME');
      const [own] = await archive.llmCallsOf(id);
      expect([own.completion, own.messages[1].content, own.logprobs?.[0]]).toEqual([
        'BUY\ufffd1 ACME',
        'BUY\ufffd1 ACME',
        { token: '\ufffd', logprob: -1, bytes: [0] },
      ]);
      expect((await archive.llmCallsInWindow('2029-01-01T00:00Z')).map((c) => c.completion)).toEqual([
        'BUY\ufffd1 ACME',
        'BUY\ufffd1 ACME',
      ]);
    });

    it('discards every window from a point on, whole, keeping trained models and their batches', async () => {
      const windows = ['2030-01-01T00:00Z', '2030-01-01T01:00Z', '2030-01-01T02:00Z'];
      const ids: string[] = [];
      for (const [w, window] of windows.entries()) {
        const start = at(`${window.slice(0, -1)}:00Z`, 60_000);
        for (const agent of ['p', 'q']) {
          const { id } = await archive.recordTrajectory({
            agentId: agent,
            startedAt: start,
            endedAt: at(start.toISOString(), 30 * 60_000),
            steps: [{ observation: {}, action: 'HOLD', reward: 0, at: start }],
            finalPnl: w,
            llmCalls: [{ ...call(`${agent} ${w}`), at: start }],
          });
          ids.push(id);
        }
        await archive.recordLlmCall({ ...call(`loose ${w}`), agentId: 'p', at: at(start.toISOString(), 1000) });
        await archive.recordMarketOutcome({ windowId: window, asset: 'ACME', startPrice: 1, endPrice: 2, events: [] });
      }
      const trained = await archive.createTrainingBatch({ windowIds: windows.slice(0, 2), trajectoryIds: ids.slice(0, 4) });
      await archive.setTrainingBatchStatus(trained, 'trained');
      await archive.recordTrainedModel({ version: 'discard-1', path: 'x', baseModel: 'gpt2', batchId: trained });
      const interrupted = await archive.createTrainingBatch({ windowIds: windows.slice(1), trajectoryIds: ids.slice(2) });
      await archive.setTrainingBatchStatus(interrupted, 'training');
      const before = await count(db, 'trajectories');

      expect(await archive.discardFrom(windows[1])).toEqual({ trajectories: 4, llmCalls: 6, outcomes: 2, batches: 1 });
      expect(await count(db, 'trajectories')).toBe(before - 4);
      expect((await archive.trajectoriesOf(windows[0])).map((t) => t.agentId).sort()).toEqual(['p', 'q']);
      expect(await archive.llmCallsInWindow(windows[0])).toHaveLength(3);
      for (const window of windows.slice(1)) {
        expect(await archive.trajectoriesOf(window)).toEqual([]);
        expect(await archive.llmCallsInWindow(window)).toEqual([]);
        expect(await archive.outcomesOf(window)).toEqual([]);
      }
      expect(await archive.trainingBatch(interrupted)).toBeUndefined();
      expect((await archive.trainingBatch(trained))?.status).toBe('trained');
      // Nothing left to discard: a second call deletes nothing.
      expect(await archive.discardFrom(windows[1])).toEqual({ trajectories: 0, llmCalls: 0, outcomes: 0, batches: 0 });
      await expect(archive.discardFrom('2030-01-01T01:30Z')).rejects.toThrow(ArchiveInputError);
    });

    // PGlite runs in this process: it has no connection that another session could terminate.
    if (!backend.killable) return;
    it('connects by host and port as well as by URL', async () => {
      const url = new URL(db.url!);
      const byParts = new PostgresClient({
        host: url.hostname,
        port: Number(url.port || 5432),
        user: url.username,
        database: url.pathname.slice(1),
      });
      try {
        expect(await schemaVersion(byParts)).toBe(MIGRATIONS.length);
      } finally {
        await byParts.close();
      }
    });

    it('survives its connection being killed mid-write: a clear error, then a clean retry', async () => {
      const id = archive.startTrajectory({ agentId: 'victim', startedAt: '2026-12-01T00:00:00Z' });
      archive.appendStep(id, { observation: 0, action: 0, reward: 0 });
      await archive.recordLlmCall({ ...call('a'), trajectoryId: id });
      await archive.recordLlmCall({ ...call('b'), trajectoryId: id });
      // Hold llm_calls so the write blocks after inserting the trajectory row, inside its transaction.
      const blocker = new Client({ connectionString: db.url });
      await blocker.connect();
      try {
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE llm_calls IN ACCESS EXCLUSIVE MODE');
        const write = archive.endTrajectory(id, { finalPnl: 1 });
        write.catch(() => {});
        let victim: number | undefined;
        for (let i = 0; i < 400 && victim === undefined; i++) {
          const rows = await blocker.query(
            `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
          );
          victim = rows.rows[0]?.pid;
          if (victim === undefined) await new Promise((r) => setTimeout(r, 25));
        }
        expect(victim).toBeDefined();
        await blocker.query('SELECT pg_terminate_backend($1)', [victim]);
        await blocker.query('ROLLBACK');
        const err = await write.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ArchiveConnectionError);
        expect(String(err)).toMatch(/connection was lost during recordTrajectory .*retrying the same call is safe/);
      } finally {
        await blocker.end();
      }
      expect(await count(db, 'trajectories WHERE id = $1', [id])).toBe(0);
      expect((await archive.endTrajectory(id, { finalPnl: 1 })).written).toBe(true);
      expect(await count(db, 'trajectories WHERE id = $1', [id])).toBe(1);
      expect(await count(db, 'llm_calls WHERE trajectory_id = $1', [id])).toBe(2);
    });
  });
}
