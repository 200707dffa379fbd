import { type Env, makeEnv, Rng, resetEnv, stepEnv, VectorEnv } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import { Conditional, PatternEcho, SequenceNext, SymbolicEnv } from '../src';

const trajectory = (seed: number) => {
  const env = makeEnv('SequenceNext', { max_episode_steps: 5 });
  const out: number[][] = [Array.from(resetEnv(env, seed, { difficulty: 2 }))];
  for (let t = 0; t < 5; t++) out.push(Array.from(stepEnv(env, t % 8).obs));
  return out;
};

describe('env contract', () => {
  it('is deterministic under a seed and seeds only in reset', () => {
    expect(trajectory(7)).toEqual(trajectory(7));
    expect(trajectory(7)).not.toEqual(trajectory(8));
    const env = makeEnv('PatternEcho');
    const a = resetEnv(env, 3);
    const b = resetEnv(env, 3);
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  it('ends on the time limit only: never terminated, truncated exactly at max steps', () => {
    const env = makeEnv('Conditional', { max_episode_steps: 4 });
    resetEnv(env, 0, { difficulty: 2 });
    for (let t = 1; t <= 4; t++) {
      const s = stepEnv(env, 0);
      expect(s.terminated).toBe(false);
      expect(s.truncated).toBe(t === 4);
      expect(Object.keys(s.reward).sort()).toEqual(['goal', 'pred']);
    }
    expect(() => stepEnv(env, 0)).toThrow(/call reset first/);
    expect(() => stepEnv(makeEnv('PatternEcho'), 0)).toThrow(/call reset first/);
  });

  it('steps in place with stepInto: reads actions[at], writes out[offset..] and rewards[c][index]', () => {
    const env = makeEnv('PatternEcho', { num_symbols: 4, max_episode_steps: 3 });
    const first = resetEnv(env, 9);
    const target = first.indexOf(1);
    const actions = Int32Array.of(-5, -5, target);
    const out = new Float32Array(2 + env.obsDim).fill(-1);
    const rewards = { goal: new Float32Array(3).fill(-1), pred: new Float32Array(3).fill(-1) };
    const s = env.stepInto(actions, 2, out, 2, rewards, 1);
    expect(s).toEqual({ terminated: false, truncated: false, success: true });
    expect(Array.from(out.subarray(0, 2))).toEqual([-1, -1]);
    expect(Array.from(out.subarray(2)).reduce((a, b) => a + b)).toBe(1);
    expect(Array.from(rewards.goal)).toEqual([-1, 1, -1]);
    expect(Array.from(rewards.pred)).toEqual([-1, 0, -1]);
  });

  it('rejects an action outside the space, naming it and the range', () => {
    const env = makeEnv('PatternEcho');
    resetEnv(env, 0);
    expect(() => stepEnv(env, 8)).toThrow('step: action 8 is outside Discrete(8), valid actions are 0..7');
    expect(() => stepEnv(env, -1)).toThrow(/action -1/);
    expect(() => stepEnv(env, [0, 1])).toThrow(/action has 2 values, the action space takes 1/);
    expect(() => resetEnv(env, 0, { difficulty: 3 })).toThrow(/difficulty must be an integer in \[0, 0\]/);
    expect(() => makeEnv('Nope')).toThrow(/unknown env "Nope"; known envs: PatternEcho, SequenceNext, Conditional/);
  });

  it('validates options by the schema, naming the option', () => {
    expect(() => makeEnv('PatternEcho', { num_symbols: 1 })).toThrow(/^env\.options\.num_symbols: /);
    expect(() => makeEnv('SequenceNext', { window: 1 })).toThrow(/^env\.options\.window: /);
    expect(() => makeEnv('PatternEcho', { bogus: 1 })).toThrow(/^env\.options\.bogus: unknown key/);
    expect(makeEnv('PatternEcho', { num_symbols: 5 }).obsDim).toBe(5);
    expect(makeEnv('SequenceNext', { num_symbols: 4, window: 2 }).obsDim).toBe(8);
    expect(makeEnv('Conditional', { num_symbols: 5 }).obsDim).toBe(8);
  });
});

describe('tasks', () => {
  const tasks = [new PatternEcho(8), new SequenceNext(8, 3), new Conditional(8)];
  for (const task of tasks) {
    for (let level = 0; level < task.numLevels; level++) {
      it(`${task.name} level ${level}: the oracle always succeeds, a random policy about 1/N`, () => {
        const env: Env = new SymbolicEnv(task as never, 3);
        const rng = new Rng(level);
        let oracle = 0;
        let random = 0;
        const n = 3000;
        for (let e = 0; e < n / 3; e++) {
          resetEnv(env, e, { difficulty: level });
          for (let t = 0; t < 3; t++) {
            const state = (env as unknown as { state: unknown }).state;
            oracle += stepEnv(env, task.correct(state as never)).reward.goal;
          }
          resetEnv(env, e, { difficulty: level });
          for (let t = 0; t < 3; t++) random += stepEnv(env, rng.int(8)).reward.goal;
        }
        expect(oracle / n).toBe(1);
        expect(random / n).toBeGreaterThan(0.09);
        expect(random / n).toBeLessThan(0.16);
      });
    }
  }

  it('SequenceNext shows the arithmetic rule and the difficulty sets the step', () => {
    const t = new SequenceNext(8, 3);
    const rng = new Rng(1);
    const steps = new Set<number>();
    for (let i = 0; i < 200; i++) steps.add(t.initial(rng, 2).step);
    expect([...steps].sort()).toEqual([1, 2, 3]);
    const s = { seen: [6, 0, 2], step: 2 };
    expect(t.correct(s)).toBe(4);
    expect(t.next(s).seen).toEqual([0, 2, 4]);
  });

  it('Conditional applies echo, mirror and successor', () => {
    const t = new Conditional(8);
    expect(t.correct({ target: 3, rule: 0 })).toBe(3);
    expect(t.correct({ target: 3, rule: 1 })).toBe(4);
    expect(t.correct({ target: 7, rule: 2 })).toBe(0);
  });
});

describe('VectorEnv', () => {
  it('autoresets in the same step and keeps the final observation', () => {
    const N = 4;
    const L = 3;
    const vec = new VectorEnv(Array.from({ length: N }, () => makeEnv('SequenceNext', { max_episode_steps: L })));
    const singles = Array.from({ length: N }, () => makeEnv('SequenceNext', { max_episode_steps: L }));
    const first = Array.from(vec.reset(100, { difficulty: 1 }));
    singles.forEach((e, i) => {
      expect(Array.from(resetEnv(e, 100 + i, { difficulty: 1 }))).toEqual(first.slice(i * 24, (i + 1) * 24));
    });
    const actions = Int32Array.from([0, 1, 2, 3]);
    for (let t = 1; t <= L; t++) {
      const step = vec.step(actions);
      singles.forEach((e, i) => {
        const s = stepEnv(e, actions[i]);
        expect(step.rewards.goal[i]).toBe(s.reward.goal);
        expect(step.truncated[i]).toBe(t === L ? 1 : 0);
        if (t < L) {
          expect(Array.from(step.obs.subarray(i * 24, (i + 1) * 24))).toEqual(Array.from(s.obs));
        } else {
          expect(Array.from(step.finalObs.subarray(i * 24, (i + 1) * 24))).toEqual(Array.from(s.obs));
          // the next episode starts from the same generator stream, unseeded
          expect(Array.from(step.obs.subarray(i * 24, (i + 1) * 24))).toEqual(Array.from(resetEnv(e, undefined, { difficulty: 1 })));
        }
      });
    }
  });

  it('names the environment and the range for a bad action', () => {
    const vec = new VectorEnv([makeEnv('PatternEcho'), makeEnv('PatternEcho')]);
    vec.reset(0);
    expect(() => vec.step(Int32Array.from([0, 9]))).toThrow(
      'VectorEnv.step: env 1: step: action 9 is outside Discrete(8), valid actions are 0..7',
    );
    expect(() => vec.step(Int32Array.from([0]))).toThrow(/expected 2 action values, got 1/);
  });
});
