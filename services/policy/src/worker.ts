/**
 * The main-thread handle of one inference worker (worker/inference-worker.js): request ids matched to
 * replies, buffers transferred rather than copied, and every pending call failed if the thread dies,
 * so that no caller waits forever on a crashed worker.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Device } from '@rlmesh/graph';
import { unavailable } from '@rlmesh/mesh';

/** Resolved from the file's directory, which is src/ under vitest and dist/ when built: both sit beside worker/. */
export const WORKER_PATH = path.join(__dirname, '..', 'worker', 'inference-worker.js');

export interface InferenceOutput {
  /** The parameter version this batch ran with. */
  version: number;
  /** Every output of the act program: `value` [rows] and the distribution's heads. */
  outputs: Record<string, Float32Array>;
}

/** Transferring a view's buffer would detach the whole buffer; a view gets its own copy first. */
function owned(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();
}

interface Reply {
  id: number;
  error?: string;
  version: number;
  outputs: Record<string, Float32Array>;
}

export class InferenceWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private dead: Error | null = null;

  /** ORT runs on `device` with `threads` intra-op threads; `onExit` hears of a worker that stopped without being asked to. */
  constructor(opts: { threads: number; device: Device }, onExit?: (e: Error) => void) {
    this.worker = new Worker(WORKER_PATH, { workerData: { threads: opts.threads, device: opts.device } });
    this.worker.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error !== undefined) p.reject(new Error(r.error));
      else p.resolve(r);
    });
    const fail = (e: Error) => {
      if (this.dead) return;
      this.dead = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      onExit?.(e);
    };
    this.worker.on('error', (e) => fail(unavailable(`policy inference worker failed: ${e.message}`)));
    this.worker.on('exit', (code) => fail(unavailable(`policy inference worker exited (code ${code})`)));
  }

  private call(msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  /**
   * Replaces the parameters (and the program, when given) for every run posted after this call.
   * `params` is transferred (when it owns its buffer): the caller must not use it afterwards.
   */
  async swap(version: number, params: Float32Array, program?: Uint8Array): Promise<void> {
    const p = owned(params);
    await this.call({ type: 'swap', version, params: p, program }, [p.buffer as ArrayBuffer]);
  }

  /** One forward pass over `rows` observations; `obs` is transferred (when it owns its buffer). */
  async run(obs: Float32Array, rows: number): Promise<InferenceOutput> {
    const o = owned(obs);
    const r = await this.call({ type: 'run', obs: o, rows }, [o.buffer as ArrayBuffer]);
    return { version: r.version, outputs: r.outputs };
  }

  async terminate(): Promise<void> {
    this.dead ??= unavailable('policy service is closing');
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
    await this.worker.terminate();
  }
}
