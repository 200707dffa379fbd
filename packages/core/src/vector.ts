/**
 * N environments stepped together into preallocated arrays (no per-step allocation).
 *
 * Autoreset mode: same-step (as Stable-Baselines3's VecEnv). When environment i ends on a step, its
 * last observation is written to `finalObs` (row i), and `obs` row i already holds the first
 * observation of its next episode, reset without a seed (its generator continues) at the current
 * difficulty. Rows of `finalObs` for environments that did not end are left as they were. The
 * arrays returned are reused by the next call: copy what must outlive it.
 */
import type { ActionBuffer, Env, ResetOptions } from './env';
import type { Box, Space } from './spaces';

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
  readonly observationSpace: Box;
  readonly actionSpace: Space;
  readonly numLevels: number;
  readonly rewardComponents: readonly string[];
  private readonly out: VectorStep;
  private started = false;
  /** Difficulty of the next autoreset; setDifficulty changes it without resetting anyone. */
  difficulty = 0;

  constructor(readonly envs: readonly Env[]) {
    if (envs.length === 0) throw new Error('VectorEnv: needs at least one environment');
    const e0 = envs[0];
    const spaces = (e: Env) => JSON.stringify([e.observationSpace, e.actionSpace, e.rewardComponents]);
    for (const [i, e] of envs.entries()) {
      if (spaces(e) !== spaces(e0)) throw new Error(`VectorEnv: env ${i} has different spaces from env 0`);
    }
    this.size = envs.length;
    this.obsDim = e0.obsDim;
    this.observationSpace = e0.observationSpace;
    this.actionSpace = e0.actionSpace;
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
    this.difficulty = options.difficulty ?? 0;
    for (let i = 0; i < this.size; i++)
      this.envs[i].resetInto(this.out.obs, i * this.obsDim, seed === undefined ? undefined : seed + i, { difficulty: this.difficulty });
    this.started = true;
    return this.out.obs;
  }

  /** Continues from restored environments: `obs` are their current observations. */
  resume(obs: Float32Array, difficulty: number): void {
    if (obs.length !== this.size * this.obsDim)
      throw new Error(`VectorEnv.resume: expected ${this.size * this.obsDim} observation values, got ${obs.length}`);
    this.out.obs.set(obs);
    this.difficulty = difficulty;
    this.started = true;
  }

  /** The observations the next step acts on (valid after reset). */
  get observations(): Float32Array {
    return this.out.obs;
  }

  /** `actions` holds N rows of actionSpace.flatSize values. */
  step(actions: ActionBuffer): VectorStep {
    if (!this.started) throw new Error('VectorEnv.step: call reset first');
    const k = this.actionSpace.flatSize;
    if (actions.length !== this.size * k) throw new Error(`VectorEnv.step: expected ${this.size * k} action values, got ${actions.length}`);
    const { obs, rewards, terminated, truncated, success, finalObs } = this.out;
    const d = this.obsDim;
    for (let i = 0; i < this.size; i++) {
      let s: ReturnType<Env['stepInto']>;
      try {
        s = this.envs[i].stepInto(actions, i * k, obs, i * d, rewards, i);
      } catch (e) {
        throw new Error(`VectorEnv.step: env ${i}: ${(e as Error).message}`);
      }
      terminated[i] = s.terminated ? 1 : 0;
      truncated[i] = s.truncated ? 1 : 0;
      success[i] = s.success ? 1 : 0;
      if (s.terminated || s.truncated) {
        finalObs.set(obs.subarray(i * d, (i + 1) * d), i * d);
        this.envs[i].resetInto(obs, i * d, undefined, { difficulty: this.difficulty });
      }
    }
    return this.out;
  }
}
