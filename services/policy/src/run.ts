/**
 * One run's live policy: its inference worker, its batch queue, and a KV watch on its pointer that
 * hot-swaps new versions in. A swap is a message to the worker, ordered after the batches already
 * sent to it, so a batch in flight finishes on the old weights and the next one uses the new ones;
 * nothing is dropped and no request waits for a fetch.
 */
import { actRng, type Rng, type SampledActions, sampleActions } from '@rlmesh/core';
import type { Device } from '@rlmesh/graph';
import {
  type Bus,
  failedPrecondition,
  type Logger,
  type PolicyPointer,
  paramsFromBytes,
  parsePolicyPointer,
  pointerShape,
  type Subscription,
} from '@rlmesh/mesh';
import { Batcher } from './batcher';
import { InferenceWorker } from './worker';

export interface ActResult extends SampledActions {
  values: Float32Array;
  /** The policy version the batch ran with. */
  version: number;
}

export interface RunDeps {
  bus: Bus;
  /** The KV key whose PolicyPointer this run serves and follows (policy.<run> or promoted.<run>). */
  pointerKey: string;
  logger: Logger;
  rng: Rng;
  threads: number;
  /** onnxruntime's execution provider for the run's inference worker. */
  device: Device;
  maxBatch: number;
  maxWaitMs: number;
  /** Called after every inference with its row count (metrics). */
  onBatch: (rows: number) => void;
  /** The worker died: the owner should forget this run so that the next request reopens it. */
  onFailure: (run: PolicyRun, e: Error) => void;
}

interface Request {
  obs: Float32Array;
  rows: number;
  greedy: boolean;
  /** Seeds this request's sampling alone; 0: the service's generator. */
  seed: number;
}

async function fetchObject(bus: Bus, runId: string, name: string): Promise<Uint8Array> {
  const bytes = await bus.objects.get(name);
  if (!bytes) throw failedPrecondition('run_id', `policy of run "${runId}" names object "${name}", which is not in the object store`);
  return bytes;
}

export async function fetchParams(bus: Bus, runId: string, p: PolicyPointer): Promise<Float32Array> {
  const params = paramsFromBytes(await fetchObject(bus, runId, p.params));
  const want = p.spec?.numParameters || undefined;
  if (want !== undefined && params.length !== want)
    throw failedPrecondition('run_id', `policy object "${p.params}" holds ${params.length} parameters, spec.num_parameters is ${want}`);
  return params;
}

export class PolicyRun {
  private readonly batcher: Batcher<Request, ActResult>;
  private watch: Subscription | null = null;
  private updates: Promise<void> = Promise.resolve();
  /** Highest version announced on the KV key, applied or not: older announcements are skipped. */
  private announced: number;
  private closed = false;
  private readonly versionWaiters = new Set<{ version: number; wake: () => void }>();

  private constructor(
    readonly runId: string,
    /** The pointer whose program and parameters the worker holds (or has queued to hold). */
    private applied: PolicyPointer,
    private readonly worker: InferenceWorker,
    private readonly deps: RunDeps,
  ) {
    this.announced = applied.version;
    this.batcher = new Batcher({ maxRows: deps.maxBatch, maxWaitMs: deps.maxWaitMs, run: (reqs, rows) => this.runBatch(reqs, rows) });
  }

  /** Loads `pointer`'s program and parameters into a new worker, then follows the run's KV key. */
  static async open(runId: string, pointer: PolicyPointer, deps: RunDeps): Promise<PolicyRun> {
    const program = await fetchObject(deps.bus, runId, pointer.program);
    const params = await fetchParams(deps.bus, runId, pointer);
    let self: PolicyRun | null = null;
    const worker = new InferenceWorker({ threads: deps.threads, device: deps.device }, (e) => self && deps.onFailure(self, e));
    try {
      await worker.swap(pointer.version, params, program);
    } catch (e) {
      await worker.terminate();
      throw failedPrecondition('run_id', `policy of run "${runId}" could not be loaded: ${(e as Error).message}`);
    }
    const run = new PolicyRun(runId, pointer, worker, deps);
    self = run;
    run.watch = await deps.bus.kv.watch(deps.pointerKey, (_k, v) => run.announce(v));
    deps.logger.info('policy loaded', { run: runId, version: pointer.version, program: pointer.program });
    return run;
  }

  get pointer(): PolicyPointer {
    return this.applied;
  }

  private shapeOf: { pointer: PolicyPointer; shape: ReturnType<typeof pointerShape> } | null = null;

  /** The applied pointer's obs width and action distribution, computed once per version. */
  get shape(): ReturnType<typeof pointerShape> {
    if (this.shapeOf?.pointer !== this.applied) this.shapeOf = { pointer: this.applied, shape: pointerShape(this.applied) };
    return this.shapeOf.shape;
  }

  /** Resolves once `version` (or a newer one) is being served, or after `timeoutMs`, whichever is first. */
  waitForVersion(version: number, timeoutMs: number): Promise<void> {
    if (this.applied.version >= version || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        version,
        wake: () => {
          clearTimeout(timer);
          this.versionWaiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, timeoutMs);
      this.versionWaiters.add(waiter);
    });
  }

  /** Rows queued for the next batches (not yet in the worker). */
  get pendingRows(): number {
    return this.batcher.pendingRows;
  }

  act(obs: Float32Array, rows: number, greedy: boolean, seed = 0): Promise<ActResult> {
    return this.batcher.submit({ obs, rows, greedy, seed }, rows);
  }

  async close(reason: Error): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.versionWaiters) w.wake();
    this.batcher.close(reason);
    await this.watch?.stop();
    await this.worker.terminate();
  }

  private announce(value: Uint8Array | null): void {
    if (this.closed) return;
    if (value === null) {
      this.deps.logger.warn('policy pointer deleted; serving the last version', { run: this.runId, version: this.applied.version });
      return;
    }
    let p: PolicyPointer;
    try {
      p = parsePolicyPointer(value);
    } catch (e) {
      this.deps.logger.warn('ignoring malformed policy pointer', { run: this.runId, error: (e as Error).message });
      return;
    }
    if (p.version <= this.announced) return; // versions only move forward; a redelivery or an old value
    this.announced = p.version;
    this.updates = this.updates.then(() =>
      this.apply(p).catch((e) => {
        if (this.closed) return; // the worker went away under the swap; nothing is being served
        this.deps.logger.warn('policy version not applied; still serving the previous one', {
          run: this.runId,
          version: p.version,
          serving: this.applied.version,
          error: (e as Error).message,
        });
      }),
    );
  }

  private async apply(p: PolicyPointer): Promise<void> {
    // A newer version announced meanwhile makes this one pointless to fetch.
    if (this.closed || p.version < this.announced || p.version <= this.applied.version) return;
    const program = p.program === this.applied.program ? undefined : await fetchObject(this.deps.bus, this.runId, p.program);
    const params = await fetchParams(this.deps.bus, this.runId, p);
    if (this.closed) return;
    const swapped = this.worker.swap(p.version, params, program);
    // Requests validated from now on are checked against the new spec; batches already sent keep the old program.
    const previous = this.applied;
    this.applied = p;
    try {
      await swapped;
    } catch (e) {
      this.applied = previous;
      throw e;
    }
    for (const w of this.versionWaiters) if (w.version <= p.version) w.wake();
    this.deps.logger.debug('policy swapped', { run: this.runId, version: p.version, program_changed: program !== undefined });
  }

  private async runBatch(reqs: Request[], rows: number): Promise<ActResult[]> {
    const { obsDim: dim, distribution } = this.shape;
    const obs = new Float32Array(rows * dim);
    let offset = 0;
    for (const r of reqs) {
      // Only a program swap that changes obs_dim while the request queued can trip this.
      if (r.obs.length !== r.rows * dim) throw failedPrecondition('obs', `the policy changed to obs_dim ${dim} while the request waited`);
      obs.set(r.obs, offset);
      offset += r.obs.length;
    }
    const out = await this.worker.run(obs, rows);
    this.deps.onBatch(rows);
    let start = 0;
    return reqs.map((r) => {
      const chosen = sampleActions(distribution, out.outputs, start, r.rows, r.greedy, r.seed ? actRng(r.seed) : this.deps.rng);
      const values = out.outputs.value.slice(start, start + r.rows);
      start += r.rows;
      return { ...chosen, values, version: out.version };
    });
  }
}
