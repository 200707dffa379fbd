import { Rng } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import { Conditional, makeEnv, PatternEcho, SequenceNext, SymbolicEnv, VectorEnv } from '../src';

const trajectory = (seed: number) => {
  const env = makeEnv('SequenceNext', { maxEpisodeSteps: 5 });
  const out: number[][] = [Array.from(env.reset(seed, { difficulty: 2 }).obs)];
  for (let t = 0; t < 5; t++) out.push(Array.from(env.step(t % 8).obs));
  return out;
};

describe('env contract', () => {
  it('is deterministic under a seed and seeds only in reset', () => {
    expect(trajectory(7)).toEqual(trajectory(7));
    expect(trajectory(7)).not.toEqual(trajectory(8));
    const env = makeEnv('PatternEcho');
    const a = env.reset(3).obs;
    const b = env.reset(3).obs;
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  it('ends on the time limit only: never terminated, truncated exactly at max steps', () => {
    const env = makeEnv('Conditional', { maxEpisodeSteps: 4 });
    env.reset(0, { difficulty: 2 });
    for (let t = 1; t <= 4; t++) {
      const s = env.step(0);
      expect(s.terminated).toBe(false);
      expect(s.truncated).toBe(t === 4);
      expect(Object.keys(s.reward).sort()).toEqual(['goal', 'pred']);
    }
    expect(() => env.step(0)).toThrow(/call reset first/);
    expect(() => makeEnv('PatternEcho').step(0)).toThrow(/call reset first/);
  });

  it('rejects an action outside the space, naming it and the range', () => {
    const env = makeEnv('PatternEcho');
    env.reset(0);
    expect(() => env.step(8)).toThrow('step: action 8 is outside Discrete(8), valid actions are 0..7');
    expect(() => env.step(-1)).toThrow(/action -1/);
    expect(() => env.reset(0, { difficulty: 3 })).toThrow(/difficulty must be an integer in \[0, 0\]/);
    expect(() => makeEnv('Nope')).toThrow(/unknown env "Nope"; known envs: PatternEcho, SequenceNext, Conditional/);
  });
});

describe('tasks', () => {
  const tasks = [new PatternEcho(8), new SequenceNext(8, 3), new Conditional(8)];
  for (const task of tasks) {
    for (let level = 0; level < task.numLevels; level++) {
      it(`${task.name} level ${level}: the oracle always succeeds, a random policy about 1/N`, () => {
        const env = new SymbolicEnv(task as never, 3);
        const rng = new Rng(level);
        let oracle = 0;
        let random = 0;
        const n = 3000;
        for (let e = 0; e < n / 3; e++) {
          env.reset(e, { difficulty: level });
          for (let t = 0; t < 3; t++) {
            const state = (env as unknown as { state: unknown }).state;
            oracle += env.step(task.correct(state as never)).reward.goal;
          }
          env.reset(e, { difficulty: level });
          for (let t = 0; t < 3; t++) random += env.step(rng.int(8)).reward.goal;
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
    const vec = new VectorEnv(Array.from({ length: N }, () => makeEnv('SequenceNext', { maxEpisodeSteps: L })));
    const singles = Array.from({ length: N }, () => makeEnv('SequenceNext', { maxEpisodeSteps: L }));
    const first = Array.from(vec.reset(100, { difficulty: 1 }));
    singles.forEach((e, i) => {
      expect(Array.from(e.reset(100 + i, { difficulty: 1 }).obs)).toEqual(first.slice(i * 24, (i + 1) * 24));
    });
    const actions = Int32Array.from([0, 1, 2, 3]);
    for (let t = 1; t <= L; t++) {
      const step = vec.step(actions);
      singles.forEach((e, i) => {
        const s = e.step(actions[i]);
        expect(step.rewards.goal[i]).toBe(s.reward.goal);
        expect(step.truncated[i]).toBe(t === L ? 1 : 0);
        if (t < L) {
          expect(Array.from(step.obs.subarray(i * 24, (i + 1) * 24))).toEqual(Array.from(s.obs));
        } else {
          expect(Array.from(step.finalObs.subarray(i * 24, (i + 1) * 24))).toEqual(Array.from(s.obs));
          // the next episode starts from the same generator stream, unseeded
          expect(Array.from(step.obs.subarray(i * 24, (i + 1) * 24))).toEqual(Array.from(e.reset(undefined, { difficulty: 1 }).obs));
        }
      });
    }
  });

  it('names the environment and the range for a bad action', () => {
    const vec = new VectorEnv([makeEnv('PatternEcho'), makeEnv('PatternEcho')]);
    vec.reset(0);
    expect(() => vec.step(Int32Array.from([0, 9]))).toThrow('VectorEnv.step: env 1: action 9 is outside 0..7');
    expect(() => vec.step(Int32Array.from([0]))).toThrow(/expected 2 actions, got 1/);
  });
});
