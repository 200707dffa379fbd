/**
 * The policy service's OpenAI-compatible endpoint: completion tokens per second through HTTP with
 * OpenAI's npm client (whole answers and streamed ones), against PolicyCore.generate called
 * in-process with the same prompt and settings. The ratio says what the endpoint costs on top of
 * generation: the chat template and tokenizer, JSON or server-sent events, HTTP on loopback.
 *
 * A GPT-2 with GPT-2's tokenizer, 2 layers of width 128 (random weights: the cost does not depend on
 * their values), greedy, 32 new tokens per request; 1 caller, then 16 at once (their rows share the
 * run's decode loop). Callers run back to back for BENCH_REPEAT_MS per repeat; the three ways
 * alternate within each repeat, and the median repeat is reported.
 */
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
import { MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { PolicyCore, renderChat, startOpenAiServer, TURN_STOPS } from '@rlmesh/policy';
import { gpt2Tokenizer } from '@rlmesh/text';
import OpenAI from 'openai';
import { type BenchResult, type BenchSettings, median } from './harness';

const NEW_TOKENS = 32;
const MESSAGES = [
  { role: 'system' as const, content: 'You trade prediction markets.' },
  { role: 'user' as const, content: 'BTC is up 3% this hour and the market on a new high closes tonight. Buy or sell?' },
];
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function log(msg: string): void {
  process.stderr.write(`[bench:openai] ${msg}\n`);
}

/** `callers` loops awaiting `call` back to back for `ms`; completion tokens per second over the window. */
async function tokensPerSecond(callers: number, ms: number, call: () => Promise<number>): Promise<number> {
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() - t0 < ms) {
        // Not `tokens += await call()`: that reads `tokens` before the await and loses the other callers' counts.
        const n = await call();
        tokens += n;
      }
    }),
  );
  return tokens / ((performance.now() - t0) / 1000);
}

export async function runOpenAiBenchmarks(s: BenchSettings): Promise<BenchResult[]> {
  const tokenizer = gpt2Tokenizer();
  const config: Gpt2Config = {
    ...GPT2_124M,
    n_positions: 256,
    n_embd: 128,
    n_layer: 2,
    n_head: 4,
    embd_pdrop: 0,
    attn_pdrop: 0,
    resid_pdrop: 0,
  };
  const obs = new TokenSequence(config.vocab_size, config.n_positions, 0);
  const actions = new Discrete(config.vocab_size);
  const ctx = { observationSpace: obs, actionSpace: actions, distribution: distributionFor(actions) } as unknown as ModelContext;
  const policy = gpt2Model.build(config, ctx) as CausalLmPolicy;
  const act = buildActProgram(policy);
  const rng = new Rng(0);
  const weights = new Map(
    policy.module.namedParameters().map((p) => {
      const gain = /ln_(\d|f)\.weight$/.test(p.name) ? 1 : 0;
      return [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.1 * rng.normal())];
    }),
  );
  const bus = new MemoryBus();
  await publishPolicy(bus, 'bench', {
    version: 1,
    params: act.layout.pack(weights),
    program: act.onnx,
    spec: { observationSpace: spaceToProto(obs), actionSpace: spaceToProto(actions), model: policy.name, numParameters: act.layout.total },
    distribution: 'categorical',
    modelConfig: gpt2ModelConfig(config),
    tokenizer: new TextEncoder().encode(JSON.stringify(tokenizer.toJSON())),
  });
  const core = new PolicyCore({ bus, logger: quiet, threads: s.threads });
  const server = await startOpenAiServer({ core, bus, logger: quiet });
  const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });

  const prompt = tokenizer.encode(renderChat(MESSAGES));
  const request = { model: 'bench', messages: MESSAGES, max_tokens: NEW_TOKENS, temperature: 0 };
  const ways: Record<string, () => Promise<number>> = {
    direct: async () =>
      (await core.generate('bench', { prompt, maxNewTokens: NEW_TOKENS, temperature: 0, stop: [...TURN_STOPS] }, () => {})).tokens.length,
    http: async () => (await client.chat.completions.create(request)).usage?.completion_tokens ?? 0,
    stream: async () => {
      let tokens = 0;
      const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
      for await (const chunk of stream) tokens = chunk.usage?.completion_tokens ?? tokens;
      return tokens;
    },
  };
  const results: BenchResult[] = [];
  try {
    for (const w of Object.values(ways)) for (let i = 0; i < s.warmup / 4; i++) await w();
    for (const callers of [1, 16]) {
      const got: Record<string, number[]> = { direct: [], http: [], stream: [] };
      for (let r = 0; r < s.repeats; r++)
        for (const [name, w] of Object.entries(ways)) got[name].push(await tokensPerSecond(callers, s.repeatMs, w));
      const direct = median(got.direct);
      log(
        `${callers} caller(s): direct ${direct.toFixed(0)}, http ${median(got.http).toFixed(0)}, stream ${median(got.stream).toFixed(0)} tokens/s`,
      );
      for (const name of ['http', 'stream'] as const) {
        const value = median(got[name]);
        results.push({
          name: `chat completions, ${name === 'http' ? 'whole answers' : 'streamed'}, ${callers} caller${callers > 1 ? 's' : ''}`,
          metric: 'completion tokens/s',
          value,
          unit: 'tokens/s',
          baseline: { name: 'PolicyCore.generate in-process', value: direct },
          ratio: value / direct,
          notes: `GPT-2 2x128 with GPT-2's tokenizer, ${prompt.length}-token chat prompt, ${NEW_TOKENS} new tokens, greedy; OpenAI's npm client on loopback`,
        });
      }
    }
  } finally {
    await server.close();
    await core.close();
  }
  return results;
}
