/**
 * The OpenAI-compatible endpoint, checked with OpenAI's own npm client against a real PolicyCore
 * serving a tiny GPT-2 with a BPE tokenizer: the completion equals PolicyCore.generate on the chat
 * template's prompt (tokens and log-probs), streaming adds up to the same text, the model list holds
 * the chat-capable runs, bad requests come back as the client's error classes with the parameter
 * named while the server keeps serving, and the recorder gets every completed call, a failing one
 * without failing the caller.
 */
import type { Meter } from '@opentelemetry/api';
import { Discrete, distributionFor, Rng, TokenSequence } from '@rlmesh/core';
import {
  buildActProgram,
  type CausalLmPolicy,
  GPT2_124M,
  type Gpt2Config,
  gpt2Model,
  gpt2ModelConfig,
  type ModelContext,
} from '@rlmesh/learner';
import { keys, MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { trainBpe } from '@rlmesh/text';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyCore } from '../src/core';
import { type CallRecorder, CompletionText, type OpenAiServer, type RecordedCall, renderChat, startOpenAiServer } from '../src/openai';
import { quietLogger } from './fixture';

const CORPUS = [
  'System: You trade prediction markets.\nUser: BTC is up 3%. Buy or sell?\nAssistant: buy 10 shares of YES',
  'User: What is the price of ETH?\nAssistant: ETH trades at 2,400 dollars; I would hold.',
  'User: Sell everything now!\nAssistant: selling 5 NO at 0.40',
];
const tokenizer = trainBpe(CORPUS, { vocab_size: 320 });
const TOKENIZER_JSON = new TextEncoder().encode(JSON.stringify(tokenizer.toJSON()));
const CONTEXT = 128;
const CONFIG: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: tokenizer.vocabSize,
  n_positions: CONTEXT,
  n_embd: 16,
  n_layer: 1,
  n_head: 2,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: tokenizer.bosId ?? -1,
  eos_token_id: tokenizer.eosId ?? -1,
};

async function publishGpt2(bus: MemoryBus, run: string, withTokenizer: boolean) {
  const obs = new TokenSequence(CONFIG.vocab_size, CONFIG.n_positions, 0);
  const actions = new Discrete(CONFIG.vocab_size);
  const ctx = { observationSpace: obs, actionSpace: actions, distribution: distributionFor(actions) } as unknown as ModelContext;
  const policy = gpt2Model.build(CONFIG, ctx) as CausalLmPolicy;
  const act = buildActProgram(policy);
  const rng = new Rng(7);
  // Random weights large enough that the next-token distribution is far from flat.
  const weights = new Map(
    policy.module.namedParameters().map((p) => {
      const gain = /ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0;
      return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.5 * rng.normal())];
    }),
  );
  await publishPolicy(bus, run, {
    version: 1,
    params: act.layout.pack(weights),
    program: act.onnx,
    spec: { observationSpace: spaceToProto(obs), actionSpace: spaceToProto(actions), model: policy.name, numParameters: act.layout.total },
    distribution: 'categorical',
    modelConfig: gpt2ModelConfig(CONFIG),
    tokenizer: withTokenizer ? TOKENIZER_JSON : undefined,
  });
}

/** Keeps calls, and fails the ones from agent "flaky" as a database that went away would. */
class TestRecorder implements CallRecorder {
  readonly calls: RecordedCall[] = [];
  async record(call: RecordedCall): Promise<void> {
    if (call.agentId === 'flaky') throw new Error('database went away');
    this.calls.push(call);
  }
}

type ErrorClass = typeof OpenAI.BadRequestError | typeof OpenAI.NotFoundError;

const MESSAGES = [
  { role: 'system' as const, content: 'You trade prediction markets.' },
  { role: 'user' as const, content: 'BTC is up 3%. Buy or sell?' },
];

let core: PolicyCore;
let server: OpenAiServer;
let client: OpenAI;
const recorder = new TestRecorder();
/** What the endpoint's instruments received, by instrument name: each value with its attributes. */
const measured: Record<string, [number, Record<string, unknown>][]> = {};
const instrument = (name: string) => {
  measured[name] = [];
  const push = (v: number, attrs: Record<string, unknown> = {}) => measured[name].push([v, attrs]);
  return { record: push, add: push };
};
const meter = { createHistogram: instrument, createCounter: instrument } as unknown as Meter;

beforeAll(async () => {
  const bus = new MemoryBus();
  await publishGpt2(bus, 'trader', true);
  await publishGpt2(bus, 'ids-only', false);
  // The promotion gate's pointer: the same version, promoted.
  await bus.kv.put(keys.promoted('trader'), (await bus.kv.get(keys.policy('trader'))) as Uint8Array);
  core = new PolicyCore({ bus, logger: quietLogger });
  server = await startOpenAiServer({ core, bus, logger: quietLogger, recorder, meter });
  client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
  await core?.close();
});

describe('OpenAI-compatible chat endpoint', () => {
  it('answers a chat completion in OpenAI shape, equal to PolicyCore.generate on the template prompt', async () => {
    const res = await client.chat.completions.create({
      model: 'trader',
      messages: MESSAGES,
      temperature: 0,
      max_tokens: 12,
      logprobs: true,
    });
    expect(res).toMatchObject({ object: 'chat.completion', model: 'trader', system_fingerprint: 'rlmesh-trader-v1' });
    expect(res.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(Math.abs(res.created - Date.now() / 1000)).toBeLessThan(60);
    const [choice] = res.choices;
    expect(choice.index).toBe(0);
    expect(choice.message.role).toBe('assistant');
    expect(['stop', 'length']).toContain(choice.finish_reason);

    const prompt = tokenizer.encode(renderChat(MESSAGES));
    const want = await core.generate('trader', { prompt, maxNewTokens: 12, temperature: 0, stop: ['\nUser:', '\nSystem:'] }, () => {});
    const lps = choice.logprobs?.content ?? [];
    expect(lps.map((l) => l.logprob)).toEqual(want.logProbs);
    expect(lps.map((l) => l.token)).toEqual(want.tokens.map((t) => tokenizer.decode([t])));
    for (const [k, l] of lps.entries()) {
      expect(Number.isFinite(l.logprob) && l.logprob <= 0).toBe(true);
      expect(l.bytes).toEqual(Array.from(tokenizer.decodeBytes([want.tokens[k]])));
      expect(l.top_logprobs).toEqual([]);
    }
    expect(choice.message.content).toBe(
      tokenizer.decode(want.tokens, { skipSpecialTokens: true }).split('\nUser:')[0].split('\nSystem:')[0],
    );
    expect(choice.message.content?.length).toBeGreaterThan(0);
    expect(res.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: lps.length, total_tokens: prompt.length + lps.length });
  });

  it('streams chunks whose deltas add up to the non-streamed greedy answer', async () => {
    const base = { model: 'trader', messages: MESSAGES, temperature: 0, max_tokens: 20 } as const;
    const whole = await client.chat.completions.create(base);
    const stream = await client.chat.completions.create({ ...base, stream: true, stream_options: { include_usage: true }, logprobs: true });
    let text = '';
    let finish: string | null = null;
    let tokens = 0;
    let usage: OpenAI.CompletionUsage | null | undefined;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      ids.add(chunk.id);
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta.content ?? '';
        tokens += c.logprobs?.content?.length ?? 0;
        finish = c.finish_reason ?? finish;
      }
    }
    expect(ids.size).toBe(1);
    expect(text).toBe(whole.choices[0].message.content);
    expect(finish).toBe(whole.choices[0].finish_reason);
    expect(tokens).toBe(whole.usage?.completion_tokens);
    expect(usage).toEqual(whole.usage);
  });

  it('cuts the content before a stop string, in whole and streamed answers alike', async () => {
    const base = { model: 'trader', messages: MESSAGES, temperature: 0, max_tokens: 20 } as const;
    const free = (await client.chat.completions.create(base)).choices[0].message.content ?? '';
    const stop = free.slice(4, 6);
    const cutAt = free.indexOf(stop);
    expect(cutAt).toBeGreaterThan(0);
    const res = await client.chat.completions.create({ ...base, stop });
    expect(res.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: free.slice(0, cutAt) } });
    let streamed = '';
    for await (const chunk of await client.chat.completions.create({ ...base, stop: [stop], stream: true }))
      streamed += chunk.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(free.slice(0, cutAt));
  });

  it('draws n seeded completions, the same ones on every call with the same seed', async () => {
    const req = { model: 'trader@promoted', messages: MESSAGES, n: 3, seed: 5, max_tokens: 8, temperature: 1.5 } as const;
    const a = await client.chat.completions.create(req);
    const b = await client.chat.completions.create(req);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(b.choices.map((c) => c.message.content)).toEqual(a.choices.map((c) => c.message.content));
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(a.model).toBe('trader@promoted');
  });

  it('lists the runs that can chat, latest and promoted', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toEqual(['trader', 'trader@promoted']);
    expect(await client.models.retrieve('trader@latest')).toEqual({ id: 'trader@latest', object: 'model', created: 0, owned_by: 'rlmesh' });
    await expect(client.models.retrieve('ids-only')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('refuses bad requests with 400 / 404 naming the parameter, and keeps serving', async () => {
    const long = 'buy sell hold '.repeat(40);
    const cases: [Record<string, unknown>, ErrorClass, string, RegExp][] = [
      [{ model: 'trader' }, OpenAI.BadRequestError, 'messages', /^400 messages: is required/],
      [
        { model: 'trader', messages: [{ role: 'tool', content: 'x' }] },
        OpenAI.BadRequestError,
        'messages[0].role',
        /must be one of system, developer, user, assistant, got "tool"/,
      ],
      [
        { model: 'trader', messages: MESSAGES, temperature: 3 },
        OpenAI.BadRequestError,
        'temperature',
        /must be a number in \[0, 2\], got 3/,
      ],
      [{ model: 'trader', messages: [{ role: 'user', content: long }] }, OpenAI.BadRequestError, 'messages', /the model's context is 128/],
      [
        { model: 'trader', messages: MESSAGES, max_tokens: 500 },
        OpenAI.BadRequestError,
        'max_tokens',
        /must be at most \d+ \(the model's context of 128/,
      ],
      [
        { model: 'trader', messages: MESSAGES, logprobs: true, top_logprobs: 3 },
        OpenAI.BadRequestError,
        'top_logprobs',
        /only 0 is supported/,
      ],
      [
        { model: 'trader', messages: MESSAGES, tools: [{ type: 'function', function: { name: 'f' } }] },
        OpenAI.BadRequestError,
        'tools',
        /not supported/,
      ],
      [{ model: 'trader', messages: MESSAGES, n: 17 }, OpenAI.BadRequestError, 'n', /integer in \[1, 16\]/],
      [{ model: 'ids-only', messages: MESSAGES }, OpenAI.BadRequestError, 'model', /publishes no tokenizer/],
      [{ model: 'nobody', messages: MESSAGES }, OpenAI.NotFoundError, 'model', /no policy published for run "nobody"/],
      [{ model: 'trader@nightly', messages: MESSAGES }, OpenAI.NotFoundError, 'model', /not @nightly/],
      [{ model: 'ids-only@promoted', messages: MESSAGES }, OpenAI.NotFoundError, 'model', /has no promoted version yet/],
    ];
    for (const [body, cls, param, message] of cases) {
      const err = await client.chat.completions.create(body as never).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, JSON.stringify(body).slice(0, 80)).toBeInstanceOf(cls);
      expect((err as InstanceType<typeof OpenAI.APIError>).param).toBe(param);
      expect((err as Error).message).toMatch(message);
    }
    const raw = await fetch(`${server.baseURL}/chat/completions`, { method: 'POST', body: '{"model": "trader", ' });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({
      error: { type: 'invalid_request_error', message: expect.stringMatching(/^body: is not valid JSON/) },
    });
    const ok = await client.chat.completions.create({ model: 'trader', messages: MESSAGES, max_tokens: 2 });
    expect(ok.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('answers 300 mutated requests and raw junk with 200 or a 4xx in OpenAI shape, never a 5xx', async () => {
    const rng = new Rng(11);
    const junk: unknown[] = [null, true, -1, 0, 1, 1.5, 1e9, '', 'x', 'user', [], [1], [''], {}, { role: 'user' }, 'a'.repeat(300)];
    const fields = ['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'stop', 'seed', 'stream'];
    const more = ['stream_options', 'logprobs', 'top_logprobs', 'user', 'tools', 'bogus', 'role', 'content', 'part'];
    const keys = [...fields, ...more];
    const bodies: string[] = [
      '',
      '[]',
      'null',
      '{',
      '"x"',
      '\u0000\u00ff',
      JSON.stringify({ model: 'trader', messages: [{ role: 'user', content: '\ud800' }] }),
    ];
    for (let i = 0; i < 300; i++) {
      const body: Record<string, unknown> = { model: 'trader', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
      for (let m = 0; m <= rng.int(3); m++) {
        const key = keys[rng.int(keys.length)];
        const value = junk[rng.int(junk.length)];
        const message = (body.messages as Record<string, unknown>[])?.[0];
        if (key === 'role' || key === 'content') {
          if (message && typeof message === 'object') message[key] = value;
        } else if (key === 'part') {
          if (message && typeof message === 'object') message.content = [{ type: 'text', text: value }];
        } else body[key] = value;
      }
      bodies.push(JSON.stringify(body));
    }
    const statuses = new Map<number, number>();
    for (const body of bodies) {
      const res = await fetch(`${server.baseURL}/chat/completions`, { method: 'POST', body });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const text = await res.text();
      expect([200, 400, 404], `${res.status} for ${body.slice(0, 200)}: ${text.slice(0, 200)}`).toContain(res.status);
      if (res.status !== 200) {
        expect(JSON.parse(text).error).toMatchObject({ message: expect.any(String), type: 'invalid_request_error' });
      } else if (text.startsWith('data: ')) expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      else expect(JSON.parse(text).object).toBe('chat.completion');
    }
    // The mutations reach both sides: some requests stay valid, most break a rule.
    expect(statuses.get(200)).toBeGreaterThan(10);
    expect(statuses.get(400)).toBeGreaterThan(100);
  });

  it('hands every completed call to the recorder; a failing recorder does not fail the caller', async () => {
    const before = recorder.calls.length;
    const res = await client.chat.completions.create(
      { model: 'trader', messages: MESSAGES, max_tokens: 6, seed: 3, user: 'from-user-field' },
      { headers: { 'x-rlmesh-agent': 'agent-7' } },
    );
    await client.chat.completions.create({ model: 'trader', messages: MESSAGES, max_tokens: 3, user: 'agent-9' });
    const flaky = await client.chat.completions.create(
      { model: 'trader', messages: MESSAGES, max_tokens: 3 },
      { headers: { 'x-rlmesh-agent': 'flaky' } },
    );
    expect(flaky.choices[0].message.content).toBeTypeOf('string');
    await server.endpoint.drain();
    const [call, second] = recorder.calls.slice(before);
    expect(recorder.calls.length - before).toBe(2);
    expect(call).toMatchObject({
      id: res.id,
      agentId: 'agent-7',
      model: 'trader',
      runId: 'trader',
      channel: 'latest',
      policyVersion: 1,
      messages: MESSAGES,
      prompt: renderChat(MESSAGES),
      completion: res.choices[0].message.content,
      promptTokens: res.usage?.prompt_tokens,
      completionTokens: res.usage?.completion_tokens,
      stream: false,
      sampling: { temperature: 1, topP: 1, maxTokens: 6, seeds: [3], stop: [] },
    });
    expect(call.promptTokenIds).toEqual(tokenizer.encode(renderChat(MESSAGES)));
    expect(call.choices[0].logprobs).toHaveLength(call.completionTokens);
    expect(call.choices[0].logprobs.every((l) => Number.isFinite(l) && l <= 0)).toBe(true);
    expect(call.choices[0].tokenLogprobs.map((l) => [l.token, l.logprob])).toEqual(
      call.choices[0].tokens.map((t, k) => [tokenizer.decode([t]), call.choices[0].logprobs[k]]),
    );
    expect(call.latencyMs).toBeGreaterThan(0);
    expect(Math.abs(call.at.getTime() - Date.now())).toBeLessThan(60_000);
    expect(second.agentId).toBe('agent-9');
  });

  it('counts answers by status, and the latency and tokens of completed calls', async () => {
    const n = (name: string) => measured[name].length;
    const [requests, latency, tokens] = ['requests', 'latency', 'completion_tokens'].map((k) => n(`rlmesh.policy.chat.${k}`));
    const ok = await client.chat.completions.create({ model: 'trader', messages: MESSAGES, max_tokens: 3, n: 2 });
    await client.chat.completions.create({ model: 'trader', messages: [] }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(measured['rlmesh.policy.chat.requests'].slice(requests)).toEqual([
      [1, { status: 200 }],
      [1, { status: 400 }],
    ]);
    expect(measured['rlmesh.policy.chat.completion_tokens'].slice(tokens)).toEqual([[ok.usage?.completion_tokens, { run: 'trader' }]]);
    expect(measured['rlmesh.policy.chat.latency'].slice(latency)).toEqual([[expect.any(Number), { run: 'trader' }]]);
  });

  it('a caller that leaves mid-stream is not recorded, and the next caller is served', async () => {
    const before = recorder.calls.length;
    const abort = new AbortController();
    const res = await fetch(`${server.baseURL}/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'trader', messages: MESSAGES, stream: true, temperature: 0 }),
      headers: { 'x-rlmesh-agent': 'leaver' },
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^data: \{"id":"chatcmpl-/);
    abort.abort();
    await reader.read().catch(() => undefined);
    const next = await client.chat.completions.create({ model: 'trader', messages: MESSAGES, max_tokens: 2 });
    expect(next.choices[0].finish_reason).toBe('length');
    await server.endpoint.drain();
    expect(recorder.calls.slice(before).map((c) => c.agentId)).toEqual([null]);
  });
});

describe('CompletionText', () => {
  const pieces = (stop: string[], ids: number[]) => {
    const t = new CompletionText(tokenizer, stop);
    return [...ids.map((id) => t.push(id)), t.finish()];
  };

  it('holds a character split between tokens until it is whole', () => {
    // The byte-level token of each byte: '€' is three bytes, so three tokens.
    const byteToken = (b: number) =>
      Array.from({ length: tokenizer.vocabSize }, (_, id) => id).find((id) => {
        const bytes = tokenizer.decodeBytes([id]);
        return bytes.length === 1 && bytes[0] === b;
      }) as number;
    const ids = [...new TextEncoder().encode('a€')].map(byteToken);
    expect(ids).toHaveLength(4);
    expect(pieces([], ids)).toEqual(['a', '', '', '€', '']);
  });

  it('holds a tail that may begin a stop string, and leaves the stop string out', () => {
    const ids = (text: string) => [...text].map((ch) => tokenizer.encode(ch)[0]);
    expect(pieces(['xyz'], ids('abxyq'))).toEqual(['a', 'b', '', '', 'xyq', '']);
    expect(pieces(['xyz'], ids('abxyzq'))).toEqual(['a', 'b', '', '', '', '', '']);
    expect(CompletionText.of(tokenizer, ['xyz', 'b'], ids('abxyz'))).toBe('a');
  });
});
