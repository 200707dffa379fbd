/**
 * The rollout: T steps of N vectorised environments under one policy, and the one actor loop that
 * plays it. Every mode runs this loop: the embedded trainer with an in-process policy, env replicas
 * with the policy service (central inference) or with each published version run locally. The mesh
 * only encodes a Rollout as a TrajectoryChunk and back.
 *
 * Environments persist across rollouts (episodes continue where the last rollout stopped, as in
 * CleanRL's PPO), with same-step autoreset: `nextObs` row (t, i) is the observation after step t,
 * and where the episode ended on that step it is the final observation, so learners can bootstrap
 * truncated episodes from it.
 */
import { type ActionDistribution, actionWidth, distributionFor } from './distributions';
import { Rng, type RngState } from './rng';
import type { VectorEnv } from './vector';

export interface EpisodeSummary {
  length: number;
  /** Undiscounted sum of each reward component. */
  returns: Record<string, number>;
  success: boolean;
}

export interface Rollout {
  actorId: string;
  /** Per-actor counter: (actorId, sequence) identifies a rollout. */
  sequence: number;
  /** The oldest policy version that acted in it: its lag is never understated. */
  policyVersion: number;
  /** Curriculum level the environments were playing at. */
  level: number;
  numSteps: number;
  numEnvs: number;
  obsDim: number;
  /** Values per action row (1 for Discrete). */
  actionWidth: number;
  obs: Float32Array; // [T, N, S]
  actions: Int32Array | Float32Array; // [T, N, actionWidth]
  logProbs: Float32Array; // [T, N] under the behaviour policy
  rewards: Record<string, Float32Array>; // component -> [T, N]
  terminated: Uint8Array; // [T, N]
  truncated: Uint8Array; // [T, N]
  success: Uint8Array; // [T, N]
  nextObs: Float32Array; // [T, N, S]
  /** Episodes that ended inside this rollout. */
  episodes: EpisodeSummary[];
}

export interface ActOutput {
  actions: Int32Array | Float32Array;
  logProbs: Float32Array;
  /**
   * V(s) per row, where the policy computed it (the policy service does; an actor's sampling program
   * need not: a rollout carries no values, the learner evaluates them with its current parameters).
   */
  values?: Float32Array;
  /** The policy version that answered. */
  version: number;
}

/**
 * What an actor calls to choose actions for `rows` observations: an in-process policy, the policy
 * service, or a locally run copy of a published version. `seed` seeds the sampling of this call's
 * rows alone; `minVersion` asks for at least that policy version.
 */
export type ActFn = (obs: Float32Array, rows: number, seed: number, minVersion: number) => Promise<ActOutput>;

export interface CollectorState {
  vec: unknown[] | null;
  obs: number[];
  running: { length: number[]; returns: Record<string, number[]> };
  rng: RngState;
  sequence: number;
  level: number;
  started: boolean;
}

/** FNV-1a: a stable 31-bit number for an actor id, to derive distinct seeds per actor. */
export function hash31(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) % 2 ** 31;
}

/** The seed of actor `actorId` of a run seeded `runSeed`: the same actor id plays the same episodes in every mode. */
export function actorSeed(runSeed: number, actorId: string): number {
  return (runSeed * 1_000_003 + hash31(actorId) * 7919) % 2 ** 31;
}

export class RolloutCollector {
  readonly distribution: ActionDistribution;
  sequence = 0;
  level: number;
  private rng: Rng;
  private started = false;
  private readonly runningLength: number[];
  private readonly runningReturns: Record<string, number[]>;

  constructor(
    readonly vec: VectorEnv,
    readonly actorId: string,
    readonly numSteps: number,
    private readonly seed: number,
    level = 0,
  ) {
    if (!Number.isInteger(numSteps) || numSteps < 1)
      throw new Error(`RolloutCollector: numSteps must be a positive integer, got ${numSteps}`);
    this.distribution = distributionFor(vec.actionSpace);
    this.level = level;
    this.rng = new Rng(seed ^ 0x5bd1e995);
    this.runningLength = new Array(vec.size).fill(0);
    this.runningReturns = Object.fromEntries(vec.rewardComponents.map((c) => [c, new Array(vec.size).fill(0)]));
  }

  /** Later autoresets start episodes at this level (episodes under way finish at theirs). */
  setLevel(level: number): void {
    this.level = level;
    this.vec.difficulty = level;
  }

  /** Plays numSteps steps with `act`; `minVersion` is passed to every act call. */
  async collect(act: ActFn, minVersion = 0): Promise<Rollout> {
    const vec = this.vec;
    const N = vec.size;
    const T = this.numSteps;
    const S = vec.obsDim;
    const W = actionWidth(this.distribution);
    if (!this.started) {
      vec.reset(this.seed, { difficulty: this.level });
      this.started = true;
    }
    const B = T * N;
    const obs = new Float32Array(B * S);
    const nextObs = new Float32Array(B * S);
    const actions = vec.actionSpace.dtype === 'float32' ? new Float32Array(B * W) : new Int32Array(B * W);
    const logProbs = new Float32Array(B);
    const terminated = new Uint8Array(B);
    const truncated = new Uint8Array(B);
    const success = new Uint8Array(B);
    const rewards = Object.fromEntries(vec.rewardComponents.map((c) => [c, new Float32Array(B)]));
    const episodes: EpisodeSummary[] = [];
    let version = Number.POSITIVE_INFINITY;
    const level = this.level;
    for (let t = 0; t < T; t++) {
      const row = t * N;
      const current = vec.observations;
      obs.set(current, row * S);
      const out = await act(current, N, this.rng.nextU32(), minVersion);
      version = Math.min(version, out.version);
      actions.set(out.actions, row * W);
      logProbs.set(out.logProbs, row);
      const step = vec.step(out.actions);
      nextObs.set(step.obs, row * S);
      for (const c of vec.rewardComponents) rewards[c].set(step.rewards[c], row);
      terminated.set(step.terminated, row);
      truncated.set(step.truncated, row);
      success.set(step.success, row);
      for (let i = 0; i < N; i++) {
        this.runningLength[i]++;
        for (const c of vec.rewardComponents) this.runningReturns[c][i] += step.rewards[c][i];
        if (step.terminated[i] || step.truncated[i]) {
          nextObs.set(step.finalObs.subarray(i * S, (i + 1) * S), (row + i) * S);
          const returns: Record<string, number> = {};
          for (const c of vec.rewardComponents) {
            returns[c] = this.runningReturns[c][i];
            this.runningReturns[c][i] = 0;
          }
          episodes.push({ length: this.runningLength[i], returns, success: step.success[i] === 1 });
          this.runningLength[i] = 0;
        }
      }
    }
    return {
      actorId: this.actorId,
      sequence: this.sequence++,
      policyVersion: version,
      level,
      numSteps: T,
      numEnvs: N,
      obsDim: S,
      actionWidth: W,
      obs,
      actions,
      logProbs,
      rewards,
      terminated,
      truncated,
      success,
      nextObs,
      episodes,
    };
  }

  /** Everything needed to continue exactly here, or null when an environment cannot snapshot itself. */
  snapshot(): CollectorState | null {
    const envStates = this.vec.envs.map((e) => (e.snapshot ? e.snapshot() : undefined));
    if (this.started && envStates.some((s) => s === undefined)) return null;
    return {
      vec: this.started ? envStates : null,
      obs: Array.from(this.vec.observations),
      running: { length: [...this.runningLength], returns: structuredClone(this.runningReturns) },
      rng: this.rng.state(),
      sequence: this.sequence,
      level: this.level,
      started: this.started,
    };
  }

  restore(s: CollectorState): void {
    if (s.started) {
      if (!s.vec || s.vec.length !== this.vec.size) throw new Error('restore: the snapshot holds a different number of environments');
      for (const [i, e] of this.vec.envs.entries()) e.restore?.(s.vec?.[i]);
      this.vec.resume(Float32Array.from(s.obs), s.level);
    }
    this.runningLength.splice(0, this.runningLength.length, ...s.running.length);
    for (const c of Object.keys(this.runningReturns)) this.runningReturns[c] = [...(s.running.returns[c] ?? [])];
    this.rng = Rng.fromState(s.rng);
    this.sequence = s.sequence;
    this.level = s.level;
    this.vec.difficulty = s.level;
    this.started = s.started;
  }
}
