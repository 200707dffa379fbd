/** A thin wrapper over onnxruntime-node's InferenceSession with typed feeds and plain-array results. */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
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
  executionProviders?: Device[];
  /**
   * Whether idle intra-op threads spin waiting for work (ORT's default). Two sessions that take turns
   * on the same cores, as policy and learner do in the embedded loop, starve each other when they
   * spin, so set it false there.
   */
  spinning?: boolean;
}

/** Where a session runs: onnxruntime's CPU or CUDA execution provider. */
export type Device = 'cpu' | 'cuda';
export const DEVICES: readonly Device[] = ['cpu', 'cuda'];

/** Where the NVIDIA container runtime and the usual driver packages put libcuda. */
const DRIVER_DIRS = ['/usr/local/nvidia/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu'];

/**
 * Why `device` cannot run here, or null when it can. onnxruntime given a CUDA provider it cannot
 * load may fail late or deep in a worker, so services check at start and refuse with this reason
 * rather than ever running on the CPU when CUDA was asked for.
 */
export function deviceUnavailable(device: Device): string | null {
  if (device === 'cpu') return null;
  const where = `${process.platform}-${process.arch}`;
  if (!ort.listSupportedBackends().some((b) => b.name === 'cuda'))
    return `onnxruntime-node ${ort.env.versions.node} has no CUDA execution provider on ${where}`;
  const pkg = dirname(createRequire(__filename).resolve('onnxruntime-node/package.json'));
  const provider = join(pkg, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
  if (!existsSync(provider))
    return `onnxruntime-node's CUDA provider is not installed (no ${provider}; reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12, or use the GPU image)`;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...DRIVER_DIRS];
  const inCache = existsSync('/etc/ld.so.cache') && readFileSync('/etc/ld.so.cache').includes('libcuda.so.1');
  if (!inCache && !dirs.some((d) => existsSync(join(d, 'libcuda.so.1'))))
    return 'no NVIDIA driver: libcuda.so.1 is not installed (no GPU here, or the container runs without the NVIDIA runtime)';
  return null;
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

/**
 * onnxruntime-node's native session (its dist/binding module), which its public InferenceSession
 * wraps. Session calls it directly: the wrapper defers every run through setImmediate (a trip around
 * the event loop, ~5 us) and re-validates feeds and fetches in JS, which is about a tenth of the
 * embedded PPO loop's time on CartPole (a policy's act call is ~20 us). The members used here are the
 * ones the wrapper itself calls in onnxruntime-node 1.30; session.test.ts checks both agree.
 */
interface NativeSession {
  loadModel(path: string, options: ort.InferenceSession.SessionOptions): void;
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: ort.InferenceSession.SessionOptions): void;
  readonly inputMetadata: readonly { name: string }[];
  readonly outputMetadata: readonly { name: string }[];
  run(
    feeds: Record<string, NativeTensor>,
    fetches: Record<string, null>,
    options: ort.InferenceSession.RunOptions,
  ): Record<string, ort.Tensor>;
  dispose(): void;
}

/** A feed as the native run reads it (onnxruntime-node checks the type, and the data's length against dims). */
interface NativeTensor {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: HostArray;
  location: 'cpu';
}

interface NativeBinding {
  binding: { InferenceSession: new () => NativeSession };
  initOrt(): void;
}

let native: NativeBinding | undefined;
function nativeBinding(): NativeBinding {
  native ??= createRequire(__filename)('onnxruntime-node/dist/binding') as NativeBinding;
  native.initOrt();
  return native;
}

/**
 * A run occupies the thread whether or not it is deferred, so runs do not yield to the event loop
 * one by one: once this long has passed since the last yield, the next run yields first. Timers,
 * signals and I/O then wait at most this long plus one run, at a cost of one loop trip per interval.
 */
const YIELD_EVERY_MS = 4;
let lastYield = performance.now();

async function yieldNowAndThen(): Promise<void> {
  if (performance.now() - lastYield < YIELD_EVERY_MS) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  lastYield = performance.now();
}

export class Session {
  private released = false;

  private constructor(
    private readonly session: NativeSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  /** Loads an ONNX model from bytes or a file path. */
  static async create(model: Uint8Array | string, options: SessionOptions = {}): Promise<Session> {
    const opts = ortSessionOptions(options);
    const { binding } = nativeBinding();
    const s = new binding.InferenceSession();
    if (typeof model === 'string') s.loadModel(model, opts);
    else s.loadModel(model.buffer, model.byteOffset, model.byteLength, opts);
    return new Session(
      s,
      s.inputMetadata.map((m) => m.name),
      s.outputMetadata.map((m) => m.name),
    );
  }

  /** Runs the model; feeds are keyed by input name. Returns every output (or those in `fetch`). */
  async run(feeds: Record<string, HostTensor>, fetch?: readonly string[]): Promise<Record<string, HostTensor>> {
    if (this.released) throw new Error('session run: the session was released');
    const ortFeeds: Record<string, NativeTensor> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`session run: missing input ${name}`);
      // What the native run reads of a tensor; an ort.Tensor's constructor would check it all twice.
      ortFeeds[name] = { type: ortTypeOf(t.data), dims: t.shape, data: t.data, location: 'cpu' };
    }
    const fetches: Record<string, null> = {};
    for (const name of fetch ?? this.outputNames) {
      if (!this.outputNames.includes(name)) throw new Error(`session run: no output ${name}; outputs: ${this.outputNames.join(', ')}`);
      fetches[name] = null;
    }
    await yieldNowAndThen();
    const results = this.session.run(ortFeeds, fetches, {});
    const out: Record<string, HostTensor> = {};
    for (const name in results) out[name] = { data: results[name].data as HostArray, shape: results[name].dims };
    return out;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.session.dispose();
  }
}
