/**
 * N environments stepped together into preallocated arrays (no per-step allocation).
 *
 * Autoreset mode: same-step (as Stable-Baselines3's VecEnv). When environment i ends on a step, its
 * last observation is written to `finalObs` (row i), and `obs` row i already holds the first
 * observation of its next episode, reset without a seed (its generator continues) at the difficulty
 * of the last reset. Rows of `finalObs` for environments that did not end are left as they were.
 * The arrays returned are reused by the next call: copy what must outlive it.
 */
import type { ArrayEnv, ResetOptions } from './env';

export interface VectorStep {
  obs: Float32Array;
  rewards: Record<string, Float32Array>;
  terminated: Uint8Array;
  truncated: Uint8Array;
  success: Uint8Array;
  finalObs: Float32Array;
}

export class VectorEnv {
  readonly size: number;
  readonly obsDim: number;
  readonly numActions: number;
  readonly numLevels: number;
  readonly rewardComponents: readonly string[];
  private readonly out: VectorStep;
  private started = false;
  private difficulty: number | undefined;

  constructor(readonly envs: readonly ArrayEnv[]) {
    if (envs.length === 0) throw new Error('VectorEnv: needs at least one environment');
    const e0 = envs[0];
    for (const [i, e] of envs.entries()) {
      if (e.obsDim !== e0.obsDim || e.actionSpace.n !== e0.actionSpace.n)
        throw new Error(`VectorEnv: env ${i} has different spaces from env 0`);
    }
    this.size = envs.length;
    this.obsDim = e0.obsDim;
    this.numActions = e0.actionSpace.n;
    this.numLevels = e0.numLevels;
    this.rewardComponents = e0.rewardComponents;
    const n = this.size;
    this.out = {
      obs: new Float32Array(n * this.obsDim),
      rewards: Object.fromEntries(this.rewardComponents.map((c) => [c, new Float32Array(n)])),
      terminated: new Uint8Array(n),
      truncated: new Uint8Array(n),
      success: new Uint8Array(n),
      finalObs: new Float32Array(n * this.obsDim),
    };
  }

  /** Resets every environment; environment i gets seed + i when a seed is given. */
  reset(seed?: number, options: ResetOptions = {}): Float32Array {
    this.difficulty = options.difficulty;
    for (let i = 0; i < this.size; i++)
      this.envs[i].resetInto(this.out.obs, i * this.obsDim, seed === undefined ? undefined : seed + i, options);
    this.started = true;
    return this.out.obs;
  }

  step(actions: Int32Array): VectorStep {
    if (!this.started) throw new Error('VectorEnv.step: call reset first');
    if (actions.length !== this.size) throw new Error(`VectorEnv.step: expected ${this.size} actions, got ${actions.length}`);
    const { obs, rewards, terminated, truncated, success, finalObs } = this.out;
    const d = this.obsDim;
    for (let i = 0; i < this.size; i++) {
      const a = actions[i];
      if (!(a >= 0 && a < this.numActions)) throw new Error(`VectorEnv.step: env ${i}: action ${a} is outside 0..${this.numActions - 1}`);
      const s = this.envs[i].stepInto(a, obs, i * d, rewards, i);
      terminated[i] = s.terminated ? 1 : 0;
      truncated[i] = s.truncated ? 1 : 0;
      success[i] = s.success ? 1 : 0;
      if (s.terminated || s.truncated) {
        finalObs.set(obs.subarray(i * d, (i + 1) * d), i * d);
        this.envs[i].resetInto(obs, i * d, undefined, this.difficulty === undefined ? {} : { difficulty: this.difficulty });
      }
    }
    return this.out;
  }
}
