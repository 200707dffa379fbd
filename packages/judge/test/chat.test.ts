import { blindLabels, CachedJudge, ChatJudge, type ChatJudgeOptions, type JudgeInput, JudgeMeter, MemoryScoreCache } from '@rlmesh/judge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOpenAI, idsIn, startFakeOpenAI } from './fake-openai';

const input: JudgeInput = {
  windowId: '2026-01-01T00:00Z',
  trajectories: [
    {
      id: 'w/a',
      agentId: 'a',
      finalPnl: 120,
      steps: [
        { action: 'BUY 3 ACME', side: 'buy', asset: 'ACME', price: 100, status: 'filled', time: '2026-01-01T00:01:00.000Z' },
        { action: 'HOLD', side: 'hold', status: 'held' },
      ],
    },
    {
      id: 'w/b',
      agentId: 'b',
      finalPnl: -40,
      steps: [{ action: 'SELL 9 ACME', side: 'sell', asset: 'ACME', status: 'refused', reason: 'cannot sell 9 ACME: holding 0' }],
    },
  ],
  context: {
    assets: [{ asset: 'ACME', startPrice: 100, endPrice: 104, high: 104.123456789 }],
    outcomes: [
      {
        trajectoryId: 'w/a',
        step: 0,
        asset: 'ACME',
        forwardReturn: 0.031,
        horizonMs: 600_000,
        news: ['ACME jumps 3.0% on surprise results'],
      },
    ],
  },
};

let server: FakeOpenAI;
beforeAll(async () => {
  server = await startFakeOpenAI();
});
afterAll(() => server.close());

function judge(queue: FakeOpenAI['queue'], opts: ChatJudgeOptions = {}) {
  server.queue = queue;
  server.received.length = 0;
  return new ChatJudge(
    {
      model: 'judge-1',
      baseURL: server.url,
      apiKeyEnv: 'TEST_JUDGE_KEY',
      backoffMs: 5,
      timeoutMs: 2_000,
      prices: { inputPerMillion: 2, outputPerMillion: 8 },
      ...opts,
    },
    { TEST_JUDGE_KEY: 'sk-test' },
  );
}

describe('ChatJudge against an OpenAI-compatible server', () => {
  it('sends a context-rich request and reads a good answer, metering tokens and cost', async () => {
    const r = await judge(['good'], { blind: false }).score(input);
    expect(r).toMatchObject({
      kind: 'scored',
      attempts: 1,
      cached: false,
      scores: [
        { id: 'w/a', score: 1 },
        { id: 'w/b', score: 0.5 },
      ],
    });
    expect(r.usage).toEqual({ requests: 1, promptTokens: 1000, completionTokens: 50, costUsd: (1000 * 2 + 50 * 8) / 1e6 });
    const [req] = server.received;
    expect(req.headers.authorization).toBe('Bearer sk-test');
    expect(req.body).toMatchObject({ model: 'judge-1', temperature: 0, response_format: { type: 'json_object' } });
    const [system, user] = req.body.messages;
    expect(system.content).toContain('ground truth the agents did NOT have');
    expect(system.content).toContain('"trajectory_id"');
    expect(idsIn(user.content)).toEqual(['w/a', 'w/b']);
    expect(user.content).toContain(
      '0. 2026-01-01T00:01:00.000Z BUY 3 ACME @ 100.00 filled -> [truth] ACME moved +3.10% over the next 10 min',
    );
    expect(user.content).toContain('news within the horizon: ACME jumps 3.0% on surprise results');
    expect(user.content).toContain('SELL 9 ACME refused (cannot sell 9 ACME: holding 0)');
    expect(user.content).toContain('"endPrice":104,"high":104.12}'); // rounded to 5 significant digits
    expect(user.content).not.toContain('"outcomes"');
    expect(user.content).toContain('agent: a; P&L over the window: 120.00');
  });

  it('shows trajectories blind by default, and maps the labels back', async () => {
    const r = await judge(['good']).score(input);
    const labels = blindLabels(input);
    expect(labels).toEqual(
      new Map([
        ['w/b', 'T1'],
        ['w/a', 'T2'],
      ]),
    ); // not the input order, so a mapping by position would fail
    const user = server.received[0].body.messages[1].content;
    expect(idsIn(user)).toEqual(['T1', 'T2']);
    expect(user).not.toMatch(/w\/a|w\/b|agent: /);
    // The fake server scores the first trajectory of the prompt 1 and the second 0.5.
    const expected = input.trajectories.map((t) => ({ id: t.id, score: labels.get(t.id) === 'T1' ? 1 : 0.5 }));
    expect(r).toMatchObject({ kind: 'scored', scores: expected });
    expect(blindLabels(structuredClone(input))).toEqual(labels);
  });

  it('reads an answer wrapped in prose and a code fence', async () => {
    expect((await judge(['fenced']).score(input)).kind).toBe('scored');
  });

  it('retries garbage and a server error, then scores', async () => {
    const r = await judge(['garbage', 500, 'good']).score(input);
    expect(r).toMatchObject({ kind: 'scored', attempts: 3 });
    expect(r.usage.requests).toBe(3);
    expect(r.usage.promptTokens).toBe(2000); // the 500 reported no usage; the garbage answer did
    expect(server.received).toHaveLength(3);
  });

  it.each([
    ['wrong-id', /attempt 3: scores\[0\]\.trajectory_id "nobody" is not a trajectory of the window/],
    ['out-of-range', /attempt 3: scores\[0\]\.score must be a number in \[0, 1\], got 7/],
    ['missing-id', /attempt 3: no score for "T1"/],
    ['garbage', /attempt 1: unreadable answer: no JSON object in the answer; attempt 2/],
  ] as const)('skips a window after repeated %s answers, and counts it', async (behaviour, reason) => {
    const meter = new JudgeMeter();
    const r = meter.record(await judge([behaviour]).score(input));
    expect(r.kind).toBe('skipped');
    if (r.kind === 'skipped') expect(r.reason).toMatch(reason);
    expect(server.received).toHaveLength(3);
    expect(meter.toJSON()).toMatchObject({ skipped: 1, scored: 0, requests: 3, retries: 2, promptTokens: 3000 });
  });

  it('gives up on a silent server after its timeout and retries', async () => {
    const t0 = Date.now();
    const r = await judge(['silent'], { timeoutMs: 150, maxAttempts: 2 }).score(input);
    expect(r).toMatchObject({
      kind: 'skipped',
      attempts: 2,
      reason: 'attempt 1: no answer within 150 ms; attempt 2: no answer within 150 ms',
    });
    expect(server.received).toHaveLength(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
  });

  it('does not retry what retrying cannot fix', async () => {
    const r = await judge([401]).score(input);
    expect(r).toMatchObject({ kind: 'skipped', attempts: 1 });
    if (r.kind === 'skipped') expect(r.reason).toMatch(/^attempt 1: HTTP 401: /);
    expect(server.received).toHaveLength(1);
  });

  it('skips when nothing listens', async () => {
    const r = await new ChatJudge({ model: 'm', baseURL: 'http://127.0.0.1:9/v1', maxAttempts: 2, backoffMs: 1 }, {}).score(input);
    expect(r.kind).toBe('skipped');
    if (r.kind === 'skipped') expect(r.reason).toMatch(/attempt 2: request failed: fetch failed/);
  });

  it('serves a repeated window from the cache without a request', async () => {
    const cache = new MemoryScoreCache();
    const meter = new JudgeMeter();
    const cached = new CachedJudge(judge(['good']), cache);
    const first = meter.record(await cached.score(input));
    const second = meter.record(await cached.score(structuredClone(input)));
    expect(server.received).toHaveLength(1);
    expect(second).toMatchObject({ kind: 'scored', cached: true, attempts: 0, usage: { requests: 0, promptTokens: 0 } });
    expect(second.kind === 'scored' && first.kind === 'scored' && second.scores).toEqual(first.kind === 'scored' && first.scores);
    expect(meter.toJSON()).toMatchObject({ scored: 1, cached: 1, requests: 1 });
    // Another window, or another prompt, is another key.
    await cached.score({ ...input, trajectories: [{ ...input.trajectories[0], finalPnl: 121 }, input.trajectories[1]] });
    expect(server.received).toHaveLength(2);
    await new CachedJudge(judge(['good'], { rubric: 'Only P&L counts.' }), cache).score(input);
    expect(server.received).toHaveLength(1);
    expect(cache.size).toBe(3);
  });

  it('does not cache a skipped window', async () => {
    const cache = new MemoryScoreCache();
    const cached = new CachedJudge(judge(['garbage', 'garbage', 'garbage', 'good'], { maxAttempts: 3 }), cache);
    expect((await cached.score(input)).kind).toBe('skipped');
    expect((await cached.score(input)).kind).toBe('scored');
    expect(server.received).toHaveLength(4);
  });

  it('refuses bad options naming the option', () => {
    expect(() => new ChatJudge({}, {})).toThrow('model: is required (or set JUDGE_MODEL)');
    expect(() => new ChatJudge({ model: 'm', baseURL: 'ftp://x' }, {})).toThrow(/^baseURL: must be an http\(s\) URL/);
    expect(() => new ChatJudge({ model: 'm', maxAttempts: 0 }, {})).toThrow('maxAttempts: must be an integer >= 1, got 0');
    expect(new ChatJudge({}, { JUDGE_MODEL: 'from-env', OPENAI_BASE_URL: 'http://127.0.0.1:1/v1/' }).id).toMatch(
      /^chat:from-env@127\.0\.0\.1:1:[0-9a-f]{12}$/,
    );
  });
});
