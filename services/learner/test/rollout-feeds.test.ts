/**
 * What an update feeds its programs from a rollout: valuesOfRollout (V(s_t) and V(s_{t+1}) of a
 * [T, N] rollout from one batched call, evaluating a next observation only where it is not the
 * following row's: episode ends and the last step) and actionsFeed (int32 actions as int64).
 */
import { describe, expect, it } from 'vitest';
import { actionsFeed, valuesOfRollout } from '../src';

// A value function of the observation alone, so the expected values can be computed row by row.
const V = (o: Float32Array, at: number) => o[at] * 10 + o[at + 1];

function evaluator() {
  const calls: number[] = [];
  const evaluate = async (obs: Float32Array, rows: number) => {
    calls.push(rows);
    const value = new Float32Array(rows);
    const log_probs = new Float32Array(rows * 2);
    for (let k = 0; k < rows; k++) {
      value[k] = V(obs, k * 2);
      log_probs[k * 2] = -k;
    }
    return { value, log_probs };
  };
  return { calls, evaluate };
}

describe('valuesOfRollout', () => {
  // T = 3 steps of N = 2 envs, 2-d observations; env 1's episode ends at step 0 (autoreset).
  const T = 3;
  const N = 2;
  const S = 2;
  const obsAt = (t: number, i: number) => [t + 1, i + 0.5 + (t >= 1 && i === 1 ? 100 : 0)];
  const obs = new Float32Array(T * N * S);
  const nextObs = new Float32Array(T * N * S);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < N; i++) {
      obs.set(obsAt(t, i), (t * N + i) * S);
      nextObs.set(obsAt(t + 1, i), (t * N + i) * S);
    }
  nextObs.set([-7, 0.25], (0 * N + 1) * S); // env 1's final observation at step 0

  it('matches evaluating every observation and next observation on its own', async () => {
    const { calls, evaluate } = evaluator();
    const r = { numSteps: T, numEnvs: N, obsDim: S, obs, nextObs };
    const { values, nextValues, heads } = await valuesOfRollout(r, evaluate);
    for (let k = 0; k < T * N; k++) {
      expect(values[k]).toBeCloseTo(V(obs, k * S), 5);
      expect(nextValues[k]).toBeCloseTo(V(nextObs, k * S), 5);
    }
    // One call: 6 observations + env 1's final observation + the last step's 2 next observations.
    expect(calls).toEqual([T * N + 3]);
    // The heads cover the obs rows only.
    expect(heads.value.length).toBe(T * N);
    expect(heads.log_probs.length).toBe(T * N * 2);
  });
});

describe('actionsFeed', () => {
  it('widens int32 actions to int64, negative and extreme values included', () => {
    const actions = Int32Array.from([0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 5]);
    const feed = actionsFeed({ kind: 'multi_categorical', nvec: [3, 2] }, actions, 3);
    expect(feed.shape).toEqual([3, 2]);
    expect(Array.from(feed.data as BigInt64Array)).toEqual(Array.from(actions, (a) => BigInt(a)));
    const categorical = actionsFeed({ kind: 'categorical', n: 4 }, Int32Array.from([3, 0, 2]), 3);
    expect(categorical.shape).toEqual([3]);
    expect(Array.from(categorical.data as BigInt64Array)).toEqual([3n, 0n, 2n]);
  });
});
