/**
 * CartPole-v1, as Gymnasium's `CartPoleEnv` wrapped in `TimeLimit(max_episode_steps=500)`: the same
 * constants, Euler integration in float64 and float32 observations, reward 1 on every step including
 * the one on which the pole falls, `terminated` when |x| > 2.4 or |theta| > 12 degrees, and
 * `truncated` whenever the step count reaches the limit (TimeLimit sets it even on a terminal step).
 */
import {
  type ActionBuffer,
  Box,
  checkDiscreteAction,
  Discrete,
  type Env,
  type EnvSpec,
  type ResetOptions,
  Rng,
  type RngState,
  type Schema,
  type StepFlags,
} from '@rlmesh/core';

const GRAVITY = 9.8;
const MASS_CART = 1.0;
const MASS_POLE = 0.1;
const TOTAL_MASS = MASS_POLE + MASS_CART;
/** Half the pole's length, as Gymnasium's `length`. */
const LENGTH = 0.5;
const POLEMASS_LENGTH = MASS_POLE * LENGTH;
const FORCE_MAG = 10.0;
const TAU = 0.02;
export const CARTPOLE_THETA_THRESHOLD = (12 * 2 * Math.PI) / 360;
export const CARTPOLE_X_THRESHOLD = 2.4;
/** Each state variable starts uniform in [-INIT_BOUND, INIT_BOUND). */
const INIT_BOUND = 0.05;

export const CARTPOLE_OPTIONS = {
  max_episode_steps: {
    kind: 'int',
    default: 500,
    min: 1,
    max: 100000,
    doc: 'time limit: the episode is truncated after this many steps (Gymnasium registers CartPole-v1 with 500)',
  },
} as const satisfies Schema;

export class CartPoleEnv implements Env {
  // Gymnasium bounds the velocities with float32's max; Infinity says the same without a magic number.
  readonly observationSpace = new Box(
    [-CARTPOLE_X_THRESHOLD * 2, Number.NEGATIVE_INFINITY, -CARTPOLE_THETA_THRESHOLD * 2, Number.NEGATIVE_INFINITY],
    [CARTPOLE_X_THRESHOLD * 2, Number.POSITIVE_INFINITY, CARTPOLE_THETA_THRESHOLD * 2, Number.POSITIVE_INFINITY],
    [4],
  );
  readonly actionSpace = new Discrete(2);
  readonly rewardComponents = ['goal'] as const;
  readonly numLevels = 1;
  readonly obsDim = 4;
  // Unseeded environments start from the same generator so a run is reproducible without a seed.
  private rng = new Rng(0);
  private x = 0;
  private xDot = 0;
  private theta = 0;
  private thetaDot = 0;
  private steps = 0;
  private running = false;

  constructor(readonly maxEpisodeSteps = 500) {
    if (!Number.isInteger(maxEpisodeSteps) || maxEpisodeSteps < 1)
      throw new Error(`CartPole: maxEpisodeSteps must be a positive integer, got ${maxEpisodeSteps}`);
  }

  snapshot(): unknown {
    const { x, xDot, theta, thetaDot, steps, running } = this;
    return { rng: this.rng.state(), x, xDot, theta, thetaDot, steps, running };
  }

  restore(saved: unknown): void {
    const s = saved as { rng: RngState; x: number; xDot: number; theta: number; thetaDot: number; steps: number; running: boolean };
    this.rng = Rng.fromState(s.rng);
    this.x = s.x;
    this.xDot = s.xDot;
    this.theta = s.theta;
    this.thetaDot = s.thetaDot;
    this.steps = s.steps;
    this.running = s.running;
  }

  resetInto(out: Float32Array, offset: number, seed?: number, options: ResetOptions = {}): void {
    const level = options.difficulty ?? 0;
    if (level !== 0) throw new Error(`reset: difficulty must be 0 for CartPole-v1 (it has no curriculum), got ${level}`);
    if (seed !== undefined) this.rng = new Rng(seed);
    // The draw order matches Gymnasium's np_random.uniform(size=(4,)).
    this.x = this.rng.uniformRange(-INIT_BOUND, INIT_BOUND);
    this.xDot = this.rng.uniformRange(-INIT_BOUND, INIT_BOUND);
    this.theta = this.rng.uniformRange(-INIT_BOUND, INIT_BOUND);
    this.thetaDot = this.rng.uniformRange(-INIT_BOUND, INIT_BOUND);
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
    const action = actions[at];
    checkDiscreteAction(action, 2);
    const force = action === 1 ? FORCE_MAG : -FORCE_MAG;
    const cosTheta = Math.cos(this.theta);
    const sinTheta = Math.sin(this.theta);
    const temp = (force + POLEMASS_LENGTH * this.thetaDot * this.thetaDot * sinTheta) / TOTAL_MASS;
    const thetaAcc = (GRAVITY * sinTheta - cosTheta * temp) / (LENGTH * (4.0 / 3.0 - (MASS_POLE * cosTheta * cosTheta) / TOTAL_MASS));
    const xAcc = temp - (POLEMASS_LENGTH * thetaAcc * cosTheta) / TOTAL_MASS;
    // Explicit Euler: positions advance with the old velocities, as Gymnasium's "euler" integrator.
    this.x = this.x + TAU * this.xDot;
    this.xDot = this.xDot + TAU * xAcc;
    this.theta = this.theta + TAU * this.thetaDot;
    this.thetaDot = this.thetaDot + TAU * thetaAcc;
    this.steps++;
    this.observe(out, offset);

    const terminated =
      this.x < -CARTPOLE_X_THRESHOLD ||
      this.x > CARTPOLE_X_THRESHOLD ||
      this.theta < -CARTPOLE_THETA_THRESHOLD ||
      this.theta > CARTPOLE_THETA_THRESHOLD;
    const truncated = this.steps >= this.maxEpisodeSteps;
    // Gymnasium v1 pays 1 on the step the pole falls too; steps past it are refused here instead of paying 0.
    rewards.goal[index] = 1.0;
    if (terminated || truncated) this.running = false;
    // CartPole has no task success of its own: success means the pole stayed up until the time limit.
    return { terminated, truncated, success: truncated && !terminated };
  }

  private observe(out: Float32Array, offset: number): void {
    out[offset] = this.x;
    out[offset + 1] = this.xDot;
    out[offset + 2] = this.theta;
    out[offset + 3] = this.thetaDot;
  }
}

export const cartPole: EnvSpec<typeof CARTPOLE_OPTIONS> = {
  id: 'CartPole-v1',
  description: "balance a pole on a cart by pushing it left or right (Gymnasium's CartPole-v1)",
  options: CARTPOLE_OPTIONS,
  make: (o) => new CartPoleEnv(o.max_episode_steps),
};
