/**
 * Where the policy under evaluation comes from. A PolicySource turns observations into actions and
 * says which policy it is; the evaluator needs nothing else. checkpointPolicy loads one from disk;
 * the mesh's published versions are loaded by remote-policy.ts. Both run mesh's ActProgram, the
 * runner local-inference actors use, so a policy acts the same here as in training.
 */
import type { PolicyRef } from '@rlmesh/core';
import { buildActProgram, loadPolicyFile } from '@rlmesh/learner';
import { ActProgram } from '@rlmesh/mesh';

export interface PolicySource {
  readonly ref: PolicyRef;
  /** Actions for `rows` observations; greedy = argmax / Gaussian mean; seed makes sampling reproducible. */
  act(obs: Float32Array, rows: number, greedy: boolean, seed: number): Promise<Int32Array | Float32Array>;
  close(): Promise<void>;
}

/** A policy run in this process: an act program and one parameter vector. */
export class ProgramPolicy implements PolicySource {
  constructor(
    readonly ref: PolicyRef,
    private readonly program: ActProgram,
    private readonly params: Float32Array,
  ) {}

  async act(obs: Float32Array, rows: number, greedy: boolean, seed: number): Promise<Int32Array | Float32Array> {
    return (await this.program.act(this.params, obs, rows, { greedy, seed })).actions;
  }

  close(): Promise<void> {
    return this.program.release();
  }
}

/**
 * A training checkpoint (checkpoints/update-N.safetensors, written by any mode) or a run's
 * model.safetensors. Both carry the run config in their metadata and the parameters under the
 * model's own names, so the model is rebuilt from the config (as `rlmesh policy act` and a resumed
 * run do) and the parameters are read by name; optimiser state in a training checkpoint is ignored.
 */
export async function checkpointPolicy(path: string, label?: string): Promise<PolicySource> {
  const { cfg, shape, model, params, metadata } = await loadPolicyFile(path);
  const act = buildActProgram(model);
  const flat = act.layout.pack(params);
  const program = await ActProgram.create(act.onnx, shape.distribution);
  const ref: PolicyRef = { checkpoint: path };
  const updates = metadata.counters ? (JSON.parse(metadata.counters) as { updates?: number }).updates : undefined;
  // Versions count from 1 (the initial parameters), one more per update, as the learner numbers them.
  if (typeof updates === 'number') ref.version = updates + 1;
  ref.label = label ?? (typeof updates === 'number' ? `${cfg.run.name} update ${updates}` : `${cfg.run.name} final`);
  return new ProgramPolicy(ref, program, flat);
}
