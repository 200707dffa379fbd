/**
 * A Session whose onnxruntime-node session lives in a worker thread (worker/session-worker.js), for
 * services: ORT's run() blocks the thread that calls it, and a learner's train step or a policy's
 * inference must not stall the gRPC and NATS traffic of the process. Feeds are copied to the worker
 * (they may be views into buffers the caller keeps); outputs are transferred back without a copy.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HostArray, HostTensor, SessionOptions } from './session';
import { ortSessionOptions, ortTypeOf } from './session';

export const SESSION_WORKER_PATH = join(__dirname, '..', 'worker', 'session-worker.js');

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

export class WorkerSession {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;
  /** Inputs the worker holds a value for. */
  private readonly carriedNames = new Set<string>();

  private constructor(
    private readonly worker: Worker,
    public inputNames: readonly string[] = [],
    public outputNames: readonly string[] = [],
  ) {
    worker.on('message', (m: { id: number; error?: string } & Record<string, unknown>) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m);
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`session worker exited with code ${code}`)));
  }

  static async create(model: Uint8Array, options: SessionOptions = {}): Promise<WorkerSession> {
    const worker = new Worker(SESSION_WORKER_PATH);
    const s = new WorkerSession(worker);
    let r: Record<string, unknown>;
    try {
      r = await s.call({ type: 'create', model, options: ortSessionOptions(options) });
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    s.inputNames = r.inputNames as string[];
    s.outputNames = r.outputNames as string[];
    return s;
  }

  private call(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...msg });
    });
  }

  async run(feeds: Record<string, HostTensor>, fetch?: readonly string[]): Promise<Record<string, HostTensor>> {
    return this.runCarrying(feeds, {}, fetch);
  }

  /**
   * Values kept in the worker between runs (copied there): a run feeds each to the input of its name
   * unless its feeds give one.
   */
  async carry(values: Record<string, HostTensor>): Promise<void> {
    const wire: Record<string, { type: string; data: HostArray; shape: readonly number[] }> = {};
    for (const [name, t] of Object.entries(values)) wire[name] = { type: ortTypeOf(t.data), data: t.data, shape: t.shape };
    await this.call({ type: 'carry', values: wire });
    for (const name of Object.keys(values)) this.carriedNames.add(name);
  }

  /** Copies of carried values. */
  async carried(names: readonly string[]): Promise<Record<string, HostTensor>> {
    const r = await this.call({ type: 'carried', names: [...names] });
    return r.values as Record<string, HostTensor>;
  }

  /**
   * Runs with the carried values for the inputs `feeds` leaves out; each output named in `carry`
   * ({ output: input }) stays in the worker as that input's next value instead of coming back.
   */
  async runCarrying(
    feeds: Record<string, HostTensor>,
    carry: Readonly<Record<string, string>>,
    fetch?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const carriedInputs = new Set(Object.values(carry));
    const wire: Record<string, { type: string; data: HostArray; shape: readonly number[] }> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) {
        if (carriedInputs.has(name) || this.carriedNames.has(name)) continue;
        throw new Error(`session run: missing input ${name}`);
      }
      wire[name] = { type: ortTypeOf(t.data), data: t.data, shape: t.shape };
    }
    const r = await this.call({ type: 'run', feeds: wire, fetch: fetch ? [...fetch] : undefined, carry });
    for (const name of carriedInputs) this.carriedNames.add(name);
    return r.outputs as Record<string, HostTensor>;
  }

  async release(): Promise<void> {
    if (!this.failure) await this.call({ type: 'release' }).catch(() => undefined);
    await this.worker.terminate();
  }
}
