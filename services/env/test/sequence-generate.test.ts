/**
 * The text actor through the mesh's policy service: generateThroughPolicy (PolicyService.Generate
 * over loopback gRPC, a GPT-2 policy published as the learner publishes one) gives the tokens and
 * behaviour log-probs in-process generation gives for the same seeds, so a SequenceCollector plays
 * the same rollout with either generate function; a run that cannot generate is an error naming it.
 */
import { credentials } from '@grpc/grpc-js';
import {
  Discrete,
  distributionFor,
  type GenerateFn,
  Rng,
  SequenceCollector,
  type TextCodec,
  TextEnv,
  type TextProblem,
  type TextTask,
  TokenSequence,
} from '@rlmesh/core';
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
import { createLogger, MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { startPolicyServer } from '@rlmesh/policy';
import { PolicyServiceClient } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateThroughPolicy } from '../src/sequence-generate';

const V = 13;
const EOS = 12;
const CFG: Gpt2Config = {
  ...GPT2_124M,
  vocab_size: V,
  n_positions: 24,
  n_embd: 16,
  n_layer: 1,
  n_head: 2,
  embd_pdrop: 0,
  attn_pdrop: 0,
  resid_pdrop: 0,
  bos_token_id: -1,
  eos_token_id: EOS,
};
const OBS = new TokenSequence(V, CFG.n_positions, 0);
const ACTIONS = new Discrete(V);
const policy = gpt2Model.build(CFG, {
  observationSpace: OBS,
  actionSpace: ACTIONS,
  distribution: distributionFor(ACTIONS),
} as unknown as ModelContext) as CausalLmPolicy;
const act = buildActProgram(policy);
const rng = new Rng(4);
const W = new Map(
  policy.module
    .namedParameters()
    .map((p) => [
      p.name,
      Float32Array.from(
        { length: p.shape.reduce((a, b) => a * b, 1) },
        () => (/ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0) + 0.3 * rng.normal(),
      ),
    ]),
);

/** Prompts "a b c" of digits 1-9 (token = digit); reward 1 when the first generated token is the prompt's first. */
interface Echo extends TextProblem {
  first: string;
}
const echo: TextTask<Echo> = {
  name: 'Echo',
  rewardComponents: ['correct'],
  numLevels: 1,
  draw: (r) => {
    const ds = Array.from({ length: 3 }, () => 1 + r.int(9));
    return { prompt: ds.join(''), first: String(ds[0]) };
  },
  verify: (p, c) => ({ reward: { correct: c[0] === p.first ? 1 : 0 }, success: c[0] === p.first, parsed: c[0] }),
};
/** Digits are their own ids; 10, 11 read as letters; 12 is EOS. */
const codec: TextCodec = {
  encode: (t) => Array.from(t, Number),
  decode: (ids) => ids.map((i) => (i < 10 ? String(i) : String.fromCharCode(87 + i))).join(''),
};
const sampling = { numGenerations: 3, maxCompletionLength: 5, temperature: 0.9, topK: 0, topP: 1, eosTokenId: EOS };

let server: Awaited<ReturnType<typeof startPolicyServer>>;
let client: PolicyServiceClient;
let local: Gpt2Generator;

beforeAll(async () => {
  const bus = new MemoryBus();
  await publishPolicy(bus, 'lm', {
    version: 1,
    params: act.layout.pack(W),
    program: act.onnx,
    spec: { observationSpace: spaceToProto(OBS), actionSpace: spaceToProto(ACTIONS), model: policy.name, numParameters: act.layout.total },
    distribution: 'categorical',
    modelConfig: gpt2ModelConfig(CFG),
  });
  server = await startPolicyServer({ bus, port: 0, logger: createLogger('policy', 'error'), seed: 0 });
  client = new PolicyServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  local = await Gpt2Generator.create(policy.module, W);
});
afterAll(async () => {
  client?.close();
  await server?.shutdown();
  await local?.release();
});

const inProcess: GenerateFn = async (rows) => ({ results: await local.generate(rows), version: 1 });

describe('generateThroughPolicy', () => {
  it('plays the rollout in-process generation plays: same tokens, log-probs, rewards and version', async () => {
    const collector = () => new SequenceCollector([new TextEnv(echo), new TextEnv(echo)], codec, 'a0', sampling, 9);
    const mesh = await collector().collect(generateThroughPolicy(client, 'lm'));
    const here = await collector().collect(inProcess);
    expect(mesh.policyVersion).toBe(1);
    expect(Array.from(mesh.completionIds)).toEqual(Array.from(here.completionIds));
    expect(Array.from(mesh.completionMask)).toEqual(Array.from(here.completionMask));
    for (let i = 0; i < here.logProbs.length; i++) expect(mesh.logProbs[i]).toBeCloseTo(here.logProbs[i], 4);
    expect(Array.from(mesh.rewards.correct)).toEqual(Array.from(here.rewards.correct));
    expect(Array.from(mesh.truncated)).toEqual(Array.from(here.truncated));
    // The rows did sample: not every completion of a group is the same.
    expect(
      new Set(
        Array.from({ length: 3 }, (_, k) => mesh.completionIds.subarray(k * mesh.completionLength, (k + 1) * mesh.completionLength).join()),
      ).size,
    ).toBeGreaterThan(1);
  });

  it('a run the service cannot generate for is an error naming the run', async () => {
    const c = new SequenceCollector([new TextEnv(echo)], codec, 'a0', sampling, 1);
    await expect(c.collect(generateThroughPolicy(client, 'nobody', { deadlineMs: 5000 }))).rejects.toThrow(/Generate for run nobody/);
  });
});
