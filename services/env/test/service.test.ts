/**
 * EnvServiceCore without a transport: Gymnasium semantics through handles, vector autoreset with
 * final observations, idle sweeping, the Session state machine, and that every bad request is a
 * MeshError with the right code and a message naming the field (never a plain Error, which the
 * server would answer as INTERNAL).
 */
import { status } from '@grpc/grpc-js';
import { MeshError } from '@rlmesh/mesh';
import { decodeTensor, type EnvConfig, encodeTensor, type Tensor, TensorError } from '@rlmesh/proto';
import { describe, expect, it } from 'vitest';
import { EnvServiceCore } from '../src';

const floats = (t: Tensor | undefined) => Array.from(decodeTensor('t', t, { dtype: 'float32', shape: t?.shape ?? [] }).data);
const bytes = (t: Tensor | undefined) => Array.from(decodeTensor('t', t, { dtype: 'uint8', shape: [-1] }).data);
const cfg = (c: Partial<EnvConfig>): EnvConfig => ({ numSymbols: 0, maxEpisodeSteps: 0, window: 0, ...c });
const reset = (
  core: EnvServiceCore,
  envId: string,
  extra: { seed?: number; difficulty?: number; handle?: string; config?: EnvConfig } = {},
) => core.reset({ envId, handle: '', difficulty: 0, ...extra });
const vecReset = (
  core: EnvServiceCore,
  envId: string,
  numEnvs: number,
  extra: { seed?: number; config?: EnvConfig; difficulty?: number } = {},
) => core.vecReset({ envId, numEnvs, handle: '', difficulty: 0, ...extra });
const actions = (a: number[]) => encodeTensor(Int32Array.from(a), [a.length]);

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
  it('lists every env with its spaces as proto oneofs', () => {
    const { envs } = new EnvServiceCore().listEnvs({ config: cfg({ numSymbols: 5 }) });
    expect(envs.map((e) => e.id)).toEqual(['PatternEcho', 'SequenceNext', 'Conditional']);
    const cond = envs[2];
    expect(cond.actionSpace).toEqual({ kind: { $case: 'discrete', discrete: { n: 5 } } });
    expect(cond.observationSpace).toEqual({ kind: { $case: 'box', box: { shape: [8], low: 0, high: 1 } } });
    expect(cond.rewardComponents).toEqual(['goal', 'pred']);
    expect(cond.numLevels).toBe(3);
  });

  it('is deterministic under a seed, through handles', () => {
    const core = new EnvServiceCore();
    const run = (seed: number) => {
      const r = reset(core, 'SequenceNext', { seed, difficulty: 2, config: cfg({ maxEpisodeSteps: 4 }) });
      expect(r.obs?.shape).toEqual([24]);
      const obs = [floats(r.obs)];
      for (let t = 0; t < 4; t++) obs.push(floats(core.step({ handle: r.handle, action: t }).obs));
      return obs;
    };
    expect(run(11)).toEqual(run(11));
    expect(run(11)).not.toEqual(run(12));
    expect(core.liveEnvs).toBe(4);
  });

  it('answers the episode end, then FAILED_PRECONDITION until Reset', () => {
    const core = new EnvServiceCore();
    const { handle, obs } = reset(core, 'PatternEcho', { seed: 1, config: cfg({ maxEpisodeSteps: 2 }) });
    const target = floats(obs).indexOf(1);
    const s1 = core.step({ handle, action: target });
    expect(s1).toMatchObject({ terminated: false, truncated: false, success: true, reward: { components: { goal: 1, pred: 0 } } });
    const s2 = core.step({ handle, action: (floats(s1.obs).indexOf(1) + 1) % 8 });
    expect(s2).toMatchObject({ truncated: true, success: false, reward: { components: { goal: 0, pred: 0 } } });
    const e = meshError(() => core.step({ handle, action: 0 }));
    expect(e.code).toBe(status.FAILED_PRECONDITION);
    expect(e.message).toBe(`handle: ${handle}: episode ended; call Reset`);
    expect(reset(core, '', { handle, seed: 1 }).handle).toBe(handle);
    expect(core.step({ handle, action: 0 }).truncated).toBe(false);
  });

  it('keeps each response independent of later steps (buffers are reused inside)', () => {
    const core = new EnvServiceCore();
    const r = reset(core, 'PatternEcho', { seed: 3, config: cfg({ maxEpisodeSteps: 10 }) });
    const first = floats(r.obs);
    for (let t = 0; t < 5; t++) core.step({ handle: r.handle, action: 0 });
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
    const r = vecReset(core, 'Conditional', 2, { seed: 0, config: cfg({ maxEpisodeSteps: 2 }) });
    const s = core.vecStep({ handle: r.handle, actions: actions([0, 0]) });
    expect(bytes(s.truncated)).toEqual([0, 0]);
    expect(floats(s.finalObs)).toEqual(new Array(22).fill(0));
    const s2 = core.vecStep({ handle: r.handle, actions: actions([0, 0]) });
    expect(bytes(s2.truncated)).toEqual([1, 1]);
    expect(floats(s2.finalObs)).not.toEqual(new Array(22).fill(0));
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
      status.NOT_FOUND,
      /^env_id: unknown env "Nope"; known envs: PatternEcho, SequenceNext, Conditional$/,
    ],
    ['unknown handle', () => core.step({ handle: 'env-x', action: 0 }), status.NOT_FOUND, /^handle: unknown handle "env-x"/],
    ['unknown handle on close', () => core.closeEnv({ handle: 'gone' }), status.NOT_FOUND, /^handle: /],
    [
      'vec handle to Step',
      () => core.step({ handle: vec, action: 0 }),
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
    ['action out of range', () => core.step({ handle: single, action: 8 }), status.INVALID_ARGUMENT, /^action: must be in 0\.\.7, got 8$/],
    [
      'actions[i] out of range',
      () => core.vecStep({ handle: vec, actions: actions([0, -1]) }),
      status.INVALID_ARGUMENT,
      /^actions\[1\]: must be in 0\.\.7, got -1$/,
    ],
    [
      'negative num_symbols',
      () => reset(core, 'PatternEcho', { config: cfg({ numSymbols: -1 }) }),
      status.INVALID_ARGUMENT,
      /^config\.num_symbols: /,
    ],
    [
      'num_symbols > 1024',
      () => core.listEnvs({ config: cfg({ numSymbols: 1025 }) }),
      status.INVALID_ARGUMENT,
      /^config\.num_symbols: .*1\.\.1024, got 1025$/,
    ],
    [
      'max_episode_steps > 1000',
      () => reset(core, 'Conditional', { config: cfg({ maxEpisodeSteps: 1001 }) }),
      status.INVALID_ARGUMENT,
      /^config\.max_episode_steps: /,
    ],
    ['window 1', () => reset(core, 'SequenceNext', { config: cfg({ window: 1 }) }), status.INVALID_ARGUMENT, /^config\.window: /],
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
    core.step({ handle: a, action: 0 });
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
    expect(meshError(() => early.handle({ request: { $case: 'step', step: { handle: '', action: 0 } } })).code).toBe(
      status.FAILED_PRECONDITION,
    );
    expect(core.liveEnvs).toBe(0);

    const s = core.session();
    const r = s.handle({
      request: { $case: 'reset', reset: { envId: 'PatternEcho', handle: '', difficulty: 0, seed: 2, config: cfg({ maxEpisodeSteps: 3 }) } },
    });
    if (r.response?.$case !== 'reset') throw new Error('expected a reset response');
    const handle = r.response.reset.handle;
    for (let t = 1; t <= 3; t++) {
      const st = s.handle({ request: { $case: 'step', step: { handle: '', action: 0 } } });
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
