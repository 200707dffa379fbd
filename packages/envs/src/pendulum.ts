/**
 * Pendulum-v1, as Gymnasium's `PendulumEnv` wrapped in `TimeLimit(max_episode_steps=200)`: swing an
 * inverted pendulum up with a torque clipped to [-2, 2]. The reward is minus the cost of the state
 * before the step and the clipped torque; the speed is clipped to [-8, 8] before it moves the angle.
 * The task never terminates, only the time limit ends an episode, and there is no success flag.
 */
import {
  type ActionBuffer,
  Box,
  clipBoxAction,
  type Env,
  type EnvSpec,
  type ResetOptions,
  Rng,
  type RngState,
  type Schema,
  type StepFlags,
} from '@rlmesh/core';

const MAX_SPEED = 8;
const MAX_TORQUE = 2.0;
const DT = 0.05;
const MASS = 1.0;
const LENGTH = 1.0;
/** Gymnasium's default reset bounds: theta uniform in [-pi, pi), theta_dot in [-1, 1). */
const INIT_THETA = Math.PI;
const INIT_THETA_DOT = 1.0;
const f32 = Math.fround;

export const PENDULUM_OPTIONS = {
  max_episode_steps: {
    kind: 'int',
    default: 200,
    min: 1,
    max: 100000,
    doc: 'time limit: the episode is truncated after this many steps (Gymnasium registers Pendulum-v1 with 200)',
  },
  g: { kind: 'number', default: 10.0, doc: "gravity's acceleration (Gymnasium's `g`)" },
} as const satisfies Schema;

/** Gymnasium's angle_normalize: into [-pi, pi), with Python's floored modulo (JS's % keeps the sign). */
export function angleNormalize(x: number): number {
  const period = 2 * Math.PI;
  const r = (x + Math.PI) % period;
  return (r < 0 ? r + period : r) - Math.PI;
}

export class PendulumEnv implements Env {
  readonly observationSpace = new Box([-1, -1, -MAX_SPEED], [1, 1, MAX_SPEED], [3]);
  readonly actionSpace = new Box(-MAX_TORQUE, MAX_TORQUE, [1]);
  readonly rewardComponents = ['goal'] as const;
  readonly numLevels = 1;
  readonly obsDim = 3;
  // Unseeded environments start from the same generator so a run is reproducible without a seed.
  private rng = new Rng(0);
  private theta = 0;
  private thetaDot = 0;
  private steps = 0;
  private running = false;
  private readonly u = new Float64Array(1);

  constructor(
    readonly maxEpisodeSteps = 200,
    readonly g = 10.0,
  ) {
    if (!Number.isInteger(maxEpisodeSteps) || maxEpisodeSteps < 1)
      throw new Error(`Pendulum: maxEpisodeSteps must be a positive integer, got ${maxEpisodeSteps}`);
    if (!Number.isFinite(g)) throw new Error(`Pendulum: g must be a finite number, got ${g}`);
  }

  snapshot(): unknown {
    const { theta, thetaDot, steps, running } = this;
    return { rng: this.rng.state(), theta, thetaDot, steps, running };
  }

  restore(saved: unknown): void {
    const s = saved as { rng: RngState; theta: number; thetaDot: number; steps: number; running: boolean };
    this.rng = Rng.fromState(s.rng);
    this.theta = s.theta;
    this.thetaDot = s.thetaDot;
    this.steps = s.steps;
    this.running = s.running;
  }

  resetInto(out: Float32Array, offset: number, seed?: number, options: ResetOptions = {}): void {
    const level = options.difficulty ?? 0;
    if (level !== 0) throw new Error(`reset: difficulty must be 0 for Pendulum-v1 (it has no curriculum), got ${level}`);
    if (seed !== undefined) this.rng = new Rng(seed);
    // The draw order matches Gymnasium's np_random.uniform(low=-high, high=high) over [theta, theta_dot].
    this.theta = this.rng.uniformRange(-INIT_THETA, INIT_THETA);
    this.thetaDot = this.rng.uniformRange(-INIT_THETA_DOT, INIT_THETA_DOT);
    this.steps = 0;
    this.running = true;
    this.observe(out, offset);
  }

  stepInto(
    actions: ActionBuffer,
    at: number,
    out: Float32Array,
    offset: number,
    rewards: Record<string, Float32Array>,
    index: number,
  ): StepFlags {
    if (!this.running) throw new Error('step: the episode has ended or was never started; call reset first');
    const u = f32(clipBoxAction(actions, at, this.actionSpace, this.u)[0]);
    const th = this.theta;
    const thdot = this.thetaDot;
    const an = angleNormalize(th);
    // Gymnasium's u is a float32 scalar, and under NumPy 2's promotion rules (NEP 50) a Python float
    // times a float32 stays float32: the torque term and the action cost are rounded to float32 there,
    // and rounding them here keeps trajectories equal to Gymnasium's to the bit instead of drifting.
    const torque = f32(f32(3.0 / (MASS * LENGTH * LENGTH)) * u);
    const actionCost = f32(f32(0.001) * f32(u * u));
    // The cost is of the state the action was taken in, as Gymnasium computes it before the update.
    const cost = an * an + 0.1 * thdot * thdot + actionCost;
    let newThdot = thdot + (((3 * this.g) / (2 * LENGTH)) * Math.sin(th) + torque) * DT;
    newThdot = Math.min(MAX_SPEED, Math.max(-MAX_SPEED, newThdot));
    this.theta = th + newThdot * DT;
    this.thetaDot = newThdot;
    this.steps++;
    this.observe(out, offset);
    rewards.goal[index] = -cost;
    const truncated = this.steps >= this.maxEpisodeSteps;
    if (truncated) this.running = false;
    return { terminated: false, truncated, success: false };
  }

  private observe(out: Float32Array, offset: number): void {
    out[offset] = Math.cos(this.theta);
    out[offset + 1] = Math.sin(this.theta);
    out[offset + 2] = this.thetaDot;
  }
}

export const pendulum: EnvSpec<typeof PENDULUM_OPTIONS> = {
  id: 'Pendulum-v1',
  description: "swing a pendulum up and hold it with a bounded torque (Gymnasium's Pendulum-v1)",
  options: PENDULUM_OPTIONS,
  make: (o) => new PendulumEnv(o.max_episode_steps, o.g),
};
