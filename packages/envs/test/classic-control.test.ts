/**
 * CartPole-v1 and Pendulum-v1 against Gymnasium's equations, written out here from Gymnasium's source
 * (float64, with NumPy 2's float32 products where Gymnasium has them) rather than taken from the
 * environments, so a slip in either shows up as a mismatch.
 */
import { ConfigError, type Env, Rng, resetEnv, stepEnv, VectorEnv, validate } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import { CartPoleEnv, cartPole } from '../src/cartpole';
import { angleNormalize, PendulumEnv, pendulum } from '../src/pendulum';

const THETA_THRESHOLD = (12 * 2 * Math.PI) / 360;

/** Gymnasium's CartPoleEnv.step (Euler integrator) on a float64 state. */
function gymCartPoleStep(state: readonly number[], action: number): { state: number[]; terminated: boolean } {
  const gravity = 9.8;
  const masscart = 1.0;
  const masspole = 0.1;
  const totalMass = masspole + masscart;
  const length = 0.5;
  const polemassLength = masspole * length;
  const tau = 0.02;
  const [x, xDot, theta, thetaDot] = state;
  const force = action === 1 ? 10.0 : -10.0;
  const costheta = Math.cos(theta);
  const sintheta = Math.sin(theta);
  const temp = (force + polemassLength * thetaDot ** 2 * sintheta) / totalMass;
  const thetaacc = (gravity * sintheta - costheta * temp) / (length * (4.0 / 3.0 - (masspole * costheta ** 2) / totalMass));
  const xacc = temp - (polemassLength * thetaacc * costheta) / totalMass;
  const next = [x + tau * xDot, xDot + tau * xacc, theta + tau * thetaDot, thetaDot + tau * thetaacc];
  const terminated = next[0] < -2.4 || next[0] > 2.4 || next[2] < -THETA_THRESHOLD || next[2] > THETA_THRESHOLD;
  return { state: next, terminated };
}

/**
 * Gymnasium's PendulumEnv.step on a float64 state; the cost is of the state before the step. The
 * action is float32 there, and NumPy 2 keeps `python_float * float32` in float32 (NEP 50), so the
 * two terms that touch u alone are float32 products; the rest is float64.
 */
function gymPendulumStep(state: readonly number[], action: number, g = 10.0): { state: number[]; reward: number } {
  const f32 = Math.fround;
  const dt = 0.05;
  const m = 1.0;
  const l = 1.0;
  const [th, thdot] = state;
  const u = f32(Math.min(2.0, Math.max(-2.0, action)));
  // Python's ((x + pi) % (2 pi)) - pi, by floor division rather than the environment's remainder.
  const normalized = th - 2 * Math.PI * Math.floor((th + Math.PI) / (2 * Math.PI));
  const costs = normalized ** 2 + 0.1 * thdot ** 2 + f32(f32(0.001) * f32(u ** 2));
  let newthdot = thdot + (((3 * g) / (2 * l)) * Math.sin(th) + f32(f32(3.0 / (m * l ** 2)) * u)) * dt;
  newthdot = Math.min(8, Math.max(-8, newthdot));
  return { state: [th + newthdot * dt, newthdot], reward: -costs };
}

const pendulumObs = ([th, thdot]: readonly number[]) => [Math.cos(th), Math.sin(th), thdot];

/** Gymnasium's reset: np_random.uniform(low, high) element by element, here from the contract's Rng. */
const draws = (rng: Rng, bounds: readonly number[]) => bounds.map((b) => rng.uniformRange(-b, b));

/** Observations are float32 casts of float64 values; a few float64 ulps of difference may move one float32 ulp. */
function expectClose(actual: ArrayLike<number>, expected: readonly number[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = 2e-7 * Math.max(1, Math.abs(expected[i]));
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) throw new Error(`element ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

const makeCartPole = (options: Record<string, unknown> = {}) => cartPole.make(validate(cartPole.options, options, 'env.options'));
const makePendulum = (options: Record<string, unknown> = {}) => pendulum.make(validate(pendulum.options, options, 'env.options'));

/** Steps a Discrete env through stepInto directly, so a float action reaches the environment as it is. */
const stepFloat = (env: Env, a: number) =>
  env.stepInto(Float32Array.of(a), 0, new Float32Array(env.obsDim), 0, { goal: new Float32Array(1) }, 0);

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('CartPole-v1', () => {
  it("has Gymnasium's spaces and reward components", () => {
    const env = makeCartPole();
    expect(env).toBeInstanceOf(CartPoleEnv);
    expect(cartPole.id).toBe('CartPole-v1');
    expect(env.obsDim).toBe(4);
    expect(env.numLevels).toBe(1);
    expect(env.rewardComponents).toEqual(['goal']);
    expect(env.actionSpace.kind).toBe('discrete');
    expect(env.actionSpace.toJSON()).toEqual({ kind: 'discrete', n: 2 });
    expect(env.observationSpace.shape).toEqual([4]);
    expect(env.observationSpace.high).toEqual([4.8, Number.POSITIVE_INFINITY, THETA_THRESHOLD * 2, Number.POSITIVE_INFINITY]);
    expect(env.observationSpace.low).toEqual([-4.8, Number.NEGATIVE_INFINITY, -THETA_THRESHOLD * 2, Number.NEGATIVE_INFINITY]);
  });

  it("one step matches Gymnasium's equations from the seeded initial state", () => {
    const env = makeCartPole();
    const s0 = draws(new Rng(42), [0.05, 0.05, 0.05, 0.05]);
    const obs0 = resetEnv(env, 42);
    expect(Array.from(obs0)).toEqual(s0.map(Math.fround));
    for (const v of s0) expect(Math.abs(v)).toBeLessThan(0.05);

    // The Euler update written out term by term for action 0 (force -10).
    const [x, xDot, th, thDot] = s0;
    const temp = (-10 + 0.05 * thDot * thDot * Math.sin(th)) / 1.1;
    const thAcc = (9.8 * Math.sin(th) - Math.cos(th) * temp) / (0.5 * (4 / 3 - (0.1 * Math.cos(th) ** 2) / 1.1));
    const xAcc = temp - (0.05 * thAcc * Math.cos(th)) / 1.1;
    const expected = [x + 0.02 * xDot, xDot + 0.02 * xAcc, th + 0.02 * thDot, thDot + 0.02 * thAcc];
    const s = stepEnv(env, 0);
    expectClose(s.obs, expected);
    expect(s.reward).toEqual({ goal: 1 });
    expect([s.terminated, s.truncated, s.success]).toEqual([false, false, false]);
    // Pushing left accelerates the cart left and tips the pole right.
    expect(s.obs[1]).toBeLessThan(obs0[1]);
    expect(s.obs[3]).toBeGreaterThan(obs0[3]);
  });

  it("follows Gymnasium's trajectory step by step until the pole falls", () => {
    const env = makeCartPole();
    let state = draws(new Rng(5), [0.05, 0.05, 0.05, 0.05]);
    resetEnv(env, 5);
    for (let t = 0; t < 500; t++) {
      const action = t % 3 === 0 ? 0 : 1;
      const ref = gymCartPoleStep(state, action);
      state = ref.state;
      const s = stepEnv(env, action);
      expectClose(s.obs, state);
      expect(s.terminated).toBe(ref.terminated);
      expect(s.reward.goal).toBe(1);
      if (s.terminated) return;
    }
    throw new Error('the biased policy was expected to drop the pole');
  });

  it('terminates when the pole falls, paying 1 on the terminal step', () => {
    const env = makeCartPole();
    resetEnv(env, 0);
    let steps = 0;
    let s = stepEnv(env, 1);
    for (steps = 1; !s.terminated && steps < 100; steps++) {
      expect(s.reward.goal).toBe(1);
      expect(s.truncated).toBe(false);
      s = stepEnv(env, 1);
    }
    expect(s.terminated).toBe(true);
    expect(s.truncated).toBe(false);
    expect(s.success).toBe(false);
    expect(s.reward.goal).toBe(1);
    // Pushing right over and over tips the pole left, past 12 degrees.
    expect(s.obs[2]).toBeLessThan(-0.2);
    expect(() => stepEnv(env, 1)).toThrow(/episode has ended or was never started; call reset first/);

    // A time limit reached on the very step the pole falls sets both flags, as TimeLimit does.
    const limited = makeCartPole({ max_episode_steps: steps });
    resetEnv(limited, 0);
    for (let t = 1; t < steps; t++) stepEnv(limited, 1);
    const last = stepEnv(limited, 1);
    expect([last.terminated, last.truncated, last.success]).toEqual([true, true, false]);
  });

  it('truncates at max_episode_steps; success means the pole stayed up until then', () => {
    const env = makeCartPole({ max_episode_steps: 5 });
    for (const seed of [1, 2]) {
      resetEnv(env, seed);
      for (let t = 1; t <= 5; t++) {
        const s = stepEnv(env, t % 2);
        expect(s.terminated).toBe(false);
        expect(s.truncated).toBe(t === 5);
        expect(s.success).toBe(t === 5);
        expect(s.reward.goal).toBe(1);
      }
      expect(() => stepEnv(env, 0)).toThrow(/call reset first/);
    }
  });

  it('rejects bad actions, a step before reset and a difficulty other than 0', () => {
    const env = makeCartPole();
    expect(() => stepEnv(env, 0)).toThrow(/call reset first/);
    resetEnv(env, 0);
    expect(() => stepEnv(env, 2)).toThrow('step: action 2 is outside Discrete(2), valid actions are 0..1');
    expect(() => stepEnv(env, -1)).toThrow(/action -1 is outside Discrete\(2\)/);
    expect(() => stepFloat(env, 0.5)).toThrow(/action 0.5 is outside Discrete\(2\)/);
    expect(() => stepFloat(env, Number.NaN)).toThrow(/action NaN is outside Discrete\(2\)/);
    // A rejected action leaves the episode where it was.
    expect(stepEnv(env, 1).terminated).toBe(false);
    expect(() => resetEnv(env, 0, { difficulty: 1 })).toThrow(/difficulty must be 0/);
    expect(() => resetEnv(env, 0, { difficulty: 0 })).not.toThrow();
  });
});

describe('seeding', () => {
  const trajectory = (seed: number) => {
    const env = makeCartPole({ max_episode_steps: 20 });
    const out: number[][] = [Array.from(resetEnv(env, seed))];
    for (let t = 0; t < 60; t++) {
      const s = stepEnv(env, t % 3 === 0 ? 1 : 0);
      out.push(Array.from(s.obs));
      if (s.terminated || s.truncated) out.push(Array.from(resetEnv(env)));
    }
    return out;
  };

  it('the same seed gives the same trajectory, a different seed a different one', () => {
    expect(trajectory(7)).toEqual(trajectory(7));
    expect(trajectory(7)).not.toEqual(trajectory(8));
    expect(Array.from(resetEnv(makeCartPole(), 7))).not.toEqual(Array.from(resetEnv(makeCartPole(), 8)));
  });

  it('seeds only in reset: a reset without a seed continues the generator', () => {
    const env = makeCartPole();
    const rng = new Rng(7);
    const first = resetEnv(env, 7);
    expect(Array.from(first)).toEqual(draws(rng, [0.05, 0.05, 0.05, 0.05]).map(Math.fround));
    for (let t = 0; t < 3; t++) stepEnv(env, t % 2);
    const second = resetEnv(env);
    expect(Array.from(second)).not.toEqual(Array.from(first));
    expect(Array.from(second)).toEqual(draws(rng, [0.05, 0.05, 0.05, 0.05]).map(Math.fround));
    // Re-seeding starts the generator over.
    expect(Array.from(resetEnv(env, 7))).toEqual(Array.from(first));

    const p = makePendulum();
    const prng = new Rng(3);
    expect(Array.from(resetEnv(p, 3))).toEqual(pendulumObs(draws(prng, [Math.PI, 1])).map(Math.fround));
    expect(Array.from(resetEnv(p))).toEqual(pendulumObs(draws(prng, [Math.PI, 1])).map(Math.fround));
  });
});

describe('Pendulum-v1', () => {
  it("has Gymnasium's spaces and reward components", () => {
    const env = makePendulum();
    expect(env).toBeInstanceOf(PendulumEnv);
    expect(pendulum.id).toBe('Pendulum-v1');
    expect(env.obsDim).toBe(3);
    expect(env.numLevels).toBe(1);
    expect(env.rewardComponents).toEqual(['goal']);
    expect(env.observationSpace.toJSON()).toEqual({ kind: 'box', low: [-1, -1, -8], high: [1, 1, 8], shape: [3] });
    expect(env.actionSpace.toJSON()).toEqual({ kind: 'box', low: [-2], high: [2], shape: [1] });
  });

  it("normalizes angles into [-pi, pi) as Gymnasium's angle_normalize", () => {
    expect(angleNormalize(0)).toBe(0);
    expect(angleNormalize(Math.PI)).toBeCloseTo(-Math.PI, 12);
    expect(angleNormalize(-Math.PI)).toBeCloseTo(-Math.PI, 12);
    expect(angleNormalize((3 * Math.PI) / 2)).toBeCloseTo(-Math.PI / 2, 12);
    expect(angleNormalize((-3 * Math.PI) / 2)).toBeCloseTo(Math.PI / 2, 12);
    expect(angleNormalize(7 * Math.PI + 0.25)).toBeCloseTo(-Math.PI + 0.25, 12);
    expect(angleNormalize(-7 * Math.PI + 0.25)).toBeCloseTo(-Math.PI + 0.25, 12);
  });

  it("one step matches Gymnasium's equations from the seeded initial state", () => {
    const env = makePendulum();
    const [th, thdot] = draws(new Rng(11), [Math.PI, 1]);
    expect(Math.abs(th)).toBeLessThan(Math.PI);
    expect(Math.abs(thdot)).toBeLessThan(1);
    expect(Array.from(resetEnv(env, 11))).toEqual([Math.cos(th), Math.sin(th), thdot].map(Math.fround));

    // u = 1.5, g = 10, m = l = 1, dt = 0.05; the cost uses the angle and speed before the step.
    const an = th - 2 * Math.PI * Math.floor((th + Math.PI) / (2 * Math.PI));
    const cost = an * an + 0.1 * thdot * thdot + 0.001 * 1.5 * 1.5;
    const newThdot = Math.min(8, Math.max(-8, thdot + (15 * Math.sin(th) + 3 * 1.5) * 0.05));
    const newTh = th + newThdot * 0.05;
    const s = stepEnv(env, [1.5]);
    expectClose(s.obs, [Math.cos(newTh), Math.sin(newTh), newThdot]);
    expect(s.reward.goal).toBeCloseTo(-cost, 5);
    expect(Math.abs(s.reward.goal - Math.fround(-cost))).toBeLessThanOrEqual(1e-6 * Math.max(1, cost));
    expect([s.terminated, s.truncated, s.success]).toEqual([false, false, false]);
  });

  // g = 100 drives the speed into its clip at 8; g = 10 swings freely, so a small error grows.
  for (const g of [100, 10]) {
    it(`follows Gymnasium's trajectory over 200 steps with g = ${g}`, () => {
      const env = makePendulum({ g });
      let state = draws(new Rng(4), [Math.PI, 1]);
      resetEnv(env, 4);
      let clipped = 0;
      for (let t = 0; t < 200; t++) {
        // Mostly torques whose 3u is not a float32, now and then one past the bounds.
        const action = Math.fround(2.3 * Math.sin(0.4 * t));
        const ref = gymPendulumStep(state, action, g);
        const s = stepEnv(env, [action]);
        expectClose(s.obs, pendulumObs(ref.state));
        expect(Math.abs(s.reward.goal - ref.reward)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(ref.reward)));
        if (Math.abs(ref.state[1]) === 8) clipped++;
        state = ref.state;
      }
      if (g === 100) expect(clipped).toBeGreaterThan(0);
    });
  }

  it('clips actions to [-2, 2] (the cost too) and rejects NaN', () => {
    for (const [wild, edge] of [
      [5, 2],
      [-7.5, -2],
    ]) {
      const a = makePendulum();
      const b = makePendulum();
      const s0 = draws(new Rng(9), [Math.PI, 1]);
      expect(Array.from(resetEnv(a, 9))).toEqual(Array.from(resetEnv(b, 9)));
      const sa = stepEnv(a, [wild]);
      const sb = stepEnv(b, [edge]);
      expect(Array.from(sa.obs)).toEqual(Array.from(sb.obs));
      expect(sa.reward).toEqual(sb.reward);
      expect(Math.abs(sa.reward.goal - gymPendulumStep(s0, edge).reward)).toBeLessThan(1e-6);
    }
    const env = makePendulum();
    expect(() => stepEnv(env, [0])).toThrow(/call reset first/);
    resetEnv(env, 0);
    expect(() => stepEnv(env, [Number.NaN])).toThrow('step: action[0] is NaN');
    expect(() => stepEnv(env, [1, 1])).toThrow(/action has 2 values/);
    expect(() => resetEnv(env, 0, { difficulty: 2 })).toThrow(/difficulty must be 0/);
  });

  it('never terminates and truncates at max_episode_steps (200 by default)', () => {
    const env = makePendulum();
    resetEnv(env, 1);
    for (let t = 1; t <= 200; t++) {
      const s = stepEnv(env, [t % 2 === 0 ? 2 : -2]);
      expect(s.terminated).toBe(false);
      expect(s.truncated).toBe(t === 200);
      expect(s.success).toBe(false);
      expect(s.reward.goal).toBeLessThanOrEqual(0);
      expect(env.observationSpace.contains(s.obs)).toBe(true);
    }
    expect(() => stepEnv(env, [0])).toThrow(/call reset first/);
  });
});

describe('VectorEnv of CartPoles', () => {
  it('autoresets on the same step: finalObs holds the last observation, obs a fresh start', () => {
    const n = 3;
    const vec = new VectorEnv(Array.from({ length: n }, () => makeCartPole()));
    // Twins stepped one by one with the same seeds and actions give the expected rows.
    const twins = Array.from({ length: n }, () => makeCartPole());
    const obs = vec.reset(100);
    for (let i = 0; i < n; i++) expect(Array.from(obs.subarray(i * 4, i * 4 + 4))).toEqual(Array.from(resetEnv(twins[i], 100 + i)));

    const actions = new Int32Array(n);
    let previousFinal = new Float32Array(n * 4);
    let ends = 0;
    for (let t = 0; t < 200; t++) {
      for (let i = 0; i < n; i++) actions[i] = (t + i) % 4 === 0 ? 0 : 1;
      const s = vec.step(actions);
      for (let i = 0; i < n; i++) {
        const row = (a: Float32Array) => Array.from(a.subarray(i * 4, i * 4 + 4));
        const r = stepEnv(twins[i], actions[i]);
        expect(s.rewards.goal[i]).toBe(1);
        expect(s.terminated[i]).toBe(r.terminated ? 1 : 0);
        expect(s.truncated[i]).toBe(r.truncated ? 1 : 0);
        if (r.terminated || r.truncated) {
          ends++;
          expect(row(s.finalObs)).toEqual(Array.from(r.obs));
          // The fresh start continues the twin's generator, as the vector env's unseeded reset does.
          expect(row(s.obs)).toEqual(Array.from(resetEnv(twins[i])));
          for (const v of row(s.obs)) expect(Math.abs(v)).toBeLessThanOrEqual(0.05);
        } else {
          expect(row(s.obs)).toEqual(Array.from(r.obs));
          // Rows of environments that did not end are left as they were.
          expect(row(s.finalObs)).toEqual(row(previousFinal));
        }
      }
      previousFinal = Float32Array.from(s.finalObs);
    }
    expect(ends).toBeGreaterThanOrEqual(n);
  });
});

describe('options', () => {
  it('validate fills the defaults', () => {
    expect(validate(cartPole.options, {}, 'env.options')).toEqual({ max_episode_steps: 500 });
    expect(validate(pendulum.options, {}, 'env.options')).toEqual({ max_episode_steps: 200, g: 10 });
  });

  it('a bad or unknown option is a ConfigError naming it', () => {
    const zero = configError(() => validate(cartPole.options, { max_episode_steps: 0 }, 'env.options'));
    expect(zero.key).toBe('env.options.max_episode_steps');
    expect(zero.message).toMatch(/^env\.options\.max_episode_steps: must be an integer >= 1/);
    expect(configError(() => validate(cartPole.options, { max_episode_steps: 2.5 }, 'env.options')).key).toBe(
      'env.options.max_episode_steps',
    );
    const unknown = configError(() => validate(cartPole.options, { max_steps: 5 }, 'env.options'));
    expect(unknown.key).toBe('env.options.max_steps');
    expect(unknown.message).toMatch(/unknown key/);
    expect(configError(() => validate(pendulum.options, { g: 'heavy' }, 'env.options')).key).toBe('env.options.g');
    expect(configError(() => validate(pendulum.options, { gravity: 9.8 }, 'env.options')).key).toBe('env.options.gravity');
  });
});

describe('snapshot and restore', () => {
  /** Steps `n` times from step `from`, resetting without a seed when an episode ends, and records it all. */
  const run = (env: Env, action: (t: number) => number, from: number, n: number) => {
    const log: unknown[] = [];
    for (let t = from; t < from + n; t++) {
      const s = stepEnv(env, action(t));
      log.push([Array.from(s.obs), s.reward, s.terminated, s.truncated, s.success]);
      if (s.terminated || s.truncated) log.push(['reset', Array.from(resetEnv(env))]);
    }
    return log;
  };

  /** 30 steps, a snapshot through JSON, 50 more; a new instance restored from it must replay those 50 exactly. */
  function expectResumes(make: () => Env & { snapshot(): unknown; restore(state: unknown): void }, action: (t: number) => number): void {
    const env = make();
    resetEnv(env, 11);
    run(env, action, 0, 30);
    const saved = JSON.parse(JSON.stringify(env.snapshot()));
    const original = run(env, action, 30, 50);
    // The episode limit is under 50 steps from the snapshot, so the window holds an end and an unseeded reset.
    expect(original.some((e) => Array.isArray(e) && e[0] === 'reset')).toBe(true);
    const resumed = make();
    resumed.restore(saved);
    expect(run(resumed, action, 30, 50)).toEqual(original);
  }

  it('CartPole-v1 resumes from a snapshot in a new instance exactly as the original continues', () => {
    expectResumes(
      () => new CartPoleEnv(45),
      (t) => (t % 3 === 0 ? 1 : 0),
    );
  });

  it('Pendulum-v1 resumes from a snapshot in a new instance exactly as the original continues', () => {
    expectResumes(
      () => new PendulumEnv(60),
      (t) => 2.5 * Math.sin(t),
    );
  });
});
