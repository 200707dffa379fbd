/**
 * The policy service without its transport: request validation with keyed errors, one live policy
 * per run (opened on first use, then kept current by a KV watch), batched inference and action
 * selection, and metrics. The gRPC adapter (grpc.ts) and in-process callers both use this class.
 */
import { randomInt } from 'node:crypto';
import { type Histogram, type Meter, metrics } from '@opentelemetry/api';
import { Rng } from '@rlmesh/core';
import type { Device } from '@rlmesh/graph';
import {
  type Bus,
  failedPrecondition,
  invalidArgument,
  keys,
  type Logger,
  notFound,
  type PolicyPointer,
  parsePolicyPointer,
  RUN_ID_PATTERN,
  resourceExhausted,
} from '@rlmesh/mesh';
import type { PolicySpec } from '@rlmesh/proto';
import { type GenerateInput, type GenerateResult, type GenerationModel, GenerationPool, type OnToken } from './generation';
import { OpenRuns } from './open-runs';
import { type ActResult, PolicyRun } from './run';

export type { GenerateInput, GenerateResult, GenerationModel } from './generation';
export type { ActResult } from './run';

export interface PolicyCoreOptions {
  bus: Bus;
  logger: Logger;
  /** Rows that make a batch leave at once (default 1024). */
  maxBatch?: number;
  /**
   * How long the first queued request waits for others (default 0: it leaves at once when the worker
   * is idle, and requests that arrive while a batch runs go together in the next one, so batches grow
   * with load; measured better than 2 ms on the policy bench in both throughput and latency).
   */
  maxWaitMs?: number;
  /** Largest request accepted (default 4096 rows). */
  maxRowsPerRequest?: number;
  /** Seed of the action sampler; random when omitted. */
  seed?: number;
  /** ORT intra-op threads of each run's worker (default 1). */
  threads?: number;
  /** onnxruntime's execution provider for inference (default cpu); the caller checks it is available. */
  device?: Device;
  /** Rows that may wait for a batch per run before Act answers RESOURCE_EXHAUSTED (default 16 x maxBatch). */
  maxQueuedRows?: number;
  /** Longest an Act with min_version waits for that version to be swapped in (default 1000 ms). */
  maxVersionWaitMs?: number;
  /** Where metrics go (default: the global meter `rlmesh.policy`, a no-op until a MeterProvider is set). */
  meter?: Meter;
  /**
   * A run that serves no request for this long gives back its inference worker and pointer watch
   * (default 60 s); the next request opens it again. Runs end and new ones start all the time, and
   * without this each one ever served kept a thread and its weights.
   */
  idleCloseMs?: number;
  /** Generate requests decoded together at most (default 32); 16x that may queue per run. */
  maxGenerateBatch?: number;
}

/** Which of a run's versions a request wants: the latest published, or the one its promotion gate promoted. */
export type PolicyChannelName = 'latest' | 'promoted';

export interface PolicyInfo {
  version: number;
  spec: PolicySpec;
}

export class PolicyCore {
  /** Inferences run and rows they held, since construction: what batching achieved. */
  readonly stats = { batches: 0, rows: 0 };
  /** Open runs by runKey: a run's latest and promoted versions are two policies. */
  private readonly runs: OpenRuns<PolicyRun>;
  private readonly rng: Rng;
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly maxRowsPerRequest: number;
  private readonly threads: number;
  private readonly maxVersionWaitMs: number;
  private readonly maxQueuedRows: number;
  private readonly latency: Histogram;
  private readonly batchRows: Histogram;
  private readonly served: ReturnType<Meter['createCounter']>;
  private readonly generation: GenerationPool;

  constructor(private readonly opts: PolicyCoreOptions) {
    const idleMs = opts.idleCloseMs ?? 60_000;
    const generateBatch = opts.maxGenerateBatch ?? 32;
    this.generation = new GenerationPool(
      {
        bus: opts.bus,
        logger: opts.logger,
        threads: opts.threads ?? 1,
        maxBatch: generateBatch,
        maxQueued: 16 * generateBatch,
        maxVersionWaitMs: opts.maxVersionWaitMs ?? 1000,
      },
      idleMs,
    );
    this.runs = new OpenRuns('policy', idleMs);
    this.maxBatch = opts.maxBatch ?? 1024;
    this.maxWaitMs = opts.maxWaitMs ?? 0;
    this.maxRowsPerRequest = opts.maxRowsPerRequest ?? 4096;
    this.threads = opts.threads ?? 1;
    this.maxVersionWaitMs = opts.maxVersionWaitMs ?? 1000;
    this.maxQueuedRows = opts.maxQueuedRows ?? 16 * this.maxBatch;
    this.rng = new Rng(opts.seed ?? randomInt(2 ** 31));
    const meter = opts.meter ?? metrics.getMeter('rlmesh.policy');
    this.latency = meter.createHistogram('rlmesh.policy.act.latency', { unit: 'ms', description: 'Act latency, queueing included' });
    this.batchRows = meter.createHistogram('rlmesh.policy.batch.rows', { unit: '{row}', description: 'Rows per inference batch' });
    this.served = meter.createCounter('rlmesh.policy.rows.served', { unit: '{row}', description: 'Observation rows answered' });
  }

  /** Chooses an action for each of `rows` observations (`obs` is row-major [rows, obs_dim]). */
  async act(
    runId: string,
    obs: Float32Array,
    rows: number,
    greedy: boolean,
    minVersion = 0,
    seed = 0,
    channel: PolicyChannelName = 'latest',
  ): Promise<ActResult> {
    const t0 = performance.now();
    checkRunId(runId);
    if (!Number.isInteger(rows) || rows < 1) throw invalidArgument('obs', `needs at least 1 row, got ${rows}`);
    if (rows > this.maxRowsPerRequest) throw invalidArgument('obs', `at most ${this.maxRowsPerRequest} rows per request, got ${rows}`);
    const key = runKey(runId, channel);
    return this.runs.with(
      key,
      () => this.open(runId, channel, key),
      (run) => this.actOn(run, runId, obs, rows, greedy, minVersion, seed, t0),
    );
  }

  private async actOn(
    run: PolicyRun,
    runId: string,
    obs: Float32Array,
    rows: number,
    greedy: boolean,
    minVersion: number,
    seed: number,
    t0: number,
  ): Promise<ActResult> {
    const dim = run.shape.obsDim;
    if (obs.length !== rows * dim) {
      const got = obs.length % rows === 0 ? `[${rows}, ${obs.length / rows}]` : `${obs.length} values for ${rows} rows`;
      throw invalidArgument('obs', `shape must be [*, ${dim}], got ${got}`);
    }
    if (minVersion > run.pointer.version) await run.waitForVersion(minVersion, this.maxVersionWaitMs);
    // Shed load rather than queue without bound: the caller retries or slows down.
    if (run.pendingRows + rows > this.maxQueuedRows)
      throw resourceExhausted(
        'obs',
        `${run.pendingRows} rows already queued for run "${runId}" (limit ${this.maxQueuedRows}); retry later`,
      );
    // NaN or Inf would poison the whole batch, other callers' rows included: refuse it here.
    for (let i = 0; i < obs.length; i++) {
      if (!Number.isFinite(obs[i])) throw invalidArgument('obs', `values must be finite, got ${obs[i]} at row ${Math.floor(i / dim)}`);
    }
    const result = await run.act(obs, rows, greedy, seed);
    this.latency.record(performance.now() - t0, { run: runId });
    this.served.add(rows, { run: runId });
    return result;
  }

  /**
   * Generates a completion of `input.prompt` with the run's causal LM policy, calling `onToken` with
   * each new token as it is chosen; concurrent calls share one decode loop.
   */
  async generate(
    runId: string,
    input: GenerateInput,
    onToken: OnToken,
    channel: PolicyChannelName = 'latest',
    isCancelled?: () => boolean,
  ): Promise<GenerateResult> {
    checkRunId(runId);
    return this.generation.generate(runKey(runId, channel), runId, () => this.readPointer(runId, channel), input, onToken, isCancelled);
  }

  /** The context length, EOS and tokenizer of the version the run's generator has loaded (opening it if needed). */
  async generationModel(runId: string, channel: PolicyChannelName = 'latest'): Promise<GenerationModel> {
    checkRunId(runId);
    return this.generation.model(runKey(runId, channel), runId, () => this.readPointer(runId, channel));
  }

  /** Generate's decode loops and the requests they held, since construction. */
  get generateStats(): { loops: number; rows: number } {
    return this.generation.stats;
  }

  /** The version and spec being served (or, for a run not served yet, the published ones). */
  async getPolicy(runId: string, channel: PolicyChannelName = 'latest'): Promise<PolicyInfo> {
    checkRunId(runId);
    const open = this.runs.peek(runKey(runId, channel));
    const pointer = open ? (await open).pointer : await this.readPointer(runId, channel);
    return { version: pointer.version, spec: pointer.spec ?? { model: '', numParameters: 0 } };
  }

  /** Stops every watch and worker; queued requests fail with UNAVAILABLE. */
  async close(): Promise<void> {
    await this.runs.close();
    await this.generation.close();
  }

  private async open(runId: string, channel: PolicyChannelName, key: string): Promise<PolicyRun> {
    const pointer = await this.readPointer(runId, channel);
    return PolicyRun.open(runId, pointer, {
      pointerKey: pointerKey(runId, channel),
      bus: this.opts.bus,
      logger: this.opts.logger,
      rng: this.rng,
      threads: this.threads,
      device: this.opts.device ?? 'cpu',
      maxBatch: this.maxBatch,
      maxWaitMs: this.maxWaitMs,
      onBatch: (rows) => {
        this.stats.batches++;
        this.stats.rows += rows;
        this.batchRows.record(rows, { run: runId });
      },
      onFailure: (run, e) => {
        this.opts.logger.error('policy worker failed; the run reopens on its next request', { run: runId, error: e.message });
        this.runs.discard(key, e);
        void run.close(e);
      },
    });
  }

  private async readPointer(runId: string, channel: PolicyChannelName): Promise<PolicyPointer> {
    const bytes = await this.opts.bus.kv.get(pointerKey(runId, channel));
    if (!bytes && channel === 'promoted' && (await this.opts.bus.kv.get(keys.policy(runId))))
      throw notFound('channel', `run "${runId}" has no promoted version yet (its promotion gate has not promoted one)`);
    if (!bytes) throw notFound('run_id', `no policy published for run "${runId}"`);
    try {
      return parsePolicyPointer(bytes);
    } catch (e) {
      throw failedPrecondition('run_id', `policy pointer of run "${runId}" is malformed: ${(e as Error).message}`);
    }
  }
}

/** The latest version under the run id, the promoted one beside it ('|' is not allowed in run ids). */
const runKey = (runId: string, channel: PolicyChannelName) => (channel === 'latest' ? runId : `${runId}|${channel}`);
const pointerKey = (runId: string, channel: PolicyChannelName) => (channel === 'promoted' ? keys.promoted(runId) : keys.policy(runId));

function checkRunId(runId: string): void {
  if (!RUN_ID_PATTERN.test(runId)) throw invalidArgument('run_id', `must match ${RUN_ID_PATTERN}, got ${JSON.stringify(runId)}`);
}
