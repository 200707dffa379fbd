/** A thin wrapper over onnxruntime-node's InferenceSession with typed feeds and plain-array results. */
import * as ort from 'onnxruntime-node';
import type { DType } from './onnx';

export type HostArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface HostTensor {
  data: HostArray;
  shape: readonly number[];
}

export interface SessionOptions {
  /** Threads inside one op (ORT intra-op pool); 0 lets ORT pick. */
  intraOpThreads?: number;
  interOpThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  executionProviders?: Array<'cpu' | 'cuda'>;
  /**
   * Whether idle intra-op threads spin waiting for work (ORT's default). Two sessions that take turns
   * on the same cores, as policy and learner do in the embedded loop, starve each other when they
   * spin, so set it false there.
   */
  spinning?: boolean;
}

const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  bool: 'bool',
};

function dtypeOfArray(a: HostArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  return 'bool';
}

export function ortTypeOf(a: HostArray): ort.Tensor.Type {
  return ORT_TYPE[dtypeOfArray(a)];
}

/** onnxruntime's session options for ours (shared by Session and WorkerSession). */
export function ortSessionOptions(options: SessionOptions): ort.InferenceSession.SessionOptions {
  const opts: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
    executionProviders: options.executionProviders ?? ['cpu'],
  };
  if (options.intraOpThreads !== undefined) opts.intraOpNumThreads = options.intraOpThreads;
  if (options.interOpThreads !== undefined) opts.interOpNumThreads = options.interOpThreads;
  if (options.spinning === false) opts.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
  return opts;
}

export function hostTensor(data: HostArray, shape: readonly number[]): HostTensor {
  const n = shape.reduce((p, d) => p * d, 1);
  if (n !== data.length) throw new Error(`tensor of shape [${shape.join(',')}] needs ${n} elements, got ${data.length}`);
  return { data, shape };
}

export class Session {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  /** Loads an ONNX model from bytes or a file path. */
  static async create(model: Uint8Array | string, options: SessionOptions = {}): Promise<Session> {
    const opts = ortSessionOptions(options);
    const s = typeof model === 'string' ? await ort.InferenceSession.create(model, opts) : await ort.InferenceSession.create(model, opts);
    return new Session(s, s.inputNames, s.outputNames);
  }

  /** Runs the model; feeds are keyed by input name. Returns every output (or those in `fetch`). */
  async run(feeds: Record<string, HostTensor>, fetch?: readonly string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`session run: missing input ${name}`);
      ortFeeds[name] = new ort.Tensor(ortTypeOf(t.data), t.data as never, t.shape as number[]);
    }
    const results = fetch ? await this.session.run(ortFeeds, [...fetch]) : await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(results)) {
      out[name] = { data: t.data as HostArray, shape: t.dims };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
