/**
 * A policy's forward program in a session of its own, fed from the learner's flat parameter vector:
 * `pick` takes out the parameters the program uses (ForwardProgram.pick), once per parameter vector,
 * so the act calls of a rollout (all under one policy version) share that work.
 */
import { type ForwardProgram, Session } from '@rlmesh/graph';

export class PolicyProgram {
  private pickedFrom?: Float32Array;
  private picked: Float32Array = new Float32Array(0);

  private constructor(
    private readonly session: Session,
    private readonly pick: ForwardProgram['pick'],
    private readonly obsDim: number,
  ) {}

  static async create(program: ForwardProgram, obsDim: number): Promise<PolicyProgram> {
    // One thread: a small batch gains nothing from a pool, and a second spinning pool starves the trainer's.
    return new PolicyProgram(await Session.create(program.onnx, { intraOpThreads: 1 }), program.pick, obsDim);
  }

  /** The program's outputs on `rows` observations under the model's flat parameters `params`. */
  async run(params: Float32Array, obs: Float32Array, rows: number): Promise<Record<string, Float32Array>> {
    if (this.pickedFrom !== params) {
      this.pickedFrom = params;
      this.picked = this.pick(params);
    }
    const out = await this.session.run({
      params: { data: this.picked, shape: [this.picked.length] },
      obs: { data: obs, shape: [rows, this.obsDim] },
    });
    // Called once per env step: a plain loop, not entries/map/fromEntries.
    const heads: Record<string, Float32Array> = {};
    for (const k in out) heads[k] = out[k].data as Float32Array;
    return heads;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
