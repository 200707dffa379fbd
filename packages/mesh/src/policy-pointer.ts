/**
 * The contract between the learner and the policy service. For run R the learner stores
 *   - object `R/policy.onnx`: the forward program (inputs params [P], obs [batch, obs_dim]; outputs
 *     log_probs [batch, num_actions], value [batch]), written once per run;
 *   - object `R/params/<version>`: the flat float32 parameters, little-endian, P * 4 bytes;
 * and then points KV key `policy.R` at them with a JSON value (the pointer). Writing the objects
 * before the pointer means a reader that sees a pointer can always fetch what it names.
 */
import { type Bus, keys, objects } from './bus';

export interface PolicySpecJson {
  obs_dim: number;
  num_actions: number;
  model?: string;
  num_parameters?: number;
}

export interface PolicyPointer {
  version: number;
  program: string;
  params: string;
  spec: PolicySpecJson;
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 1;

/** Parses and checks a pointer; throws an Error naming the first bad field. */
export function parsePolicyPointer(bytes: Uint8Array): PolicyPointer {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message})`);
  }
  const p = raw as Partial<PolicyPointer> | null;
  if (typeof p !== 'object' || p === null) throw new Error('must be a JSON object');
  if (!isCount(p.version)) throw new Error(`version must be an integer >= 1, got ${JSON.stringify(p.version)}`);
  for (const k of ['program', 'params'] as const) {
    if (typeof p[k] !== 'string' || p[k] === '') throw new Error(`${k} must be an object name, got ${JSON.stringify(p[k])}`);
  }
  const s = p.spec as Partial<PolicySpecJson> | undefined;
  if (typeof s !== 'object' || s === null) throw new Error('spec must be an object');
  for (const k of ['obs_dim', 'num_actions'] as const) {
    if (!isCount(s[k])) throw new Error(`spec.${k} must be an integer >= 1, got ${JSON.stringify(s[k])}`);
  }
  if (s.num_parameters !== undefined && !isCount(s.num_parameters))
    throw new Error(`spec.num_parameters must be an integer >= 1, got ${JSON.stringify(s.num_parameters)}`);
  if (s.model !== undefined && typeof s.model !== 'string') throw new Error(`spec.model must be a string, got ${JSON.stringify(s.model)}`);
  return p as PolicyPointer;
}

export function encodePolicyPointer(p: PolicyPointer): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(p));
}

/** The little-endian bytes of a flat float32 parameter vector (every Node.js platform is little-endian). */
export function paramsToBytes(params: Float32Array): Uint8Array {
  return new Uint8Array(params.buffer, params.byteOffset, params.byteLength);
}

/** Copies stored parameter bytes into an aligned Float32Array that owns its buffer (so it can be transferred). */
export function paramsFromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`parameter object has ${bytes.byteLength} bytes, not a multiple of 4`);
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export interface PublishPolicy {
  version: number;
  params: Float32Array;
  /** The forward program; omit it when this run's program is already stored. */
  program?: Uint8Array;
  spec: PolicySpecJson;
}

/** Stores a policy version under the standard names and then moves the run's pointer to it. */
export async function publishPolicy(bus: Bus, run: string, v: PublishPolicy): Promise<PolicyPointer> {
  const pointer: PolicyPointer = {
    version: v.version,
    program: objects.policyProgram(run),
    params: objects.policyParams(run, v.version),
    spec: v.spec,
  };
  if (v.program) await bus.objects.put(pointer.program, v.program);
  await bus.objects.put(pointer.params, paramsToBytes(v.params));
  await bus.kv.put(keys.policy(run), encodePolicyPointer(pointer));
  return pointer;
}
