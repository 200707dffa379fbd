/**
 * The contract between the learner and whoever acts (the policy service, local-inference actors).
 * For run R the learner stores
 *   - object `R/policy.onnx`: the act program (inputs params [P], obs [batch, obs_dim]; outputs value
 *     [batch] and the distribution's heads, see @rlmesh/core's distributions.ts), once per run;
 *   - object `R/policy-sample.onnx` (optional): the same without the value output, once per run;
 *   - object `R/params/<version>`: the flat float32 parameters, little-endian, P * 4 bytes;
 * and then points KV key `policy.R` at them with a PolicyPointer message. Writing the objects
 * before the pointer means a reader that sees a pointer can always fetch what it names.
 */
import { type ActionDistribution, distributionFor } from '@rlmesh/core';
import { PolicyPointer, type PolicySpec } from '@rlmesh/proto';
import { type Bus, keys, objects } from './bus';
import { spaceFromProto } from './codec';

export type { PolicyPointer } from '@rlmesh/proto';

const DISTRIBUTIONS = ['categorical', 'multi_categorical', 'gaussian'];

/** Decodes and checks a pointer; throws an Error naming the first bad field. */
export function parsePolicyPointer(bytes: Uint8Array): PolicyPointer {
  let p: PolicyPointer;
  try {
    p = PolicyPointer.decode(bytes);
  } catch (e) {
    throw new Error(`not a PolicyPointer message (${(e as Error).message})`);
  }
  if (!(p.version >= 1)) throw new Error(`version must be an integer >= 1, got ${p.version}`);
  for (const k of ['program', 'params'] as const) if (p[k] === '') throw new Error(`${k} must be an object name, got ""`);
  if (!p.spec?.observationSpace || !p.spec.actionSpace) throw new Error('spec must name the observation and action spaces');
  if (!DISTRIBUTIONS.includes(p.distribution))
    throw new Error(`distribution must be one of ${DISTRIBUTIONS.join(', ')}, got ${JSON.stringify(p.distribution)}`);
  pointerShape(p);
  return p;
}

/** What a pointer's spec says a request and an answer look like: obs width and the action distribution. */
export function pointerShape(p: PolicyPointer): { obsDim: number; distribution: ActionDistribution } {
  const distribution = distributionFor(spaceFromProto(p.spec?.actionSpace));
  if (distribution.kind !== p.distribution)
    throw new Error(`distribution is ${JSON.stringify(p.distribution)}, but the action space calls for ${distribution.kind}`);
  return { obsDim: spaceFromProto(p.spec?.observationSpace).flatSize, distribution };
}

export function encodePolicyPointer(p: PolicyPointer): Uint8Array {
  return PolicyPointer.encode(p).finish();
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
  /**
   * The sampling program (PolicyPointer.sample_program), stored as `<run>/policy-sample.onnx`;
   * 'stored' names the one an earlier version stored. Omitted: the run has none.
   */
  sampleProgram?: Uint8Array | 'stored';
  spec: PolicySpec;
  distribution: string;
  /** JSON of the model's options for a model that generates token sequences (see PolicyPointer.model_config). */
  modelConfig?: string;
  /**
   * The run's tokenizer.json, stored as object `<run>/tokenizer.json` and named by the pointer
   * (PolicyPointer.tokenizer); 'stored' names the one an earlier version stored. Omitted: none.
   */
  tokenizer?: Uint8Array | 'stored';
}

const tokenizerObject = (run: string) => `${run}/tokenizer.json`;

/** Stores a policy version under the standard names and then moves the run's pointer to it. */
export async function publishPolicy(bus: Bus, run: string, v: PublishPolicy): Promise<PolicyPointer> {
  const pointer: PolicyPointer = {
    version: v.version,
    program: objects.policyProgram(run),
    params: objects.policyParams(run, v.version),
    spec: v.spec,
    distribution: v.distribution,
    modelConfig: v.modelConfig,
    tokenizer: v.tokenizer ? tokenizerObject(run) : undefined,
    sampleProgram: v.sampleProgram ? objects.policySampleProgram(run) : undefined,
  };
  if (v.tokenizer instanceof Uint8Array) await bus.objects.put(tokenizerObject(run), v.tokenizer);
  if (v.program) await bus.objects.put(pointer.program, v.program);
  if (v.sampleProgram instanceof Uint8Array) await bus.objects.put(objects.policySampleProgram(run), v.sampleProgram);
  await bus.objects.put(pointer.params, paramsToBytes(v.params));
  await bus.kv.put(keys.policy(run), encodePolicyPointer(pointer));
  return pointer;
}
