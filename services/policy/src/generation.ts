/**
 * The policy service's generation path: for each run that publishes a causal LM (a pointer with
 * model_config), a GPT-2 generator rebuilt from model_config and the flat parameters, and a queue.
 * One decode loop serves the queue: a request joins it at the next step (up to maxBatch rows) and
 * leaves when it stops, so the batch follows the load; each request samples with its own seed, so
 * batching does not change its tokens. A loop runs one version start to end and reports it: when a
 * newer version is published, the loop stops taking requests, drains, and the next one loads it.
 *
 * The programs run in worker threads, so Act calls and health checks are answered while a loop
 * decodes; the sampling between steps runs on the service's thread.
 */

import { ConfigError } from '@rlmesh/core';
import { causalLmFromModelConfig, type GeneratedRow, type GenerateRow, Gpt2Generator, loadPointerTokenizer } from '@rlmesh/learner';
import {
  type Bus,
  failedPrecondition,
  invalidArgument,
  type Logger,
  type PolicyPointer,
  resourceExhausted,
  unavailable,
} from '@rlmesh/mesh';
import type { Tokenizer } from '@rlmesh/text';
import { OpenRuns } from './open-runs';
import { fetchParams } from './run';

/** One Generate request, in the names of GenerateRequest's fields. */
export interface GenerateInput {
  prompt: readonly number[];
  maxNewTokens: number;
  /** Unset: 1. 0 is greedy. */
  temperature?: number;
  topK?: number;
  /** Unset: 1. */
  topP?: number;
  seed?: number;
  /** Unset: the model's eos_token_id, if it has one. */
  eosTokenId?: number;
  stopSequences?: readonly (readonly number[])[];
  /** The prompt as text (needs the run's tokenizer); set either this or `prompt`. */
  promptText?: string;
  /** Stop strings in the decoded completion (need the run's tokenizer). */
  stop?: readonly string[];
  /** Wait (at most maxVersionWaitMs) for the run to publish this version before queueing. */
  minVersion?: number;
}

export interface GenerateResult extends GeneratedRow {
  /** The policy version the whole completion was generated with. */
  version: number;
  /** The completion decoded with the run's tokenizer; '' without one. */
  text: string;
}

/**
 * What a run's loaded version generates with, for adapters that work in text rather than token ids
 * (the OpenAI-compatible endpoint encodes its chat prompt and decodes streamed tokens with it).
 */
export interface GenerationModel {
  version: number;
  /** Positions the model attends to: prompt and completion together. */
  contextLength: number;
  /** The token a completion stops after unless the request names another. */
  eosTokenId?: number;
  tokenizer: Tokenizer | null;
}

/** Limits on a request that the model's config does not set. */
const MAX_STOP_SEQUENCES = 16;
const MAX_STOP_SEQUENCE_TOKENS = 64;
const MAX_STOP_STRING_CHARS = 256;
const VERSION_POLL_MS = 20;
/** How often a running loop reads the pointer for a newer version. */
const VERSION_CHECK_MS = 200;
/** A text prompt longer than this many characters is refused before encoding (no context holds it). */
const MAX_PROMPT_CHARS = 1 << 20;

export interface GenerationDeps {
  bus: Bus;
  logger: Logger;
  threads: number;
  /** Requests decoded together at most; more wait for a row to leave the loop. */
  maxBatch: number;
  /** Requests that may wait per run before Generate answers RESOURCE_EXHAUSTED. */
  maxQueued: number;
  /** Longest a request with min_version waits for that version to be published. */
  maxVersionWaitMs: number;
  /** Called after every decode loop with the requests it served. */
  onLoop?: (rows: number) => void;
  /** The run's current pointer (latest or promoted); throws NOT_FOUND when there is none. */
  readPointer: () => Promise<PolicyPointer>;
}

/** Called with each new token as it is chosen, and its log-prob (as GeneratedRow.logProbs holds it). */
export type OnToken = (token: number, logProb: number) => void;

interface Job {
  row: GenerateRow;
  onToken: OnToken;
  isCancelled: () => boolean;
  resolve: (r: GenerateResult) => void;
  reject: (e: Error) => void;
}

interface Loaded {
  version: number;
  generator: Gpt2Generator;
  tokenizer: Tokenizer | null;
}

export class GenerationRun {
  /** Requests waiting to join the loop. */
  private readonly queue: Job[] = [];
  private looping = false;
  /** The newest version seen published; a loop stops taking requests once it passes the loaded one. */
  private announced: number;
  /** A version that failed to load: not announced again, so the loop does not drain for it over and over. */
  private rejected = 0;
  private lastPoll = 0;
  private closed = false;
  /** A loop failed: the pool replaces this run. */
  failed = false;

  private constructor(
    readonly runId: string,
    private loaded: Loaded,
    private readonly deps: GenerationDeps,
  ) {
    this.announced = loaded.version;
  }

  static async open(runId: string, deps: GenerationDeps): Promise<GenerationRun> {
    const pointer = await deps.readPointer();
    const loaded = await load(runId, pointer, deps);
    deps.logger.info('generation policy loaded', { run: runId, version: loaded.version });
    return new GenerationRun(runId, loaded, deps);
  }

  get version(): number {
    return this.loaded.version;
  }

  get model(): GenerationModel {
    const { version, generator, tokenizer } = this.loaded;
    const d = generator.model.dims;
    return { version, contextLength: d.context, eosTokenId: d.eosTokenId ?? undefined, tokenizer };
  }

  /** Validates `input` against the loaded model, queues it, and resolves with the whole completion. */
  async generate(input: GenerateInput, onToken: OnToken, isCancelled: () => boolean = () => false): Promise<GenerateResult> {
    const row = this.check(input);
    if ((input.minVersion ?? 0) > this.loaded.version) await this.waitForPublished(input.minVersion ?? 0);
    if (this.closed) throw unavailable('policy service is closing');
    if (this.queue.length + 1 > this.deps.maxQueued)
      throw resourceExhausted('run_id', `${this.queue.length} Generate requests already queued for run "${this.runId}"; retry later`);
    return new Promise<GenerateResult>((resolve, reject) => {
      this.queue.push({ row, onToken, isCancelled, resolve, reject });
      this.kick();
    });
  }

  /** Starts a loop when requests wait and none runs. */
  private kick(): void {
    if (this.looping || this.closed || this.failed || this.queue.length === 0) return;
    this.looping = true;
    void this.loop().finally(() => {
      this.looping = false;
      this.kick();
    });
  }

  /** Reads the pointer at most every VERSION_CHECK_MS while a loop runs, to notice a new version. */
  private pollVersion(): void {
    const now = Date.now();
    if (now - this.lastPoll < VERSION_CHECK_MS) return;
    this.lastPoll = now;
    this.deps.readPointer().then(
      (p) => {
        if (p.version > this.announced && p.version > this.rejected) this.announced = p.version;
      },
      () => undefined,
    );
  }

  /** The request as a generator row, or INVALID_ARGUMENT naming the field and the rule. */
  private check(input: GenerateInput): GenerateRow {
    const d = this.loaded.generator.model.dims;
    const { tokenizer } = this.loaded;
    const { maxNewTokens } = input;
    const text = input.promptText ?? '';
    let prompt = input.prompt;
    let field = 'prompt';
    if (text !== '') {
      if (prompt.length > 0) throw invalidArgument('prompt_text', 'set either prompt (token ids) or prompt_text, not both');
      if (!tokenizer) throw failedPrecondition('prompt_text', `run "${this.runId}" publishes no tokenizer; send token ids in prompt`);
      if (text.length > MAX_PROMPT_CHARS)
        throw invalidArgument('prompt_text', `at most ${MAX_PROMPT_CHARS} characters, got ${text.length}`);
      prompt = tokenizer.encode(text);
      field = 'prompt_text';
    }
    if (prompt.length === 0) throw invalidArgument('prompt', 'must hold at least 1 token id (or prompt_text some text), got none');
    if (prompt.length >= d.context)
      throw invalidArgument(
        field,
        `has ${prompt.length} tokens; the model's context is ${d.context}, which leaves no room for a new token`,
      );
    const bad = prompt.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= d.vocabSize);
    if (bad >= 0) throw invalidArgument(field, `token id ${prompt[bad]} at index ${bad} is outside the vocabulary of ${d.vocabSize}`);
    const room = d.context - prompt.length;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1 || maxNewTokens > room)
      throw invalidArgument(
        'max_new_tokens',
        `must be in [1, ${room}] (the context of ${d.context} less the prompt's ${prompt.length} tokens), got ${maxNewTokens}`,
      );
    if (input.eosTokenId !== undefined && !(Number.isInteger(input.eosTokenId) && input.eosTokenId < d.vocabSize))
      throw invalidArgument('eos_token_id', `must be a token id below ${d.vocabSize}, got ${input.eosTokenId}`);
    const stops = input.stopSequences ?? [];
    if (stops.length > MAX_STOP_SEQUENCES) throw invalidArgument('stop_sequences', `at most ${MAX_STOP_SEQUENCES}, got ${stops.length}`);
    for (const [i, s] of stops.entries()) {
      if (s.length === 0 || s.length > MAX_STOP_SEQUENCE_TOKENS)
        throw invalidArgument('stop_sequences', `entry ${i} must hold 1 to ${MAX_STOP_SEQUENCE_TOKENS} token ids, got ${s.length}`);
      const id = s.find((t) => t >= d.vocabSize);
      if (id !== undefined)
        throw invalidArgument('stop_sequences', `entry ${i}: token id ${id} is outside the vocabulary of ${d.vocabSize}`);
    }
    const stop = input.stop ?? [];
    if (stop.length > 0 && !tokenizer)
      throw failedPrecondition('stop', `run "${this.runId}" publishes no tokenizer; use stop_sequences (token ids)`);
    if (stop.length > MAX_STOP_SEQUENCES) throw invalidArgument('stop', `at most ${MAX_STOP_SEQUENCES}, got ${stop.length}`);
    for (const [i, st] of stop.entries())
      if (st.length === 0 || st.length > MAX_STOP_STRING_CHARS)
        throw invalidArgument('stop', `entry ${i} must hold 1 to ${MAX_STOP_STRING_CHARS} characters, got ${st.length}`);
    const row: GenerateRow = {
      prompt,
      maxNewTokens,
      temperature: input.temperature ?? 1,
      topK: input.topK ?? 0,
      topP: input.topP ?? 1,
      seed: input.seed ?? 0,
      eosTokenId: input.eosTokenId ?? d.eosTokenId ?? undefined,
      stopTokens: stops,
      stop,
    };
    try {
      this.loaded.generator.check(row, 0, tokenizer !== null);
    } catch (e) {
      if (e instanceof ConfigError) throw invalidArgument(e.key, e.rule);
      throw invalidArgument('prompt', (e as Error).message);
    }
    return row;
  }

  /**
   * Polls the run's pointer until it names `version` or newer, or maxVersionWaitMs passed; the next
   * loop's refresh then loads it.
   */
  private async waitForPublished(version: number): Promise<void> {
    const until = Date.now() + this.deps.maxVersionWaitMs;
    while (!this.closed && Date.now() < until) {
      const published = await this.deps.readPointer().then(
        (p) => p.version,
        () => 0,
      );
      if (published >= version) return;
      await new Promise((r) => setTimeout(r, Math.min(VERSION_POLL_MS, Math.max(0, until - Date.now()))));
    }
  }

  async close(reason: Error): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(reason);
    await this.loaded.generator.release();
  }

  /** Swaps in a newer published version; a failure keeps the loaded one (and is logged). */
  private async refresh(): Promise<void> {
    let pointer: PolicyPointer;
    try {
      pointer = await this.deps.readPointer();
    } catch (e) {
      this.deps.logger.warn('policy pointer unreadable; generating with the loaded version', { run: this.runId, error: String(e) });
      return;
    }
    if (pointer.version <= this.loaded.version) return;
    try {
      const next = await load(this.runId, pointer, this.deps);
      const old = this.loaded;
      this.loaded = next;
      await old.generator.release();
      this.deps.logger.debug('generation policy swapped', { run: this.runId, version: next.version });
    } catch (e) {
      this.rejected = pointer.version;
      this.announced = this.loaded.version;
      this.deps.logger.warn('policy version not applied to generation; still serving the previous one', {
        run: this.runId,
        version: pointer.version,
        serving: this.loaded.version,
        error: (e as Error).message,
      });
    }
  }

  /**
   * One decode loop on the loaded version: requests join it between steps as rows leave (up to
   * maxBatch at once) until none is left; a newly published version stops the joining, so the loop
   * drains and the next one starts on the new version.
   */
  private async loop(): Promise<void> {
    await this.refresh();
    const { generator, version, tokenizer } = this.loaded;
    const decode = tokenizer ? (ids: readonly number[]) => tokenizer.decode(ids) : undefined;
    const taken = new Map<GenerateRow, Job>();
    let served = 0;
    const take = (room: number): GenerateRow[] => {
      if (this.closed || this.announced > version) return [];
      this.pollVersion();
      const fresh: GenerateRow[] = [];
      while (fresh.length < room && this.queue.length > 0) {
        const j = this.queue.shift() as Job;
        if (j.isCancelled()) {
          j.reject(unavailable('the call was cancelled before it joined a loop'));
          continue;
        }
        try {
          // A version swapped in after the request was checked may have a smaller context or vocabulary.
          generator.check(j.row, 0, decode !== undefined);
        } catch (e) {
          j.reject(failedPrecondition('prompt', `policy version ${version} cannot generate this request: ${(e as Error).message}`));
          continue;
        }
        j.row.cancelled = j.isCancelled;
        taken.set(j.row, j);
        fresh.push(j.row);
      }
      served += fresh.length;
      return fresh;
    };
    try {
      await generator.serve(
        take,
        (row, r) => {
          const j = taken.get(row);
          taken.delete(row);
          j?.resolve({ ...r, version, text: decode ? decode(r.tokens) : '' });
        },
        {
          decode,
          maxBatch: this.deps.maxBatch,
          onStep: (emitted) => {
            for (const e of emitted) taken.get(e.row)?.onToken(e.token, e.logProb);
          },
        },
      );
    } catch (e) {
      // The requests were checked, so this is the programs or their workers failing: the pool
      // opens the run afresh for the next request instead of failing every later one the same way.
      let err = unavailable('policy service is closing');
      if (!this.closed) {
        this.failed = true;
        this.deps.logger.error('generation failed; the run reopens on its next request', { run: this.runId, error: String(e) });
        err = unavailable(`generation for run "${this.runId}" failed: ${(e as Error).message}`);
      }
      for (const j of taken.values()) j.reject(err);
      for (const j of this.queue.splice(0)) j.reject(err);
    } finally {
      if (served > 0) this.deps.onLoop?.(served);
    }
  }
}

async function load(runId: string, pointer: PolicyPointer, deps: GenerationDeps): Promise<Loaded> {
  if (!pointer.modelConfig)
    throw failedPrecondition(
      'run_id',
      `policy of run "${runId}" (model ${JSON.stringify(pointer.spec?.model ?? '')}) publishes no model_config: it cannot generate`,
    );
  const flat = await fetchParams(deps.bus, runId, pointer);
  let built: ReturnType<typeof causalLmFromModelConfig>;
  try {
    built = causalLmFromModelConfig(pointer.modelConfig, flat);
  } catch (e) {
    throw failedPrecondition('run_id', `policy of run "${runId}" cannot generate: ${(e as Error).message}`);
  }
  const tokenizer = pointer.tokenizer ? await loadPointerTokenizer(deps.bus, runId, pointer.tokenizer, built.model.dims.vocabSize) : null;
  const generator = await Gpt2Generator.create(built.model, built.params, { threads: deps.threads, worker: true });
  return { version: pointer.version, generator, tokenizer };
}

/** The generation runs of a policy service, opened on first use and closed when idle (OpenRuns). */
export class GenerationPool {
  /** Decode loops run and the requests they held, since construction: what batching achieved. */
  readonly stats = { loops: 0, rows: 0 };
  private readonly runs: OpenRuns<GenerationRun>;

  constructor(
    private readonly deps: Omit<GenerationDeps, 'readPointer' | 'onLoop'>,
    idleCloseMs: number,
  ) {
    this.runs = new OpenRuns('generator', idleCloseMs);
  }

  async generate(
    key: string,
    runId: string,
    readPointer: () => Promise<PolicyPointer>,
    input: GenerateInput,
    onToken: OnToken,
    isCancelled?: () => boolean,
  ): Promise<GenerateResult> {
    return this.withRun(key, runId, readPointer, (run) => run.generate(input, onToken, isCancelled));
  }

  /** What the run's loaded version generates with (opening the run if needed). */
  model(key: string, runId: string, readPointer: () => Promise<PolicyPointer>): Promise<GenerationModel> {
    return this.withRun(key, runId, readPointer, async (run) => run.model);
  }

  private async withRun<T>(
    key: string,
    runId: string,
    readPointer: () => Promise<PolicyPointer>,
    fn: (run: GenerationRun) => Promise<T>,
  ): Promise<T> {
    // A run whose decode loop failed is replaced by a fresh one (another request may have done so already).
    const existing = this.runs.peek(key);
    if (existing && (await existing.catch(() => null))?.failed)
      this.runs.discard(key, unavailable('the run failed and was reopened'), existing);
    const onLoop = (rows: number) => {
      this.stats.loops++;
      this.stats.rows += rows;
    };
    return this.runs.with(key, () => GenerationRun.open(runId, { ...this.deps, readPointer, onLoop }), fn);
  }

  close(): Promise<void> {
    return this.runs.close();
  }
}
