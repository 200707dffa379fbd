/**
 * EnvServiceCore: the EnvService contract (proto/rlmesh/v1/env.proto) without a transport, so that
 * its semantics are tested directly and grpc.ts stays a thin adapter. Environments live under
 * handles: Reset/Step drive one env with Gymnasium's rules (no autoreset; stepping an ended episode
 * is FAILED_PRECONDITION), VecReset/VecStep drive a VectorEnv (same-step autoreset, final obs kept).
 * Every request is validated before it reaches an env, so a bad request is answered with a status
 * naming the field, never with INTERNAL.
 */
import { randomBytes } from 'node:crypto';
import {
  ConfigError,
  checkCompletion,
  envOptions as checkedOptions,
  type Env,
  envIds,
  envSpec,
  isTextEnv,
  makeEnv,
  makeTextEnv,
  type TextEnv,
  TextInputError,
  textEnvIds,
  textEnvSpec,
  VectorEnv,
  validate,
} from '@rlmesh/core';
import '@rlmesh/envs';
import { DEFAULT_MAX_MESSAGE_BYTES, failedPrecondition, invalidArgument, notFound, resourceExhausted, spaceToProto } from '@rlmesh/mesh';
import type * as pb from '@rlmesh/proto';
import { decodeTensor, encodeTensor } from '@rlmesh/proto';

/**
 * What one environment is taken to hold: its observation in four float32 copies (its own, the
 * vector's buffers, a final observation, the reply being built) and a fixed overhead.
 */
const envBytes = (obsDim: number) => 16 * obsDim + 1024;
/** A text env holds a prompt and a completion, each at most a few KB. */
const TEXT_ENV_BYTES = 16 * 1024;

export interface EnvServiceOptions {
  /** Most environments one VecReset may create. */
  maxEnvsPerCall?: number;
  /** Most environments alive across all handles and sessions. */
  maxLiveEnvs?: number;
  /**
   * Most memory live environments may hold, estimated from their observation sizes (default 1 GiB):
   * a count alone lets a few handles of wide observations take gigabytes.
   */
  maxLiveBytes?: number;
  /** Largest response message; VecReset refuses sizes whose VecStep answer would not fit. */
  maxMessageBytes?: number;
  /** Injected so that idle sweeping is testable without waiting. */
  now?: () => number;
}

interface EntryBase {
  info: pb.EnvInfo;
  /** Estimated memory of the entry's environments (envBytes). */
  bytes: number;
  lastUsed: number;
  /** Owned by a Session stream: closed with the stream, never swept. */
  pinned: boolean;
}

interface SingleEntry extends EntryBase {
  kind: 'single';
  env: Env;
  obs: Float32Array;
  rewards: Record<string, Float32Array>;
  ended: boolean;
}

interface VecEntry extends EntryBase {
  kind: 'vec';
  vec: VectorEnv;
}

/** A text env: prompts in, completions out, through Reset/Step and Session only. */
interface TextEntry extends EntryBase {
  kind: 'text';
  env: TextEnv;
  ended: boolean;
}

type Entry = SingleEntry | VecEntry | TextEntry;

/** One Session stream's state machine: feed it each message, close it when the stream goes away. */
export interface EnvSession {
  handle(msg: pb.SessionRequest): pb.SessionResponse;
  close(): void;
}

function envInfo(id: string, e: Env): pb.EnvInfo {
  const spec = envSpec(id);
  return {
    id,
    observationSpace: spaceToProto(e.observationSpace),
    actionSpace: spaceToProto(e.actionSpace),
    rewardComponents: [...e.rewardComponents],
    numLevels: e.numLevels,
    description: spec.description,
    optionsSchema: JSON.stringify(spec.options),
  };
}

function textEnvInfo(id: string, e: TextEnv): pb.EnvInfo {
  const spec = textEnvSpec(id);
  return {
    id,
    rewardComponents: [...e.rewardComponents],
    numLevels: e.numLevels,
    description: spec.description,
    optionsSchema: JSON.stringify(spec.options),
    text: true,
    maxCompletionBytes: e.maxCompletionBytes,
  };
}

/** Request options -> the env's validated options; a bad or unknown option is INVALID_ARGUMENT naming it. */
function envOptions(envId: string, options: Record<string, unknown> | undefined): Record<string, unknown> {
  try {
    if (isTextEnv(envId)) return validate(textEnvSpec(envId).options, options ?? {}, 'options');
    return checkedOptions(envId, options ?? {}, 'options');
  } catch (e) {
    if (e instanceof ConfigError) throw invalidArgument(e.key, e.rule);
    throw e;
  }
}

/** An env id is a value chosen from a fixed set, so one outside it is a bad argument (NOT_FOUND is for handles). */
function checkEnvId(id: string): void {
  const known = [...envIds(), ...textEnvIds()];
  if (!known.includes(id)) throw invalidArgument('env_id', `unknown env ${JSON.stringify(id)}; known envs: ${known.join(', ')}`);
}

function checkSeed(seed: number | undefined): number | undefined {
  // The wire type is uint32; in-process callers are held to the same range.
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32))
    throw invalidArgument('seed', `must be an integer in 0..2^32-1, got ${seed}`);
  return seed;
}

function checkDifficulty(d: number, numLevels: number): number {
  if (!Number.isInteger(d) || d < 0 || d >= numLevels) throw invalidArgument('difficulty', `must be in 0..${numLevels - 1}, got ${d}`);
  return d;
}

/** Checks action values against the space: discrete values in range, Box values not NaN (out of bounds is clipped by the env). */
function checkActions(field: string, values: ArrayLike<number>, space: Env['actionSpace'], rows: number): void {
  const k = space.flatSize;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const v = values[r * k + j];
      const at = rows > 1 || k > 1 ? `${field}[${rows > 1 ? `${r}${k > 1 ? `, ${j}` : ''}` : j}]` : field;
      if (space.kind === 'box') {
        if (Number.isNaN(v)) throw invalidArgument(at, 'must be a number, got NaN');
        continue;
      }
      const n = space.kind === 'discrete' ? space.n : space.kind === 'multi_discrete' ? space.nvec[j] : space.vocabSize;
      if (!(Number.isInteger(v) && v >= 0 && v < n)) throw invalidArgument(at, `must be an integer in 0..${n - 1}, got ${v}`);
    }
  }
}

export class EnvServiceCore {
  readonly maxEnvsPerCall: number;
  readonly maxLiveEnvs: number;
  readonly maxLiveBytes: number;
  private readonly maxMessageBytes: number;
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();
  private live = 0;
  private liveBytes = 0;

  constructor(opts: EnvServiceOptions = {}) {
    this.maxEnvsPerCall = opts.maxEnvsPerCall ?? 4096;
    this.maxLiveEnvs = opts.maxLiveEnvs ?? 65536;
    this.maxLiveBytes = opts.maxLiveBytes ?? 1024 ** 3;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.now = opts.now ?? Date.now;
  }

  /** Environments alive across all handles. */
  get liveEnvs(): number {
    return this.live;
  }

  get handles(): string[] {
    return [...this.entries.keys()];
  }

  listEnvs(_req: pb.ListEnvsRequest): pb.ListEnvsResponse {
    const text = textEnvIds().map((id) => textEnvInfo(id, makeTextEnv(id, {})));
    return { envs: [...envIds().map((id) => envInfo(id, makeEnv(id, {}))), ...text] };
  }

  reset(req: pb.ResetRequest): pb.ResetResponse {
    return this.resetSingle(req, false);
  }

  step(req: pb.StepRequest): pb.StepResponse {
    const found = this.entries.get(req.handle);
    if (found?.kind === 'text') return this.stepText(found, req);
    const e = this.entry(req.handle, 'single');
    if (e.ended) throw failedPrecondition('handle', `${req.handle}: episode ended; call Reset`);
    if (req.completion) throw invalidArgument('completion', `must be empty: ${e.info.id} takes numeric actions`);
    const space = e.env.actionSpace;
    let action: Int32Array | Float32Array;
    if (space.kind === 'discrete') {
      checkActions('action', [req.action], space, 1);
      action = Int32Array.of(req.action);
    } else {
      const field = 'action_values';
      if (req.actionValues.length !== space.flatSize)
        throw invalidArgument(field, `must hold ${space.flatSize} values for ${space.kind} actions, got ${req.actionValues.length}`);
      checkActions(field, req.actionValues, space, 1);
      action = space.dtype === 'float32' ? Float32Array.from(req.actionValues) : Int32Array.from(req.actionValues);
    }
    const s = e.env.stepInto(action, 0, e.obs, 0, e.rewards, 0);
    e.ended = s.terminated || s.truncated;
    const components = Object.fromEntries(Object.entries(e.rewards).map(([c, r]) => [c, r[0]]));
    const obs = encodeTensor(e.obs.slice(), [e.obs.length]);
    return { obs, reward: { components }, terminated: s.terminated, truncated: s.truncated, success: s.success };
  }

  private stepText(e: TextEntry, req: pb.StepRequest): pb.StepResponse {
    e.lastUsed = this.now();
    if (e.ended) throw failedPrecondition('handle', `${req.handle}: episode ended; call Reset`);
    if (req.actionValues?.length) throw invalidArgument('action_values', `must be empty: ${e.info.id} is a text env; send completion`);
    let completion: string;
    try {
      completion = checkCompletion(req.completion ?? '', e.env.maxCompletionBytes);
    } catch (err) {
      if (err instanceof TextInputError) throw invalidArgument(err.field, err.rule);
      throw err;
    }
    const s = e.env.step(completion);
    e.ended = s.terminated || s.truncated;
    return {
      reward: { components: s.reward },
      terminated: s.terminated,
      truncated: s.truncated,
      success: s.success,
      prompt: s.prompt,
      parsedAnswer: s.parsed ?? '',
    };
  }

  vecReset(req: pb.VecResetRequest): pb.VecResetResponse {
    const seed = checkSeed(req.seed);
    let handle = req.handle;
    let e: VecEntry;
    if (handle) {
      e = this.entry(handle, 'vec');
      if (req.numEnvs !== 0 && req.numEnvs !== e.vec.size)
        throw invalidArgument('num_envs', `must be 0 or ${e.vec.size} (the size of ${handle}), got ${req.numEnvs}`);
      this.checkSameEnv(req.envId, e.info.id);
    } else {
      const n = req.numEnvs;
      if (!Number.isInteger(n) || n < 1 || n > this.maxEnvsPerCall)
        throw invalidArgument('num_envs', `must be in 1..${this.maxEnvsPerCall}, got ${n}`);
      checkEnvId(req.envId);
      if (isTextEnv(req.envId)) throw failedPrecondition('env_id', `${req.envId} is a text env; use Reset/Step or Session`);
      const opts = envOptions(req.envId, req.options);
      this.reserve(n, 0);
      const first = makeEnv(req.envId, opts);
      // VecStep answers obs and final_obs, each [N, obs_dim] float32, in one message.
      const bytes = 2 * n * first.obsDim * 4;
      if (bytes > this.maxMessageBytes)
        throw invalidArgument(
          'num_envs',
          `${n} envs of obs_dim ${first.obsDim} need ${bytes} bytes per VecStep, over ${this.maxMessageBytes}`,
        );
      checkDifficulty(req.difficulty, first.numLevels);
      const size = n * envBytes(first.obsDim);
      this.reserve(n, size);
      const envs = [first, ...Array.from({ length: n - 1 }, () => makeEnv(req.envId, opts))];
      handle = `vec-${randomBytes(8).toString('hex')}`;
      e = { kind: 'vec', vec: new VectorEnv(envs), info: envInfo(req.envId, first), bytes: size, lastUsed: 0, pinned: false };
      this.entries.set(handle, e);
      this.live += n;
      this.liveBytes += size;
    }
    e.lastUsed = this.now();
    const difficulty = checkDifficulty(req.difficulty, e.vec.numLevels);
    const obs = e.vec.reset(seed, { difficulty }).slice();
    return { handle, obs: encodeTensor(obs, [e.vec.size, e.vec.obsDim]), info: e.info };
  }

  vecStep(req: pb.VecStepRequest): pb.VecStepResponse {
    const e = this.entry(req.handle, 'vec');
    const { size: n, obsDim: d, actionSpace: space } = e.vec;
    const shape = space.kind === 'discrete' ? [n] : [n, space.flatSize];
    const actions =
      space.dtype === 'float32'
        ? decodeTensor('actions', req.actions, { dtype: 'float32', shape }).data
        : decodeTensor('actions', req.actions, { dtype: 'int32', shape }).data;
    checkActions('actions', actions, space, n);
    // VectorEnv reuses its output arrays on the next step: copy what leaves this call.
    const r = e.vec.step(actions);
    return {
      obs: encodeTensor(r.obs.slice(), [n, d]),
      rewards: Object.fromEntries(Object.entries(r.rewards).map(([c, v]) => [c, encodeTensor(v.slice(), [n])])),
      terminated: encodeTensor(r.terminated.slice(), [n]),
      truncated: encodeTensor(r.truncated.slice(), [n]),
      success: encodeTensor(r.success.slice(), [n]),
      finalObs: encodeTensor(r.finalObs.slice(), [n, d]),
    };
  }

  closeEnv(req: pb.CloseEnvRequest): pb.CloseEnvResponse {
    const e = this.entries.get(req.handle);
    if (!e) throw notFound('handle', `unknown handle ${JSON.stringify(req.handle)}`);
    if (e.pinned) throw failedPrecondition('handle', `${req.handle} belongs to a Session; it closes with the stream`);
    this.remove(req.handle);
    return {};
  }

  /** Removes handles unused for longer than `maxIdleMs` (clients that vanished without CloseEnv). */
  sweep(maxIdleMs: number): string[] {
    const cutoff = this.now() - maxIdleMs;
    const gone = [...this.entries].filter(([, e]) => !e.pinned && e.lastUsed < cutoff).map(([h]) => h);
    for (const h of gone) this.remove(h);
    return gone;
  }

  session(): EnvSession {
    let handle: string | undefined;
    return {
      handle: (msg) => {
        const r = msg.request;
        if (!r) throw invalidArgument('request', 'must be a reset or a step');
        if (r.$case === 'reset') {
          if (r.reset.handle && r.reset.handle !== handle)
            throw invalidArgument('reset.handle', 'must be empty: a Session owns the one environment it creates');
          const reset = this.resetSingle({ ...r.reset, handle: handle ?? '' }, true);
          handle = reset.handle;
          return { response: { $case: 'reset', reset } };
        }
        if (handle === undefined) throw failedPrecondition('request', 'the first message of a Session must be a reset');
        if (r.step.handle && r.step.handle !== handle) throw invalidArgument('step.handle', `must be empty or ${handle}`);
        return { response: { $case: 'step', step: this.step({ ...r.step, handle }) } };
      },
      close: () => {
        if (handle !== undefined) this.remove(handle);
        handle = undefined;
      },
    };
  }

  private resetSingle(req: pb.ResetRequest, pinned: boolean): pb.ResetResponse {
    const seed = checkSeed(req.seed);
    const found = req.handle ? this.entries.get(req.handle) : undefined;
    if (found?.kind === 'text' || (!req.handle && isTextEnv(req.envId))) return this.resetText(req, seed, pinned);
    let handle = req.handle;
    let e: SingleEntry;
    if (handle) {
      e = this.entry(handle, 'single');
      this.checkSameEnv(req.envId, e.info.id);
    } else {
      checkEnvId(req.envId);
      const opts = envOptions(req.envId, req.options);
      this.reserve(1, 0);
      const env = makeEnv(req.envId, opts);
      checkDifficulty(req.difficulty, env.numLevels);
      const bytes = envBytes(env.obsDim);
      this.reserve(1, bytes);
      const rewards = Object.fromEntries(env.rewardComponents.map((c) => [c, new Float32Array(1)]));
      handle = `env-${randomBytes(8).toString('hex')}`;
      const obs = new Float32Array(env.obsDim);
      e = { kind: 'single', env, info: envInfo(req.envId, env), obs, rewards, ended: true, bytes, lastUsed: 0, pinned };
      this.entries.set(handle, e);
      this.live += 1;
      this.liveBytes += bytes;
    }
    e.lastUsed = this.now();
    e.env.resetInto(e.obs, 0, seed, { difficulty: checkDifficulty(req.difficulty, e.env.numLevels) });
    e.ended = false;
    return { handle, obs: encodeTensor(e.obs.slice(), [e.obs.length]), info: e.info };
  }

  private resetText(req: pb.ResetRequest, seed: number | undefined, pinned: boolean): pb.ResetResponse {
    let handle = req.handle;
    let e: TextEntry;
    if (handle) {
      e = this.entry(handle, 'text');
      this.checkSameEnv(req.envId, e.info.id);
    } else {
      const opts = envOptions(req.envId, req.options);
      this.reserve(1, TEXT_ENV_BYTES);
      const env = makeTextEnv(req.envId, opts);
      checkDifficulty(req.difficulty, env.numLevels);
      handle = `env-${randomBytes(8).toString('hex')}`;
      e = { kind: 'text', env, info: textEnvInfo(req.envId, env), ended: true, bytes: TEXT_ENV_BYTES, lastUsed: 0, pinned };
      this.entries.set(handle, e);
      this.live += 1;
      this.liveBytes += TEXT_ENV_BYTES;
    }
    e.lastUsed = this.now();
    const prompt = e.env.reset(seed, { difficulty: checkDifficulty(req.difficulty, e.env.numLevels) });
    e.ended = false;
    return { handle, info: e.info, prompt };
  }

  private entry(handle: string, kind: 'single'): SingleEntry;
  private entry(handle: string, kind: 'vec'): VecEntry;
  private entry(handle: string, kind: 'text'): TextEntry;
  private entry(handle: string, kind: Entry['kind']): Entry {
    if (!handle) throw invalidArgument('handle', 'is required');
    const e = this.entries.get(handle);
    if (!e) throw notFound('handle', `unknown handle ${JSON.stringify(handle)} (closed, idle too long, or never created)`);
    const [what, use] = e.kind === 'vec' ? ['vector', 'VecReset/VecStep'] : [e.kind === 'text' ? 'text-env' : 'single-env', 'Reset/Step'];
    if (e.kind !== kind) throw failedPrecondition('handle', `${handle} is a ${what} handle; use ${use}`);
    e.lastUsed = this.now();
    return e;
  }

  private checkSameEnv(envId: string, actual: string): void {
    if (envId && envId !== actual)
      throw invalidArgument('env_id', `must be empty or ${actual} (the handle's env), got ${JSON.stringify(envId)}`);
  }

  private reserve(n: number, bytes: number): void {
    if (this.live + n > this.maxLiveEnvs)
      throw resourceExhausted('envs', `${this.live + n} live envs would exceed the limit of ${this.maxLiveEnvs}; CloseEnv unused handles`);
    if (this.liveBytes + bytes > this.maxLiveBytes)
      throw resourceExhausted(
        'envs',
        `these envs need about ${bytes} bytes and live ones hold ${this.liveBytes}, over the limit of ${this.maxLiveBytes}; CloseEnv unused handles`,
      );
  }

  private remove(handle: string): void {
    const e = this.entries.get(handle);
    if (!e) return;
    this.entries.delete(handle);
    this.live -= e.kind === 'vec' ? e.vec.size : 1;
    this.liveBytes -= e.bytes;
  }
}
