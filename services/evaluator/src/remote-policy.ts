/**
 * Policies published on the bus, as PolicySources: a run's latest or promoted version (the
 * PolicyPointer under KV policy.<run> or promoted.<run>) or a specific version (its parameter object
 * under the run's program). They run in this process with mesh's ActProgram, as local-inference
 * actors do, so greedy and seeded actions equal the policy service's. A causal LM (a pointer with a
 * model_config and a tokenizer) becomes a TextPolicySource decoded here with Gpt2Generator, the
 * code the policy service's Generate runs, rather than through Generate itself.
 */
import type { PolicyRef, Space } from '@rlmesh/core';
import { causalLmFromModelConfig, loadPointerTokenizer } from '@rlmesh/learner';
import {
  ActProgram,
  type Bus,
  failedPrecondition,
  invalidArgument,
  keys,
  notFound,
  objects,
  type PolicyPointer,
  paramsFromBytes,
  parsePolicyPointer,
  pointerShape,
  RUN_ID_PATTERN,
  spaceFromProto,
} from '@rlmesh/mesh';
import { GeneratorTextPolicy, ProgramPolicy, type TextPolicySource } from './policy-source';

export type Channel = 'latest' | 'promoted';

export interface RunPolicySelector {
  run_id: string;
  /** >= 1: this version; omitted or 0: the channel's version. */
  version?: number;
  channel?: Channel;
  label?: string;
}

/** A bus policy with the spaces its pointer declares (so a suite can be checked against them). */
export class BusPolicy extends ProgramPolicy {
  readonly observationSpace: Space;
  readonly actionSpace: Space;
  constructor(
    ref: PolicyRef,
    program: ActProgram,
    params: Float32Array,
    readonly pointer: PolicyPointer,
  ) {
    super(ref, program, params);
    this.observationSpace = spaceFromProto(pointer.spec?.observationSpace);
    this.actionSpace = spaceFromProto(pointer.spec?.actionSpace);
  }
}

async function readPointer(bus: Bus, key: string, what: string, field: string): Promise<PolicyPointer | null> {
  const bytes = await bus.kv.get(key);
  if (!bytes) return null;
  try {
    return parsePolicyPointer(bytes);
  } catch (e) {
    throw failedPrecondition(field, `${what} is malformed: ${(e as Error).message}`);
  }
}

/**
 * The pointer a selector names. A specific version shares the run's program and spec (a run has one
 * program) and names its own parameter object, which must still be stored: the learner keeps its
 * last few versions, and promoted versions are kept apart.
 */
export async function resolvePointer(bus: Bus, sel: RunPolicySelector): Promise<PolicyPointer> {
  const run = sel.run_id;
  if (!RUN_ID_PATTERN.test(run)) throw invalidArgument('policy.run_id', `must match ${RUN_ID_PATTERN}, got ${JSON.stringify(run)}`);
  const latest = await readPointer(bus, keys.policy(run), `policy pointer of run "${run}"`, 'policy.run_id');
  if (!latest) throw notFound('policy.run_id', `no policy published for run "${run}"`);
  const version = sel.version ?? 0;
  if (version > 0) {
    if (version === latest.version) return latest;
    const promoted = await readPointer(bus, keys.promoted(run), `promoted pointer of run "${run}"`, 'policy.run_id');
    if (promoted?.version === version) return promoted;
    if (version > latest.version)
      throw notFound('policy.version', `run "${run}" has published versions up to ${latest.version}, got ${version}`);
    const params = objects.policyParams(run, version);
    if (!(await bus.objects.get(params)))
      throw notFound('policy.version', `version ${version} of run "${run}" is no longer stored (the learner keeps its last few)`);
    return { ...latest, version, params };
  }
  if (sel.channel === 'promoted') {
    const promoted = await readPointer(bus, keys.promoted(run), `promoted pointer of run "${run}"`, 'policy.run_id');
    if (!promoted) throw notFound('policy.channel', `run "${run}" has no promoted version yet`);
    return promoted;
  }
  return latest;
}

/**
 * Loads what a pointer names: a causal LM's (one with a model_config) GPT-2 and tokenizer as a text
 * policy, decoding in this process as `GeneratorTextPolicy` does for a directory; any other model's
 * act program and parameters.
 */
export async function busPolicy(bus: Bus, run: string, pointer: PolicyPointer, label?: string): Promise<BusPolicy | TextPolicySource> {
  const bytes = await bus.objects.get(pointer.params);
  if (!bytes) throw notFound('policy.version', `object "${pointer.params}" of run "${run}" is missing`);
  const params = paramsFromBytes(bytes);
  const want = pointer.spec?.numParameters || params.length;
  if (params.length !== want)
    throw failedPrecondition('policy.version', `object "${pointer.params}" holds ${params.length} parameters, the spec says ${want}`);
  const ref = { run_id: run, version: pointer.version, label: label || `${run} v${pointer.version}` };
  if (pointer.modelConfig) return busTextPolicy(bus, run, pointer, params, ref);
  const program = await bus.objects.get(pointer.program);
  if (!program) throw failedPrecondition('policy.run_id', `object "${pointer.program}" of run "${run}" is missing`);
  const { distribution } = pointerShape(pointer);
  let act: ActProgram;
  try {
    act = await ActProgram.create(program, distribution);
  } catch (e) {
    throw failedPrecondition('policy.run_id', `act program of run "${run}" cannot be loaded: ${(e as Error).message}`);
  }
  return new BusPolicy(ref, act, params, pointer);
}

async function busTextPolicy(bus: Bus, run: string, pointer: PolicyPointer, flat: Float32Array, ref: PolicyRef): Promise<TextPolicySource> {
  let built: ReturnType<typeof causalLmFromModelConfig>;
  try {
    built = causalLmFromModelConfig(pointer.modelConfig as string, flat);
  } catch (e) {
    throw failedPrecondition('policy.run_id', `policy of run "${run}" is no causal LM this evaluator can run: ${(e as Error).message}`);
  }
  if (!pointer.tokenizer)
    throw failedPrecondition('policy.run_id', `policy of run "${run}" publishes no tokenizer; text prompts cannot be encoded without one`);
  const tokenizer = await loadPointerTokenizer(bus, run, pointer.tokenizer, built.model.dims.vocabSize, 'policy.run_id');
  return GeneratorTextPolicy.open(ref, built.model, built.params, tokenizer);
}
