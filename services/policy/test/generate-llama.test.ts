/**
 * PolicyService.Generate with a Llama policy published as the learner publishes one (act program,
 * flat params, pointer with the model's config.json as model_config): the service rebuilds the
 * Llama from model_config, and greedy and sampled completions over gRPC equal in-process
 * generation with the same weights; a prompt past max_position_embeddings is refused naming it.
 */
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { Discrete, distributionFor, Rng, TokenSequence } from '@rlmesh/core';
import {
  buildActProgram,
  type CausalLmPolicy,
  causalLmModelConfig,
  Gpt2Generator,
  LLAMA_DEFAULTS,
  type LlamaConfig,
  llamaModel,
  type ModelContext,
} from '@rlmesh/learner';
import { MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { GenerateRequest, type GenerateResponse, PolicyServiceClient } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyServer } from '../src/grpc';
import { quietLogger } from './fixture';

const V = 17;
const CFG: LlamaConfig = {
  ...LLAMA_DEFAULTS,
  vocab_size: V,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 20,
  rope_theta: 100,
};
const OBS = new TokenSequence(V, CFG.max_position_embeddings, 0);
const ACTIONS = new Discrete(V);
const ctx = { observationSpace: OBS, actionSpace: ACTIONS, distribution: distributionFor(ACTIONS) } as unknown as ModelContext;
const policy = llamaModel.build(CFG, ctx) as CausalLmPolicy;
const act = buildActProgram(policy);
const rng = new Rng(3);
const W = new Map(
  policy.module.namedParameters().map((p) => {
    const gain = /norm\.weight$/.test(p.name) ? 1 : 0;
    return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.4 * rng.normal())];
  }),
);

let server: Awaited<ReturnType<typeof startPolicyServer>>;
let client: PolicyServiceClient;
let reference: Gpt2Generator;

beforeAll(async () => {
  const bus = new MemoryBus();
  await publishPolicy(bus, 'llama', {
    version: 1,
    params: act.layout.pack(W),
    program: act.onnx,
    spec: { observationSpace: spaceToProto(OBS), actionSpace: spaceToProto(ACTIONS), model: 'llama', numParameters: act.layout.total },
    distribution: 'categorical',
    modelConfig: causalLmModelConfig(policy.module),
  });
  server = await startPolicyServer({ bus, port: 0, logger: quietLogger, seed: 0, maxVersionWaitMs: 400 });
  client = new PolicyServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  reference = await Gpt2Generator.create(policy.module, W);
});

afterAll(async () => {
  client?.close();
  await server?.shutdown();
  await reference?.release();
});

function generate(req: Partial<GenerateRequest>): Promise<GenerateResponse> {
  return new Promise((resolve, reject) => {
    const messages: GenerateResponse[] = [];
    const call = client.generate(GenerateRequest.fromPartial({ runId: 'llama', ...req }));
    call.on('data', (m: GenerateResponse) => messages.push(m));
    call.on('error', reject);
    call.on('end', () => resolve(messages[messages.length - 1]));
  });
}

describe('PolicyService.Generate with a llama run', () => {
  it('greedy and sampled completions equal in-process generation', async () => {
    const greedy = await generate({ prompt: [3, 1, 4, 1, 5], maxNewTokens: 8, temperature: 0 });
    expect(greedy.tokens).toEqual((await reference.greedy([[3, 1, 4, 1, 5]], { maxNewTokens: 8 })).tokens[0]);
    expect(new Set(greedy.tokens).size).toBeGreaterThan(1);
    const row = { prompt: [9, 2], maxNewTokens: 10, temperature: 0.9, topK: 8, seed: 7 };
    const sampled = await generate(row);
    const [want] = await reference.generate([row]);
    expect(sampled.tokens).toEqual(want.tokens);
    for (const [i, lp] of sampled.logProbs.entries()) expect(lp).toBeCloseTo(want.logProbs[i], 4);
  });

  it('refuses a prompt that leaves no room in the context, naming the field', async () => {
    const e = await generate({ prompt: Array.from({ length: 20 }, (_, i) => i % V), maxNewTokens: 1 }).then(
      () => null,
      (err: ServiceError) => err,
    );
    expect(e?.code).toBe(status.INVALID_ARGUMENT);
    expect(e?.details).toMatch(/prompt.*context is 20/);
  });
});
