/**
 * OpenAI's Chat Completions over PolicyCore, without HTTP: a request is checked, its messages
 * rendered by the chat template and encoded with the run's tokenizer, its n completions generated
 * through PolicyCore.generate (so they join the run's shared decode loop like any Generate call),
 * and answered as a `chat.completion` or as `chat.completion.chunk`s, in OpenAI's shapes. Each
 * completed call is then handed to the recorder, if there is one, without waiting for it.
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { Meter } from '@opentelemetry/api';
import type { Logger } from '@rlmesh/mesh';
import type { Tokenizer } from '@rlmesh/text';
import type { GenerateResult, GenerationModel, PolicyCore } from '../core';
import { badRequest, OpenAiError, toOpenAiError } from './errors';
import { type ChatMetrics, chatMetrics } from './metrics';
import { type ModelRef, parseModelId } from './models';
import type { CallRecorder, RecordedCall, RecordedChoice, TokenLogprob } from './recorder';
import { type ChatRequest, parseChatRequest } from './request';
import { renderChat, TURN_STOPS } from './template';
import { CompletionText } from './text';

type FinishReason = 'stop' | 'length';

/** No context holds a prompt this long, whatever the tokenizer. */
const MAX_PROMPT_CHARS = 1 << 20;

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: { content: TokenLogprob[]; refusal: null } | null;
    finish_reason: FinishReason;
  }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint?: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string };
    logprobs: { content: TokenLogprob[]; refusal: null } | null;
    finish_reason: FinishReason | null;
  }[];
  usage?: Usage | null;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatEndpointOptions {
  core: PolicyCore;
  logger: Logger;
  recorder?: CallRecorder;
  /** Where metrics go (default: the global meter `rlmesh.policy`). */
  meter?: Meter;
}

export interface CallContext {
  /** Who is calling (the x-rlmesh-agent header); the request's `user` field stands in without it. */
  agentId?: string;
  /** True once the caller has gone: its rows leave the decode loop. */
  isCancelled?: () => boolean;
}

/** A checked request, ready to generate. */
export interface PreparedCall {
  req: ChatRequest;
  ref: ModelRef;
  tokenizer: Tokenizer;
  eosTokenId?: number;
  prompt: string;
  promptIds: number[];
  maxTokens: number;
  /** The request's stop strings and the template's turn markers. */
  stop: string[];
  seeds: number[];
  id: string;
  created: number;
  at: Date;
  t0: number;
  agentId: string | null;
}

export class ChatEndpoint {
  /** Recorder calls still running, so that shutting down can wait for them. */
  private readonly recording = new Set<Promise<void>>();
  readonly metrics: ChatMetrics;

  constructor(private readonly opts: ChatEndpointOptions) {
    this.metrics = chatMetrics(opts.meter);
  }

  /** Checks the request against the model it names; throws an OpenAiError (400 / 404 / ...) naming the field. */
  async prepare(body: unknown, ctx: CallContext = {}): Promise<PreparedCall> {
    const at = new Date();
    const t0 = performance.now();
    const req = parseChatRequest(body);
    const ref = parseModelId(req.model);
    let model: GenerationModel;
    try {
      model = await this.opts.core.generationModel(ref.runId, ref.channel);
    } catch (e) {
      throw toOpenAiError(e);
    }
    const { tokenizer, contextLength } = model;
    if (!tokenizer)
      throw new OpenAiError(
        400,
        `model: run "${ref.runId}" publishes no tokenizer, and chat needs one to encode messages`,
        'invalid_request_error',
        'model',
        'model_not_supported',
      );
    const prompt = renderChat(req.messages);
    // Checked before encoding, which would hold the service's thread for as long as the text is long.
    if (prompt.length > MAX_PROMPT_CHARS)
      throw badRequest('messages', `at most ${MAX_PROMPT_CHARS} characters in all, got ${prompt.length}`, 'context_length_exceeded');
    let promptIds: number[];
    try {
      promptIds = tokenizer.encode(prompt);
    } catch (e) {
      throw badRequest('messages', `cannot be encoded: ${(e as Error).message}`);
    }
    const room = contextLength - promptIds.length;
    if (room < 1)
      throw badRequest(
        'messages',
        `the prompt is ${promptIds.length} tokens; the model's context is ${contextLength}, which leaves no room for a completion`,
        'context_length_exceeded',
      );
    const maxTokens = req.maxTokens ?? room;
    if (maxTokens > room)
      throw badRequest(
        req.maxTokensParam,
        `must be at most ${room} (the model's context of ${contextLength} less the prompt's ${promptIds.length} tokens), got ${maxTokens}`,
        'context_length_exceeded',
      );
    const seed = req.seed;
    return {
      req,
      ref,
      tokenizer,
      eosTokenId: model.eosTokenId,
      prompt,
      promptIds,
      maxTokens,
      stop: [...req.stop, ...TURN_STOPS],
      seeds: Array.from({ length: req.n }, (_, i) => (seed === undefined ? randomInt(2 ** 31) : seed + i)),
      id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
      created: Math.floor(Date.now() / 1000),
      at,
      t0,
      agentId: ctx.agentId ?? req.user ?? null,
    };
  }

  /** The whole completion as one `chat.completion`. */
  async complete(call: PreparedCall, ctx: CallContext = {}): Promise<ChatCompletion> {
    const results = await this.generate(call, ctx);
    const choices = results.map((r, i) => this.choice(call, i, r));
    this.record(call, results, choices);
    return {
      id: call.id,
      object: 'chat.completion',
      created: call.created,
      model: call.req.model,
      system_fingerprint: fingerprint(call, results[0]),
      choices: choices.map((c, i) => ({
        index: i,
        message: { role: 'assistant', content: c.content, refusal: null },
        logprobs: call.req.logprobs ? { content: c.tokenLogprobs, refusal: null } : null,
        finish_reason: c.finishReason,
      })),
      usage: usage(call, results),
    };
  }

  /**
   * The completion as `chat.completion.chunk`s: per choice a first chunk with the role, one per token
   * that shows text (or carries a log-prob), the text held back until the end, and a chunk with the
   * finish reason; then, when the request asked (stream_options.include_usage), one with the usage.
   */
  async stream(call: PreparedCall, emit: (chunk: ChatCompletionChunk) => void, ctx: CallContext = {}): Promise<void> {
    const { req } = call;
    const chunk = (choices: ChatCompletionChunk['choices'], extra: Partial<ChatCompletionChunk> = {}): ChatCompletionChunk => ({
      id: call.id,
      object: 'chat.completion.chunk',
      created: call.created,
      model: req.model,
      choices,
      ...(req.includeUsage ? { usage: null } : {}),
      ...extra,
    });
    const texts = call.seeds.map(() => new CompletionText(call.tokenizer, call.stop));
    for (let i = 0; i < call.seeds.length; i++)
      emit(chunk([{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
    const onToken = (i: number, token: number, lp: number) => {
      const piece = token === call.eosTokenId ? '' : texts[i].push(token);
      if (piece === '' && !req.logprobs) return;
      const logprobs = req.logprobs ? { content: [logprob(call.tokenizer, token, lp)], refusal: null as null } : null;
      emit(chunk([{ index: i, delta: { content: piece }, logprobs, finish_reason: null }]));
    };
    const onDone = (i: number, r: GenerateResult) => {
      const rest = texts[i].finish();
      if (rest !== '') emit(chunk([{ index: i, delta: { content: rest }, logprobs: null, finish_reason: null }]));
      emit(chunk([{ index: i, delta: {}, logprobs: null, finish_reason: finishReason(r) }], { system_fingerprint: fingerprint(call, r) }));
    };
    const results = await this.generate(call, ctx, onToken, onDone);
    if (req.includeUsage) emit(chunk([], { usage: usage(call, results), system_fingerprint: fingerprint(call, results[0]) }));
    this.record(
      call,
      results,
      results.map((r, i) => this.choice(call, i, r)),
    );
  }

  /** Waits (at most `ms`) for recorder calls still running. */
  async drain(ms = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    });
    await Promise.race([Promise.all(this.recording), timeout]);
    clearTimeout(timer);
  }

  private async generate(
    call: PreparedCall,
    ctx: CallContext,
    onToken?: (choice: number, token: number, logProb: number) => void,
    onDone?: (choice: number, r: GenerateResult) => void,
  ): Promise<GenerateResult[]> {
    const { req, ref } = call;
    let results: GenerateResult[];
    try {
      results = await Promise.all(
        call.seeds.map(async (seed, i) => {
          const r = await this.opts.core.generate(
            ref.runId,
            { prompt: call.promptIds, maxNewTokens: call.maxTokens, temperature: req.temperature, topP: req.topP, seed, stop: call.stop },
            (token, lp) => onToken?.(i, token, lp),
            ref.channel,
            ctx.isCancelled,
          );
          onDone?.(i, r);
          return r;
        }),
      );
    } catch (e) {
      throw toOpenAiError(e, req.maxTokensParam);
    }
    this.metrics.latency.record(performance.now() - call.t0, { run: ref.runId });
    this.metrics.completionTokens.add(
      results.reduce((s, r) => s + r.tokens.length, 0),
      { run: ref.runId },
    );
    return results;
  }

  private choice(call: PreparedCall, index: number, r: GenerateResult): RecordedChoice {
    const last = r.tokens.length - 1;
    const shown = r.stopReason === 'eos' && r.tokens[last] === call.eosTokenId ? r.tokens.slice(0, last) : r.tokens;
    return {
      index,
      content: CompletionText.of(call.tokenizer, call.stop, shown),
      finishReason: finishReason(r),
      tokens: r.tokens,
      logprobs: r.logProbs,
      tokenLogprobs: r.tokens.map((t, k) => logprob(call.tokenizer, t, r.logProbs[k])),
    };
  }

  /** Hands the call to the recorder; its failure is logged, and nobody waits for it but drain(). */
  private record(call: PreparedCall, results: GenerateResult[], choices: RecordedChoice[]): void {
    const recorder = this.opts.recorder;
    // A caller that left before the end never saw the completion; there is nothing to learn from.
    if (!recorder || results.some((r) => r.stopReason === 'cancelled')) return;
    const { req, ref } = call;
    const completionTokens = results.reduce((s, r) => s + r.tokens.length, 0);
    const recorded: RecordedCall = {
      id: call.id,
      at: call.at,
      agentId: call.agentId,
      model: req.model,
      runId: ref.runId,
      channel: ref.channel,
      policyVersion: results[0].version,
      messages: req.messages,
      prompt: call.prompt,
      promptTokenIds: call.promptIds,
      completion: choices[0].content,
      choices,
      promptTokens: call.promptIds.length,
      completionTokens,
      latencyMs: performance.now() - call.t0,
      sampling: { temperature: req.temperature, topP: req.topP, maxTokens: call.maxTokens, seeds: call.seeds, stop: req.stop },
      stream: req.stream,
    };
    const fail = (e: unknown) =>
      this.opts.logger.warn('recording a chat completion failed; the caller got its answer', {
        id: call.id,
        error: (e as Error)?.message ?? String(e),
      });
    let p: Promise<void>;
    try {
      p = Promise.resolve(recorder.record(recorded)).catch(fail);
    } catch (e) {
      fail(e);
      return;
    }
    this.recording.add(p);
    void p.finally(() => this.recording.delete(p));
  }
}

function finishReason(r: GenerateResult): FinishReason {
  return r.stopReason === 'max_tokens' ? 'length' : 'stop';
}

/** The policy version behind the answer, where OpenAI names the backend configuration. */
function fingerprint(call: PreparedCall, r: GenerateResult): string {
  return `rlmesh-${call.ref.runId}-v${r.version}`;
}

function usage(call: PreparedCall, results: GenerateResult[]): Usage {
  const completion = results.reduce((s, r) => s + r.tokens.length, 0);
  return { prompt_tokens: call.promptIds.length, completion_tokens: completion, total_tokens: call.promptIds.length + completion };
}

function logprob(tokenizer: Tokenizer, token: number, lp: number): TokenLogprob {
  return { token: tokenizer.decode([token]), logprob: lp, bytes: Array.from(tokenizer.decodeBytes([token])), top_logprobs: [] };
}
