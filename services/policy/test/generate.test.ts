/**
 * PolicyService.Generate over real gRPC on loopback, with a GPT-2 policy published the way the
 * learner publishes any policy (act program, flat params, pointer) plus its model_config: streamed
 * tokens then a final message whose tokens and log-probs equal in-process generation with the same
 * settings; concurrent requests decoded in shared loops without changing anyone's tokens; EOS and
 * stop sequences; a new version swapped in; bad requests refused with the field named while the
 * server keeps serving.
 */
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { Discrete, distributionFor, Rng, TokenSequence } from '@rlmesh/core';
import {
  buildActProgram,
  type CausalLmPolicy,
  type GenerateRow,
  GPT2_124M,
  type Gpt2Config,
  Gpt2Generator,
  gpt2Model,
  gpt2ModelConfig,
  type ModelContext,
} from '@rlmesh/learner';
import { MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { GenerateRequest, type GenerateResponse, PolicyServiceClient, StopReason } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyServer } from '../src/grpc';
import { quietLogger } from './fixture';

const V = 13;
const CFG: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: V,
  n_positions: 24,
  n_embd: 16,
  n_layer: 2,
  n_head: 2,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: -1,
  eos_token_id: -1,
};
const OBS = new TokenSequence(V, CFG.n_positions, 0);
const ACTIONS = new Discrete(V);

function buildPolicy(config: Gpt2Config): CausalLmPolicy {
  const ctx = { observationSpace: OBS, actionSpace: ACTIONS, distribution: distributionFor(ACTIONS) } as unknown as ModelContext;
  return gpt2Model.build(config, ctx) as CausalLmPolicy;
}

/** Random weights (LayerNorm gains near 1) large enough that the next-token distribution is not flat. */
function weights(policy: CausalLmPolicy, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map(
    policy.module.namedParameters().map((p) => {
      const gain = /ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0;
      return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.3 * rng.normal())];
    }),
  );
}

const policy = buildPolicy(CFG);
const act = buildActProgram(policy);
const W1 = weights(policy, 1);
const W2 = weights(policy, 2);

function publish(bus: MemoryBus, run: string, version: number, w: Map<string, Float32Array>, modelConfig = gpt2ModelConfig(CFG)) {
  return publishPolicy(bus, run, {
    version,
    params: act.layout.pack(w),
    program: version === 1 ? act.onnx : undefined,
    spec: {
      observationSpace: spaceToProto(OBS),
      actionSpace: spaceToProto(ACTIONS),
      model: policy.name,
      numParameters: act.layout.total,
    },
    distribution: 'categorical',
    modelConfig,
  });
}

let bus: MemoryBus;
let server: Awaited<ReturnType<typeof startPolicyServer>>;
let client: PolicyServiceClient;
let reference: Gpt2Generator;

beforeAll(async () => {
  bus = new MemoryBus();
  await publish(bus, 'lm', 1, W1);
  await publish(bus, 'swap', 1, W1);
  // A policy published without model_config (any non-LM model): it can act but not generate.
  await publish(bus, 'plain', 1, W1, '');
  server = await startPolicyServer({ bus, port: 0, logger: quietLogger, seed: 0, maxVersionWaitMs: 400 });
  client = new PolicyServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  reference = await Gpt2Generator.create(policy.module, W1);
});

afterAll(async () => {
  client?.close();
  await server?.shutdown();
  await reference?.release();
});

interface Streamed {
  messages: GenerateResponse[];
  final: GenerateResponse;
}

function generate(req: Partial<GenerateRequest>): Promise<Streamed> {
  return new Promise((resolve, reject) => {
    const messages: GenerateResponse[] = [];
    const call = client.generate(GenerateRequest.fromPartial({ runId: 'lm', ...req }));
    call.on('data', (m: GenerateResponse) => messages.push(m));
    call.on('error', reject);
    call.on('end', () => resolve({ messages, final: messages[messages.length - 1] }));
  });
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: ServiceError) => ({ code: e.code, details: e.details }),
  );

/** The same request generated in-process, alone. */
async function alone(row: GenerateRow, generator = reference) {
  const [r] = await generator.generate([row]);
  return r;
}

describe('PolicyService.Generate over gRPC', () => {
  it('streams one message per token, then the completion with its log-probs, stop reason and version', async () => {
    const req = { prompt: [3, 1, 4, 1, 5], maxNewTokens: 9, temperature: 0.9, topK: 6, topP: 0.9, seed: 42 };
    const { messages, final } = await generate(req);
    const want = await alone({ ...req, prompt: req.prompt });
    expect(messages).toHaveLength(want.tokens.length + 1);
    expect(messages.slice(0, -1).map((m) => m.tokenIds)).toEqual(want.tokens.map((t) => [t]));
    expect(messages.slice(0, -1).every((m) => !m.done)).toBe(true);
    expect(final).toMatchObject({ done: true, tokens: want.tokens, stopReason: StopReason.STOP_REASON_MAX_TOKENS, policyVersion: 1 });
    expect(final.tokenIds).toEqual([]);
    for (const [i, lp] of final.logProbs.entries()) expect(lp).toBeCloseTo(want.logProbs[i], 4);
    // Greedy, through the wire: temperature 0.
    const greedy = await generate({ prompt: [7, 7], maxNewTokens: 6, temperature: 0 });
    expect(greedy.final.tokens).toEqual((await reference.greedy([[7, 7]], { maxNewTokens: 6 })).tokens[0]);
  });

  it('concurrent requests share decode loops, and each gets the tokens it would get alone', async () => {
    const before = { ...server.core.generateStats };
    const reqs = Array.from({ length: 8 }, (_, i) => ({
      prompt: Array.from({ length: 1 + ((i * 3) % 7) }, (_, j) => (i + 2 * j) % V),
      maxNewTokens: 4 + (i % 5),
      seed: 100 + i,
      temperature: 1.1,
    }));
    const results = await Promise.all(reqs.map((r) => generate(r)));
    for (const [i, r] of reqs.entries()) {
      const want = await alone(r);
      expect(results[i].final.tokens, `request ${i}`).toEqual(want.tokens);
    }
    const loops = server.core.generateStats.loops - before.loops;
    expect(server.core.generateStats.rows - before.rows).toBe(reqs.length);
    expect(loops, 'requests were batched into fewer loops than requests').toBeLessThan(reqs.length);
  });

  it('a request joins the loop that is running, at its next step, with the tokens it gets alone', async () => {
    const before = { ...server.core.generateStats };
    const first = { prompt: [5], maxNewTokens: 20, seed: 1 };
    const second = { prompt: [3, 3, 3, 3, 3, 3], maxNewTokens: 6, seed: 2, temperature: 0.7 };
    let joined: Promise<unknown> | null = null;
    let firstTokens = 0;
    const a = server.core.generate('lm', first, () => {
      // Sent while the first request's loop is running: after its first token.
      if (++firstTokens === 1) joined = server.core.generate('lm', second, () => undefined);
    });
    const [ra, rb] = await Promise.all([a, a.then(() => joined)]);
    expect(ra.tokens).toEqual((await alone(first)).tokens);
    expect((rb as Awaited<typeof a>).tokens).toEqual((await alone(second)).tokens);
    expect(server.core.generateStats.loops - before.loops, 'both in one loop').toBe(1);
    expect(server.core.generateStats.rows - before.rows).toBe(2);
  });

  it('stops at eos_token_id and at a stop sequence, with the reason', async () => {
    const base = { prompt: [2, 9, 4], maxNewTokens: 12, seed: 5 };
    const free = (await generate(base)).final.tokens;
    expect(free).toHaveLength(12);
    const eos = free[4];
    const byEos = await generate({ ...base, eosTokenId: eos });
    expect(byEos.final).toMatchObject({ stopReason: StopReason.STOP_REASON_EOS, tokens: free.slice(0, free.indexOf(eos) + 1) });
    const seq = free.slice(2, 4);
    const bySeq = await generate({ ...base, stopSequences: [{ ids: [V - 1, V - 1, V - 1] }, { ids: seq }] });
    expect(bySeq.final.stopReason).toBe(StopReason.STOP_REASON_STOP_SEQUENCE);
    expect(bySeq.final.tokens.slice(-2)).toEqual(seq);
    expect(bySeq.final.tokens.length).toBeLessThanOrEqual(4);
  });

  it('generates with a newly published version and reports it', async () => {
    const req = { runId: 'swap', prompt: [1, 2, 3], maxNewTokens: 8, temperature: 0 };
    const v1 = await generate(req);
    expect(v1.final.policyVersion).toBe(1);
    await publish(bus, 'swap', 2, W2);
    const v2 = await generate(req);
    expect(v2.final.policyVersion).toBe(2);
    const g2 = await Gpt2Generator.create(policy.module, W2);
    try {
      expect(v2.final.tokens).toEqual((await alone({ prompt: req.prompt, maxNewTokens: 8, temperature: 0 }, g2)).tokens);
    } finally {
      await g2.release();
    }
    expect(v2.final.tokens).not.toEqual(v1.final.tokens);
    // min_version: the call waits for the version to be published, and after the wait limit answers with what there is.
    const waiting = generate({ ...req, minVersion: 3 });
    setTimeout(() => void publish(bus, 'swap', 3, W1), 100);
    const v3 = await waiting;
    expect(v3.final.policyVersion).toBe(3);
    expect(v3.final.tokens).toEqual(v1.final.tokens);
    const t0 = performance.now();
    expect((await generate({ ...req, minVersion: 99 })).final.policyVersion).toBe(3);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350);
  });

  it('bad requests: INVALID_ARGUMENT naming the field and the rule, and the server keeps serving', async () => {
    const ok = { prompt: [1, 2], maxNewTokens: 3 };
    const cases: [Partial<GenerateRequest>, RegExp][] = [
      [{ ...ok, prompt: [] }, /^prompt: must hold at least 1 token id/],
      [{ ...ok, prompt: new Array(24).fill(1) }, /^prompt: has 24 tokens; the model's context is 24/],
      [{ ...ok, prompt: [1, 13] }, /^prompt: token id 13 at index 1 is outside the vocabulary of 13/],
      [{ ...ok, maxNewTokens: 0 }, /^max_new_tokens: must be in \[1, 22\]/],
      [{ ...ok, maxNewTokens: 1_000_000 }, /^max_new_tokens: must be in \[1, 22\].*got 1000000/],
      [{ ...ok, prompt: new Array(20).fill(1), maxNewTokens: 5 }, /^max_new_tokens: must be in \[1, 4\]/],
      [{ ...ok, topP: 0 }, /^top_p: must be in \(0, 1\], got 0/],
      [{ ...ok, topP: 1.5 }, /^top_p: must be in \(0, 1\], got 1.5/],
      [{ ...ok, temperature: -1 }, /^temperature: must be a finite number >= 0/],
      [{ ...ok, eosTokenId: 99 }, /^eos_token_id: must be a token id below 13/],
      [{ ...ok, stopSequences: [{ ids: [] }] }, /^stop_sequences: entry 0 must hold 1 to 64 token ids/],
      [{ ...ok, runId: 'no such run!' }, /^run_id: must match/],
    ];
    for (const [req, details] of cases) {
      const f = await failure(generate(req));
      expect(f.code, JSON.stringify(req).slice(0, 80)).toBe(status.INVALID_ARGUMENT);
      expect(f.details).toMatch(details);
    }
    expect(await failure(generate({ ...ok, runId: 'nobody' }))).toEqual({
      code: status.NOT_FOUND,
      details: 'run_id: no policy published for run "nobody"',
    });
    const plain = await failure(generate({ ...ok, runId: 'plain' }));
    expect(plain.code).toBe(status.FAILED_PRECONDITION);
    expect(plain.details).toMatch(/publishes no model_config: it cannot generate/);
    const after = await generate(ok);
    expect(after.final.done).toBe(true);
    expect(after.final.tokens).toHaveLength(3);
  });
});
