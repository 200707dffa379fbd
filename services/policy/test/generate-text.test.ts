/**
 * PolicyService.Generate with text, over real gRPC: a run that publishes its tokenizer.json takes
 * prompt_text (encoded as the in-process tokenizer encodes it) and stop strings, and answers the
 * decoded completion; runs without a usable tokenizer refuse text with FAILED_PRECONDITION naming
 * the field, and malformed text requests are INVALID_ARGUMENT.
 */
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { Discrete, distributionFor, Rng, TokenSequence } from '@rlmesh/core';
import {
  buildActProgram,
  type CausalLmPolicy,
  GPT2_124M,
  type Gpt2Config,
  Gpt2Generator,
  gpt2Model,
  gpt2ModelConfig,
  type ModelContext,
} from '@rlmesh/learner';
import { MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { GenerateRequest, type GenerateResponse, PolicyServiceClient, StopReason } from '@rlmesh/proto';
import { gpt2Tokenizer } from '@rlmesh/text';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyServer } from '../src/grpc';
import { quietLogger } from './fixture';

const tokenizer = gpt2Tokenizer();
const TOKENIZER_JSON = new TextEncoder().encode(JSON.stringify(tokenizer.toJSON()));

function config(vocab: number): Gpt2Config {
  return {
    ...GPT2_124M,
    vocab_size: vocab,
    n_positions: 32,
    n_embd: 16,
    n_layer: 1,
    n_head: 2,
    embd_pdrop: 0,
    attn_pdrop: 0,
    resid_pdrop: 0,
    bos_token_id: -1,
    eos_token_id: -1,
  };
}

function built(c: Gpt2Config, seed: number) {
  const obs = new TokenSequence(c.vocab_size, c.n_positions, 0);
  const actions = new Discrete(c.vocab_size);
  const ctx = { observationSpace: obs, actionSpace: actions, distribution: distributionFor(actions) } as unknown as ModelContext;
  const policy = gpt2Model.build(c, ctx) as CausalLmPolicy;
  const act = buildActProgram(policy);
  const rng = new Rng(seed);
  const weights = new Map(
    policy.module.namedParameters().map((p) => {
      const gain = /ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0;
      return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.5 * rng.normal())];
    }),
  );
  return { c, obs, actions, policy, act, weights };
}

type Built = ReturnType<typeof built>;

function publish(bus: MemoryBus, run: string, b: Built, tokenizerJson?: Uint8Array) {
  return publishPolicy(bus, run, {
    version: 1,
    params: b.act.layout.pack(b.weights),
    program: b.act.onnx,
    spec: {
      observationSpace: spaceToProto(b.obs),
      actionSpace: spaceToProto(b.actions),
      model: b.policy.name,
      numParameters: b.act.layout.total,
    },
    distribution: 'categorical',
    modelConfig: gpt2ModelConfig(b.c),
    tokenizer: tokenizerJson,
  });
}

const LONG = 'word '.repeat(40);
const FULL = built(config(tokenizer.vocabSize), 3);
let server: Awaited<ReturnType<typeof startPolicyServer>>;
let client: PolicyServiceClient;
let reference: Gpt2Generator;

beforeAll(async () => {
  const bus = new MemoryBus();
  await publish(bus, 'text', FULL, TOKENIZER_JSON);
  await publish(bus, 'ids-only', FULL);
  await publish(bus, 'broken-tokenizer', FULL, new TextEncoder().encode('{"model": {"type": "WordPiece"}}'));
  await publish(bus, 'small-vocab', built(config(100), 4), TOKENIZER_JSON);
  server = await startPolicyServer({ bus, port: 0, logger: quietLogger });
  client = new PolicyServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  reference = await Gpt2Generator.create(FULL.policy.module, FULL.weights);
});

afterAll(async () => {
  client?.close();
  await server?.shutdown();
  await reference?.release();
});

function generate(req: Partial<GenerateRequest>): Promise<GenerateResponse> {
  return new Promise((resolve, reject) => {
    let last: GenerateResponse | undefined;
    const call = client.generate(GenerateRequest.fromPartial({ runId: 'text', ...req }));
    call.on('data', (m: GenerateResponse) => {
      last = m;
    });
    call.on('error', reject);
    call.on('end', () => (last ? resolve(last) : reject(new Error('no message'))));
  });
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: ServiceError) => ({ code: e.code, details: e.details }),
  );

describe('PolicyService.Generate with the run tokenizer', () => {
  it('prompt_text is encoded as the tokenizer encodes it, and the completion comes back decoded', async () => {
    const text = 'Rule: add red, subtract blue.\nCards:\nRED 3\nAnswer:';
    const res = await generate({ promptText: text, maxNewTokens: 8, seed: 11 });
    const [want] = await reference.generate([{ prompt: tokenizer.encode(text), maxNewTokens: 8, seed: 11 }]);
    expect(res.tokens).toEqual(want.tokens);
    expect(res.text).toBe(tokenizer.decode(want.tokens));
    expect(res.text.length).toBeGreaterThan(0);
  });

  it('a stop string ends the completion at the first token whose text contains it', async () => {
    const base = { prompt: [15496, 995], maxNewTokens: 12, seed: 2 };
    const free = await generate(base);
    expect(free.tokens).toHaveLength(12);
    // A stop string that the free completion reaches only after a few tokens.
    const cut = 5;
    const stop = tokenizer.decode(free.tokens.slice(cut - 1, cut)).trim() || tokenizer.decode(free.tokens.slice(cut - 1, cut));
    const stopped = await generate({ ...base, stop: ['\u0000never', stop] });
    expect(stopped.stopReason).toBe(StopReason.STOP_REASON_STOP_SEQUENCE);
    expect(stopped.text).toContain(stop);
    expect(tokenizer.decode(stopped.tokens.slice(0, -1))).not.toContain(stop);
    expect(stopped.tokens).toEqual(free.tokens.slice(0, stopped.tokens.length));
    expect(stopped.tokens.length).toBeLessThanOrEqual(cut);
  });

  it('refuses malformed text requests with INVALID_ARGUMENT naming the field', async () => {
    const cases: [Partial<GenerateRequest>, RegExp][] = [
      [{ promptText: 'hi', prompt: [1], maxNewTokens: 2 }, /^prompt_text: set either prompt \(token ids\) or prompt_text, not both/],
      [
        { promptText: LONG, maxNewTokens: 2 },
        new RegExp(`^prompt_text: has ${tokenizer.encode(LONG).length} tokens; the model's context is 32`),
      ],
      [{ promptText: 'hi', maxNewTokens: 2, stop: [''] }, /^stop: entry 0 must hold 1 to 256 characters, got 0/],
      [{ promptText: 'hi', maxNewTokens: 2, stop: ['x'.repeat(300)] }, /^stop: entry 0 must hold 1 to 256/],
    ];
    for (const [req, details] of cases)
      expect(await failure(generate(req))).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(details) });
  });

  it('runs without a usable tokenizer refuse text with FAILED_PRECONDITION, and still generate from ids', async () => {
    expect(await failure(generate({ runId: 'ids-only', promptText: 'hi', maxNewTokens: 2 }))).toEqual({
      code: status.FAILED_PRECONDITION,
      details: 'prompt_text: run "ids-only" publishes no tokenizer; send token ids in prompt',
    });
    expect(await failure(generate({ runId: 'ids-only', prompt: [1], stop: ['a'], maxNewTokens: 2 }))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringMatching(/^stop: run "ids-only" publishes no tokenizer/),
    });
    expect((await generate({ runId: 'ids-only', prompt: [1], maxNewTokens: 2 })).text).toBe('');
    const broken = await failure(generate({ runId: 'broken-tokenizer', prompt: [1], maxNewTokens: 2 }));
    expect(broken.code).toBe(status.FAILED_PRECONDITION);
    expect(broken.details).toMatch(
      /^run_id: policy of run "broken-tokenizer" has an unusable tokenizer "broken-tokenizer\/tokenizer.json": /,
    );
    expect(await failure(generate({ runId: 'small-vocab', prompt: [1], maxNewTokens: 2 }))).toEqual({
      code: status.FAILED_PRECONDITION,
      details: `run_id: policy of run "small-vocab": its tokenizer has ${tokenizer.vocabSize} ids, more than the model's vocab_size 100`,
    });
  });
});
