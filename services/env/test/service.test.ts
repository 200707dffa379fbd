/**
 * EnvServiceCore without a transport: Gymnasium semantics through handles, vector autoreset with
 * final observations, idle sweeping, the Session state machine, and that every bad request is a
 * MeshError with the right code and a message naming the field (never a plain Error, which the
 * server would answer as INTERNAL).
 */
import { status } from '@grpc/grpc-js';
import { MeshError } from '@rlmesh/mesh';
import { decodeTensor, encodeTensor, type Tensor, TensorError } from '@rlmesh/proto';
import { describe, expect, it } from 'vitest';
import { EnvServiceCore } from '../src';

const floats = (t: Tensor | undefined) => Array.from(decodeTensor('t', t, { dtype: 'float32', shape: t?.shape ?? [] }).data);
const bytes = (t: Tensor | undefined) => Array.from(decodeTensor('t', t, { dtype: 'uint8', shape: [-1] }).data);
type Options = Record<string, unknown>;
const reset = (
  core: EnvServiceCore,
  envId: string,
  extra: { seed?: number; difficulty?: number; handle?: string; options?: Options } = {},
) => core.reset({ envId, handle: '', difficulty: 0, ...extra });
const vecReset = (
  core: EnvServiceCore,
  envId: string,
  numEnvs: number,
  extra: { seed?: number; options?: Options; difficulty?: number } = {},
) => core.vecReset({ envId, numEnvs, handle: '', difficulty: 0, ...extra });
const actions = (a: number[]) => encodeTensor(Int32Array.from(a), [a.length]);
/** A discrete Step request. */
const act = (handle: string, action: number) => ({ handle, action, actionValues: [] });
/** A Box or MultiDiscrete Step request. */
const actValues = (handle: string, actionValues: number[]) => ({ handle, action: 0, actionValues });

/** Runs `f` and returns the MeshError it must throw. */
function meshError(f: () => unknown): MeshError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(MeshError);
    return e as MeshError;
  }
  throw new Error('expected a MeshError, nothing was thrown');
}

describe('EnvServiceCore: single env', () => {
  it('lists every env with its spaces as proto oneofs, its description and options schema', () => {
    const { envs } = new EnvServiceCore().listEnvs({});
    const ids = envs.map((e) => e.id);
    expect(ids.slice(0, 6)).toEqual(['PatternEcho', 'SequenceNext', 'Conditional', 'CartPole-v1', 'Pendulum-v1', 'CardRules']);
    expect(ids).toEqual(expect.arrayContaining(['AffineSAT', 'AffineABD', 'AffineDED', 'TextCraft', 'GridGoals', 'ShopSearch']));
    const cond = envs[2];
    expect(cond.actionSpace).toEqual({ kind: { $case: 'discrete', discrete: { n: 8 } } });
    expect(cond.observationSpace).toEqual({
      kind: { $case: 'box', box: { shape: [11], low: new Array(11).fill(0), high: new Array(11).fill(1) } },
    });
    expect(cond.rewardComponents).toEqual(['goal', 'pred']);
    expect(cond.numLevels).toBe(3);
    expect(cond.description).not.toBe('');
    expect(Object.keys(JSON.parse(cond.optionsSchema)).sort()).toEqual(['max_episode_steps', 'num_symbols']);
    expect(JSON.parse(cond.optionsSchema).num_symbols).toMatchObject({ kind: 'int', default: 8, min: 2, max: 1024 });
    const pend = envs[4];
    expect(pend.actionSpace).toEqual({ kind: { $case: 'box', box: { shape: [1], low: [-2], high: [2] } } });
    expect(pend.observationSpace).toEqual({ kind: { $case: 'box', box: { shape: [3], low: [-1, -1, -8], high: [1, 1, 8] } } });
  });

  it('applies the options of a Reset to the env it creates', () => {
    const core = new EnvServiceCore();
    const r = reset(core, 'Conditional', { options: { num_symbols: 4 } });
    expect(r.obs?.shape).toEqual([7]);
    expect(r.info?.actionSpace).toEqual({ kind: { $case: 'discrete', discrete: { n: 4 } } });
    const v = vecReset(core, 'SequenceNext', 2, { options: { num_symbols: 4, window: 2 } });
    expect(v.obs?.shape).toEqual([2, 8]);
  });

  it('is deterministic under a seed, through handles', () => {
    const core = new EnvServiceCore();
    const run = (seed: number) => {
      const r = reset(core, 'SequenceNext', { seed, difficulty: 2, options: { max_episode_steps: 4 } });
      expect(r.obs?.shape).toEqual([24]);
      const obs = [floats(r.obs)];
      for (let t = 0; t < 4; t++) obs.push(floats(core.step(act(r.handle, t)).obs));
      return obs;
    };
    expect(run(11)).toEqual(run(11));
    expect(run(11)).not.toEqual(run(12));
    expect(core.liveEnvs).toBe(4);
  });

  it('answers the episode end, then FAILED_PRECONDITION until Reset', () => {
    const core = new EnvServiceCore();
    const { handle, obs } = reset(core, 'PatternEcho', { seed: 1, options: { max_episode_steps: 2 } });
    const target = floats(obs).indexOf(1);
    const s1 = core.step(act(handle, target));
    expect(s1).toMatchObject({ terminated: false, truncated: false, success: true, reward: { components: { goal: 1, pred: 0 } } });
    const s2 = core.step(act(handle, (floats(s1.obs).indexOf(1) + 1) % 8));
    expect(s2).toMatchObject({ truncated: true, success: false, reward: { components: { goal: 0, pred: 0 } } });
    const e = meshError(() => core.step(act(handle, 0)));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.message).toBe(`handle: ${handle}: episode ended; call Reset`);
    expect(reset(core, '', { handle, seed: 1 }).handle).toBe(handle);
    expect(core.step(act(handle, 0)).truncated).toBe(false);
  });

  it('keeps each response independent of later steps (buffers are reused inside)', () => {
    const core = new EnvServiceCore();
    const r = reset(core, 'PatternEcho', { seed: 3, options: { max_episode_steps: 10 } });
    const first = floats(r.obs);
    for (let t = 0; t < 5; t++) core.step(act(r.handle, 0));
    expect(floats(r.obs)).toEqual(first);
  });
});

describe('EnvServiceCore: vector env', () => {
  it('autoresets on the same step and keeps the final observation', () => {
    const core = new EnvServiceCore();
    const r = vecReset(core, 'PatternEcho', 3, { seed: 5 });
    expect(r.obs?.shape).toEqual([3, 8]);
    const before = floats(r.obs);
    const targets = [0, 1, 2].map((i) => before.slice(i * 8, i * 8 + 8).indexOf(1));
    const s = core.vecStep({ handle: r.handle, actions: actions(targets) });
    expect(bytes(s.truncated)).toEqual([1, 1, 1]);
    expect(bytes(s.terminated)).toEqual([0, 0, 0]);
    expect(bytes(s.success)).toEqual([1, 1, 1]);
    expect(Object.keys(s.rewards).sort()).toEqual(['goal', 'pred']);
    expect(floats(s.rewards.goal)).toEqual([1, 1, 1]);
    expect(s.finalObs?.shape).toEqual([3, 8]);
    // Every row is still a valid one-hot: final_obs holds the ended episode, obs the next one's start.
    for (const t of [s.obs, s.finalObs])
      for (let i = 0; i < 3; i++)
        expect(
          floats(t)
            .slice(i * 8, i * 8 + 8)
            .reduce((a, b) => a + b),
        ).toBe(1);
    // With the same seed a fresh vector env sees the same next-episode starts.
    const again = vecReset(core, 'PatternEcho', 3, { seed: 5 });
    const s2 = core.vecStep({ handle: again.handle, actions: actions([7, 7, 7]) });
    expect(floats(s2.obs)).toEqual(floats(s.obs));
    expect(floats(s2.rewards.goal)).toEqual(targets.map((t) => (t === 7 ? 1 : 0)));
  });

  it('leaves final_obs rows of environments that did not end untouched', () => {
    const core = new EnvServiceCore();
    const r = vecReset(core, 'Conditional', 2, { seed: 0, options: { max_episode_steps: 2 } });
    const s = core.vecStep({ handle: r.handle, actions: actions([0, 0]) });
    expect(bytes(s.truncated)).toEqual([0, 0]);
    expect(floats(s.finalObs)).toEqual(new Array(22).fill(0));
    const s2 = core.vecStep({ handle: r.handle, actions: actions([0, 0]) });
    expect(bytes(s2.truncated)).toEqual([1, 1]);
    expect(floats(s2.finalObs)).not.toEqual(new Array(22).fill(0));
  });
});

describe('EnvServiceCore: classic control', () => {
  it('steps Pendulum-v1 with action_values, clipping out-of-bound torques as the env does', () => {
    const core = new EnvServiceCore();
    const a = reset(core, 'Pendulum-v1', { seed: 4 });
    const b = reset(core, 'Pendulum-v1', { seed: 4 });
    expect(floats(a.obs)).toEqual(floats(b.obs));
    expect(a.obs?.shape).toEqual([3]);
    const sa = core.step(actValues(a.handle, [5]));
    const sb = core.step(actValues(b.handle, [2]));
    expect(sa.terminated).toBe(false);
    expect(sa.truncated).toBe(false);
    expect(Object.keys(sa.reward?.components ?? {})).toEqual(['goal']);
    expect(floats(sa.obs)).toEqual(floats(sb.obs));
    expect(sa.reward).toEqual(sb.reward);
  });

  it('rejects a NaN or missing Box action naming action_values, and leaves the episode running', () => {
    const core = new EnvServiceCore();
    const { handle } = reset(core, 'Pendulum-v1', { seed: 0 });
    const nan = meshError(() => core.step(actValues(handle, [Number.NaN])));
    expect(nan.code).toBe(status.INVALID_ARGUMENT);
    expect(nan.message).toMatch(/^action_values: must be a number, got NaN$/);
    const none = meshError(() => core.step(act(handle, 1)));
    expect(none.code).toBe(status.INVALID_ARGUMENT);
    expect(none.message).toMatch(/^action_values: must hold 1 values for box actions, got 0$/);
    expect(meshError(() => core.step(actValues(handle, [0, 0]))).message).toMatch(/^action_values: /);
    expect(core.step(actValues(handle, [0])).truncated).toBe(false);
  });

  it('honours Pendulum-v1 options (its time limit)', () => {
    const core = new EnvServiceCore();
    const { handle } = reset(core, 'Pendulum-v1', { seed: 0, options: { max_episode_steps: 2 } });
    expect(core.step(actValues(handle, [0])).truncated).toBe(false);
    expect(core.step(actValues(handle, [0])).truncated).toBe(true);
    expect(meshError(() => core.step(actValues(handle, [0]))).code).toBe(status.FAILED_PRECONDITION);
  });

  it('runs VecStep on CartPole-v1 with int32 actions', () => {
    const core = new EnvServiceCore();
    const r = vecReset(core, 'CartPole-v1', 3, { seed: 1 });
    expect(r.obs?.shape).toEqual([3, 4]);
    expect(r.info?.actionSpace).toEqual({ kind: { $case: 'discrete', discrete: { n: 2 } } });
    let ended = 0;
    for (let t = 0; t < 60; t++) {
      const s = core.vecStep({ handle: r.handle, actions: actions([0, 1, t % 2]) });
      expect(s.obs?.shape).toEqual([3, 4]);
      expect(floats(s.rewards.goal)).toEqual([1, 1, 1]);
      ended += bytes(s.terminated).reduce((a, b) => a + b, 0);
    }
    // always pushing one way topples the pole well within 60 steps
    expect(ended).toBeGreaterThanOrEqual(2);
    const bad = meshError(() => core.vecStep({ handle: r.handle, actions: actions([0, 2, 0]) }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.message).toMatch(/^actions\[1\]: must be an integer in 0\.\.1, got 2$/);
    expect(() => core.vecStep({ handle: r.handle, actions: encodeTensor(Float32Array.from([0, 1, 0]), [3]) })).toThrow(
      'actions: must be int32, got float32',
    );
  });

  it('runs VecStep on Pendulum-v1 with [N, 1] float32 actions', () => {
    const core = new EnvServiceCore();
    const r = vecReset(core, 'Pendulum-v1', 2, { seed: 1 });
    const s = core.vecStep({ handle: r.handle, actions: encodeTensor(Float32Array.from([-9, 9]), [2, 1]) });
    expect(s.obs?.shape).toEqual([2, 3]);
    expect(floats(s.rewards.goal).every((x) => x <= 0)).toBe(true);
    const nan = meshError(() => core.vecStep({ handle: r.handle, actions: encodeTensor(Float32Array.from([0, Number.NaN]), [2, 1]) }));
    expect(nan.code).toBe(status.INVALID_ARGUMENT);
    expect(nan.message).toMatch(/^actions\[1\]: must be a number, got NaN$/);
  });
});

describe('EnvServiceCore: validation', () => {
  const core = new EnvServiceCore({ maxEnvsPerCall: 16, maxLiveEnvs: 18 });
  const single = reset(core, 'PatternEcho').handle;
  const vec = vecReset(core, 'PatternEcho', 2).handle;
  const cases: [string, () => unknown, status, RegExp][] = [
    [
      'unknown env',
      () => reset(core, 'Nope'),
      status.INVALID_ARGUMENT,
      /^env_id: unknown env "Nope"; known envs: PatternEcho, SequenceNext, Conditional, CartPole-v1, Pendulum-v1, CardRules, AffineSAT, /,
    ],
    ['unknown handle', () => core.step(act('env-x', 0)), status.NOT_FOUND, /^handle: unknown handle "env-x"/],
    ['unknown handle on close', () => core.closeEnv({ handle: 'gone' }), status.NOT_FOUND, /^handle: /],
    [
      'vec handle to Step',
      () => core.step(act(vec, 0)),
      status.FAILED_PRECONDITION,
      /^handle: .* is a vector handle; use VecReset\/VecStep$/,
    ],
    [
      'single handle to VecStep',
      () => core.vecStep({ handle: single, actions: actions([0]) }),
      status.FAILED_PRECONDITION,
      /^handle: .*single-env/,
    ],
    ['num_envs 0', () => vecReset(core, 'PatternEcho', 0), status.INVALID_ARGUMENT, /^num_envs: must be in 1\.\.16, got 0$/],
    ['num_envs too big', () => vecReset(core, 'PatternEcho', 17), status.INVALID_ARGUMENT, /^num_envs: must be in 1\.\.16, got 17$/],
    [
      'too many live envs',
      () => vecReset(core, 'PatternEcho', 16),
      status.RESOURCE_EXHAUSTED,
      /^envs: 19 live envs would exceed the limit of 18; CloseEnv unused handles$/,
    ],
    ['action out of range', () => core.step(act(single, 8)), status.INVALID_ARGUMENT, /^action: must be an integer in 0\.\.7, got 8$/],
    [
      'actions[i] out of range',
      () => core.vecStep({ handle: vec, actions: actions([0, -1]) }),
      status.INVALID_ARGUMENT,
      /^actions\[1\]: must be an integer in 0\.\.7, got -1$/,
    ],
    [
      'negative num_symbols',
      () => reset(core, 'PatternEcho', { options: { num_symbols: -1 } }),
      status.INVALID_ARGUMENT,
      /^options\.num_symbols: /,
    ],
    [
      'num_symbols > 1024',
      () => vecReset(core, 'PatternEcho', 2, { options: { num_symbols: 1025 } }),
      status.INVALID_ARGUMENT,
      /^options\.num_symbols: .*<= 1024, got 1025$/,
    ],
    [
      'max_episode_steps > 1000',
      () => reset(core, 'Conditional', { options: { max_episode_steps: 1001 } }),
      status.INVALID_ARGUMENT,
      /^options\.max_episode_steps: /,
    ],
    ['window 1', () => reset(core, 'SequenceNext', { options: { window: 1 } }), status.INVALID_ARGUMENT, /^options\.window: /],
    [
      'num_symbols not an integer',
      () => reset(core, 'PatternEcho', { options: { num_symbols: 'four' } }),
      status.INVALID_ARGUMENT,
      /^options\.num_symbols: must be an integer/,
    ],
    [
      'unknown option',
      () => reset(core, 'PatternEcho', { options: { bogus: 1 } }),
      status.INVALID_ARGUMENT,
      /^options\.bogus: unknown key/,
    ],
    [
      'unknown option to VecReset',
      () => vecReset(core, 'CartPole-v1', 2, { options: { bogus: 1 } }),
      status.INVALID_ARGUMENT,
      /^options\.bogus: unknown key/,
    ],
    [
      'difficulty out of range',
      () => reset(core, 'PatternEcho', { difficulty: 1 }),
      status.INVALID_ARGUMENT,
      /^difficulty: must be in 0\.\.0, got 1$/,
    ],
    [
      'vec difficulty out of range',
      () => vecReset(core, 'Conditional', 2, { difficulty: 3 }),
      status.INVALID_ARGUMENT,
      /^difficulty: must be in 0\.\.2/,
    ],
    [
      'seed over 32 bits',
      () => reset(core, 'PatternEcho', { seed: 2 ** 32 }),
      status.INVALID_ARGUMENT,
      /^seed: must be an integer in 0\.\.2\^32-1/,
    ],
    ['negative seed', () => reset(core, 'PatternEcho', { seed: -1 }), status.INVALID_ARGUMENT, /^seed: /],
    ['env_id differs from handle', () => reset(core, 'Conditional', { handle: single }), status.INVALID_ARGUMENT, /^env_id: /],
    [
      'num_envs differs from handle',
      () => core.vecReset({ envId: '', numEnvs: 3, handle: vec, difficulty: 0 }),
      status.INVALID_ARGUMENT,
      /^num_envs: must be 0 or 2/,
    ],
  ];
  it.each(cases)('%s', (_name, f, code, message) => {
    const e = meshError(f);
    expect(status[e.code]).toBe(status[code]);
    expect(e.message).toMatch(message);
  });

  it('rejects a malformed actions tensor with a TensorError naming actions', () => {
    const bad = [
      encodeTensor(Float32Array.from([0, 0]), [2]),
      actions([0, 0, 0]),
      encodeTensor(Int32Array.from([0, 0]), [1, 2]),
      undefined,
    ];
    for (const t of bad) expect(() => core.vecStep({ handle: vec, actions: t })).toThrow(TensorError);
    expect(() => core.vecStep({ handle: vec, actions: bad[0] })).toThrow('actions: must be int32, got float32');
  });

  it('refuses a vector env whose VecStep answer would not fit in a message', () => {
    const small = new EnvServiceCore({ maxMessageBytes: 1000 });
    const e = meshError(() => vecReset(small, 'PatternEcho', 32));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.message).toMatch(/^num_envs: 32 envs of obs_dim 8 need 2048 bytes/);
    expect(small.liveEnvs).toBe(0);
  });

  it('left no env behind for the rejected requests', () => {
    expect(core.liveEnvs).toBe(3);
    expect(core.handles.sort()).toEqual([single, vec].sort());
  });
});

describe('EnvServiceCore: lifetime', () => {
  it('closes handles and sweeps idle ones, freeing their envs', () => {
    let now = 0;
    const core = new EnvServiceCore({ now: () => now });
    const a = reset(core, 'PatternEcho').handle;
    const b = vecReset(core, 'PatternEcho', 4).handle;
    const c = reset(core, 'PatternEcho').handle;
    expect(core.liveEnvs).toBe(6);
    now = 1000;
    core.step(act(a, 0));
    now = 1500;
    expect(core.sweep(1000).sort()).toEqual([b, c].sort());
    expect(core.liveEnvs).toBe(1);
    expect(meshError(() => core.vecStep({ handle: b, actions: actions([0, 0, 0, 0]) })).code).toBe(status.NOT_FOUND);
    core.closeEnv({ handle: a });
    expect(core.liveEnvs).toBe(0);
    expect(meshError(() => core.closeEnv({ handle: a })).code).toBe(status.NOT_FOUND);
  });

  it('runs a Session: reset first, then steps; its env lives until close and is never swept', () => {
    let now = 0;
    const core = new EnvServiceCore({ now: () => now });
    const early = core.session();
    expect(meshError(() => early.handle({ request: { $case: 'step', step: act('', 0) } })).code).toBe(status.FAILED_PRECONDITION);
    expect(core.liveEnvs).toBe(0);

    const s = core.session();
    const r = s.handle({
      request: { $case: 'reset', reset: { envId: 'PatternEcho', handle: '', difficulty: 0, seed: 2, options: { max_episode_steps: 3 } } },
    });
    if (r.response?.$case !== 'reset') throw new Error('expected a reset response');
    const handle = r.response.reset.handle;
    for (let t = 1; t <= 3; t++) {
      const st = s.handle({ request: { $case: 'step', step: act('', 0) } });
      if (st.response?.$case !== 'step') throw new Error('expected a step response');
      expect(st.response.step.truncated).toBe(t === 3);
    }
    now = 1e9;
    expect(core.sweep(1)).toEqual([]);
    expect(meshError(() => core.closeEnv({ handle })).code).toBe(status.FAILED_PRECONDITION);
    expect(
      meshError(() => s.handle({ request: { $case: 'reset', reset: { envId: '', handle: 'other', difficulty: 0 } } })).message,
    ).toMatch(/^reset\.handle: /);
    s.close();
    expect(core.liveEnvs).toBe(0);
    expect(core.handles).toEqual([]);
  });
});

describe('EnvServiceCore: memory budget', () => {
  it('refuses envs whose estimated memory would pass maxLiveBytes, and takes them once handles close', () => {
    // PatternEcho with 64 symbols: 64-wide observations, 16 * 64 + 1024 = 2,048 bytes an env.
    const core = new EnvServiceCore({ maxLiveBytes: 200_000 });
    const options = { num_symbols: 64 };
    const first = vecReset(core, 'PatternEcho', 64, { options });
    const refused = meshError(() => vecReset(core, 'PatternEcho', 64, { options }));
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.message).toBe(
      'envs: these envs need about 131072 bytes and live ones hold 131072, over the limit of 200000; CloseEnv unused handles',
    );
    // Small envs still fit beside it, by bytes rather than by count.
    expect(vecReset(core, 'PatternEcho', 8).handle).toMatch(/^vec-/);
    core.closeEnv({ handle: first.handle });
    expect(vecReset(core, 'PatternEcho', 64, { options }).handle).toMatch(/^vec-/);
  });
});
