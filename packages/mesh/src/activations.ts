/**
 * Activation batches on the bus: rows of one hook point's activations, sampled by a learner from a
 * run's rollouts with the weights of one policy version, for SAEs to train on while the run goes on.
 * Subject rlmesh.activations.<run>.<hook> (bus.ts); one batch per message:
 *   data     float32 little-endian, [rows, d] row-major
 *   headers  rlmesh-run, rlmesh-hook, rlmesh-version (the policy version whose weights computed the
 *            rows), rlmesh-shape ("rows,d"), rlmesh-level (the curriculum level the rollout played)
 * Raw bytes and plain headers, so any NATS client in any language reads a batch without our schema.
 */
import type { Headers } from './bus';

export interface ActivationBatch {
  run: string;
  hook: string;
  version: number;
  level: number;
  rows: number;
  d: number;
  data: Float32Array;
}

/** Hook names become subject tokens: letters, digits, `_`, `-`, and dots between non-empty parts. */
export const HOOK_SUBJECT_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
/** NATS' default max_payload is 1 MiB; a batch stays well under it. */
export const MAX_BATCH_BYTES = 512 * 1024;

const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

export function encodeActivationBatch(b: ActivationBatch): { data: Uint8Array; headers: Headers } {
  if (!HOOK_SUBJECT_PATTERN.test(b.hook)) throw new Error(`activation batch: hook ${JSON.stringify(b.hook)} cannot be a subject token`);
  if (b.data.length !== b.rows * b.d) throw new Error(`activation batch: ${b.data.length} values is not ${b.rows} rows of ${b.d}`);
  if (b.data.length * 4 > MAX_BATCH_BYTES)
    throw new Error(`activation batch: ${b.data.length * 4} bytes exceed ${MAX_BATCH_BYTES}; split it`);
  if (!littleEndian) throw new Error('activation batch: this host is big-endian');
  const data = new Uint8Array(b.data.buffer.slice(b.data.byteOffset, b.data.byteOffset + b.data.byteLength));
  return {
    data,
    headers: {
      'rlmesh-run': b.run,
      'rlmesh-hook': b.hook,
      'rlmesh-version': String(b.version),
      'rlmesh-level': String(b.level),
      'rlmesh-shape': `${b.rows},${b.d}`,
    },
  };
}

/** Decodes and checks a batch; throws naming the header or the value that is wrong. */
export function decodeActivationBatch(data: Uint8Array, headers: Headers): ActivationBatch {
  const int = (key: string, min: number) => {
    const v = Number(headers[key]);
    if (headers[key] === undefined || !Number.isInteger(v) || v < min)
      throw new Error(`activation batch: header ${key} must be an integer >= ${min}, got ${JSON.stringify(headers[key])}`);
    return v;
  };
  const shape = (headers['rlmesh-shape'] ?? '').split(',').map(Number);
  if (shape.length !== 2 || !shape.every((n) => Number.isInteger(n) && n >= 1))
    throw new Error(`activation batch: header rlmesh-shape must be "rows,d", got ${JSON.stringify(headers['rlmesh-shape'])}`);
  const [rows, d] = shape;
  if (data.byteLength !== rows * d * 4) throw new Error(`activation batch: ${data.byteLength} bytes is not [${rows}, ${d}] float32`);
  const values = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  for (let i = 0; i < values.length; i++)
    if (!Number.isFinite(values[i])) throw new Error(`activation batch: row ${Math.floor(i / d)} holds ${values[i]} at column ${i % d}`);
  return {
    run: headers['rlmesh-run'] ?? '',
    hook: headers['rlmesh-hook'] ?? '',
    version: int('rlmesh-version', 0),
    level: int('rlmesh-level', 0),
    rows,
    d,
    data: values,
  };
}

/** Splits [rows, d] into batches of at most MAX_BATCH_BYTES each. */
export function activationBatches(base: Omit<ActivationBatch, 'rows' | 'data'>, data: Float32Array, rows: number): ActivationBatch[] {
  const per = Math.max(1, Math.floor(MAX_BATCH_BYTES / (4 * base.d)));
  const out: ActivationBatch[] = [];
  for (let at = 0; at < rows; at += per) {
    const n = Math.min(per, rows - at);
    out.push({ ...base, rows: n, data: data.slice(at * base.d, (at + n) * base.d) });
  }
  return out;
}
