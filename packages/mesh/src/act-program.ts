/**
 * One runner for a policy's act program (inputs `params` [P] and `obs` [rows, obs_dim]; outputs
 * `value`, which a sampling program lacks, and the distribution's heads, see @rlmesh/core's
 * distributions.ts), shared by actors
 * running their policy locally, the evaluator and anything else that acts outside the policy
 * service. Sampling happens in JS with core's seeded generator, so a seed gives the same actions
 * here as in the policy service.
 */
import { type ActionDistribution, actRng, distributionOutputs, sampleActions } from '@rlmesh/core';
import { Session } from '@rlmesh/graph';

export interface ActProgramOutput {
  /** [rows, width]: int32 for categorical kinds, float32 for gaussian. */
  actions: Int32Array | Float32Array;
  logProbs: Float32Array;
  /** V(s), when the program has a value output (a sampling program has none). */
  values?: Float32Array;
}

export class ActProgram {
  private constructor(
    private readonly session: Session,
    readonly distribution: ActionDistribution,
  ) {}

  /**
   * Loads the program; throws when it lacks an input or output the distribution needs, or the value
   * output unless `value` is false (a sampling program).
   */
  static async create(
    onnx: Uint8Array,
    distribution: ActionDistribution,
    opts: { threads?: number; value?: boolean } = {},
  ): Promise<ActProgram> {
    const session = await Session.create(onnx, { intraOpThreads: opts.threads ?? 1 });
    const outputs = [...(opts.value === false ? [] : ['value']), ...distributionOutputs(distribution)];
    const missing = [
      ...['params', 'obs'].filter((n) => !session.inputNames.includes(n)).map((n) => `input ${n}`),
      ...outputs.filter((n) => !session.outputNames.includes(n)).map((n) => `output ${n}`),
    ];
    if (missing.length > 0) {
      await session.release();
      throw new Error(`act program for a ${distribution.kind} policy lacks ${missing.join(', ')}`);
    }
    return new ActProgram(session, distribution);
  }

  /** The program's raw outputs (value, if it has one, and distribution heads) for `rows` observations under `params`. */
  async outputs(params: Float32Array, obs: Float32Array, rows: number): Promise<Record<string, Float32Array>> {
    if (rows < 1 || obs.length % rows !== 0) throw new Error(`obs has ${obs.length} values, not a multiple of ${rows} rows`);
    const out = await this.session.run({
      params: { data: params, shape: [params.length] },
      obs: { data: obs, shape: [rows, obs.length / rows] },
    });
    // Called once per env step by local-inference actors: a plain loop, not entries/map/fromEntries.
    const heads: Record<string, Float32Array> = {};
    for (const k in out) heads[k] = out[k].data as Float32Array;
    return heads;
  }

  /** Sampled (seeded with core's actRng(seed)) or greedy actions with their log-probs and values. */
  async act(params: Float32Array, obs: Float32Array, rows: number, opts: { greedy: boolean; seed: number }): Promise<ActProgramOutput> {
    const outputs = await this.outputs(params, obs, rows);
    const { actions, logProbs } = sampleActions(this.distribution, outputs, 0, rows, opts.greedy, actRng(opts.seed));
    return { actions, logProbs, values: outputs.value };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
