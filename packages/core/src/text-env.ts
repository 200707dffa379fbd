/**
 * Text environments: the observation is a prompt string and the action a completion string, with
 * the same episode rules as Env (seeding only in reset; terminated / truncated; stepping an ended
 * episode throws). Episodes are one step by default: the completion is scored and the episode is
 * terminated. A TextEnv is a task (how to draw a problem, its prompt, how to score a completion)
 * behind this class, which owns the generator, the episode state and the input checks.
 *
 * Token policies use a TextEnv through a tokenizer: encode the prompt, generate, decode the new
 * tokens, and step with the decoded string. The environment never sees token ids, so one game
 * serves every tokenizer and checkpoint.
 *
 * Text environments register in their own registry (registerTextEnv) because the numeric Env
 * contract (flat float32 observations in VectorEnv buffers) does not fit strings; ids are unique
 * across both registries, so EnvService resolves an id without ambiguity.
 */
import { ConfigError, type Infer, type Schema, validate } from './config';
import type { ResetOptions, StepFlags } from './env';
import { envIds } from './registry';
import { Rng, type RngState } from './rng';

/** A completion or prompt that breaks a stated rule; `field` names the offending input. */
export class TextInputError extends Error {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
    this.name = 'TextInputError';
  }
}

/** What a verifier makes of one completion. */
export interface Verdict {
  /** Reward components (every name in the task's `rewardComponents`). */
  reward: Record<string, number>;
  /** The task's own success flag: the parsed answer was correct. */
  success: boolean;
  /** The answer the verifier parsed out of the completion, or null when none could be parsed. */
  parsed: string | null;
}

/** What a multi-turn task makes of one action. */
export interface Turn extends Verdict {
  /**
   * The environment's reply, appended to the conversation right after the action (the task writes
   * its own separators, e.g. "\nObservation: ...\nAction:").
   */
  observation: string;
  /** The task reached a terminal state (goal reached, or failed for good); the time limit is the env's. */
  done: boolean;
}

/** A drawn problem: its prompt and whatever the task needs to score a completion. */
export interface TextProblem {
  prompt: string;
}

/** A text task: draws problems and scores completions. Pure: all randomness comes from `rng`. */
export interface TextTask<P extends TextProblem> {
  readonly name: string;
  readonly rewardComponents: readonly string[];
  /** Curriculum levels (1 when there is none). */
  readonly numLevels: number;
  /**
   * A problem from `rng`. `seed` is the seed reset was given (undefined when reset continues the
   * generator), for tasks whose episodes are a fixed list indexed by it rather than fresh draws.
   */
  draw(rng: Rng, level: number, seed?: number): P;
  verify(problem: P, completion: string): Verdict;
}

/**
 * A multi-turn text task: the problem is the world's state (plain data, so snapshots can clone it)
 * and each completion is one action that `act` applies to it, mutating it. Seen by a policy, an
 * episode is one conversation: the prompt, then per turn the action and the environment's reply;
 * every next prompt is that conversation so far, and every completion is the next action.
 */
export interface MultiTurnTextTask<P extends TextProblem> {
  readonly name: string;
  readonly rewardComponents: readonly string[];
  readonly numLevels: number;
  draw(rng: Rng, level: number, seed?: number): P;
  /** Applies one action; an invalid action is a turn with a reply saying why, never an exception. */
  act(problem: P, action: string): Turn;
}

export interface TextStep extends StepFlags {
  reward: Record<string, number>;
  /** The next prompt of a multi-turn episode (the conversation so far); '' once the episode has ended. */
  prompt: string;
  /** A multi-turn task's reply to this action ('' for single-turn tasks). */
  observation: string;
  parsed: string | null;
}

/** The largest completion a text env accepts by default, in UTF-8 bytes. */
export const DEFAULT_MAX_COMPLETION_BYTES = 4096;

const utf8 = new TextEncoder();
// With the u flag a paired surrogate is one code point, so this matches only lone halves, which
// no UTF-8 text can hold (a JS string can).
const LONE_SURROGATE = /\p{Cs}/u;
const REPLACEMENT = '\uFFFD';

/**
 * Checks a completion before any verifier sees it: a string, not empty, valid Unicode without
 * U+FFFD, at most `maxBytes` UTF-8 bytes. Throws TextInputError naming `field` and the rule. A token
 * policy decodes its completion strictly (or drops a trailing partial character) before stepping.
 */
export function checkCompletion(completion: unknown, maxBytes: number, field = 'completion'): string {
  if (typeof completion !== 'string') throw new TextInputError(field, `must be a string, got ${typeof completion}`);
  if (completion.length === 0) throw new TextInputError(field, 'must not be empty');
  if (LONE_SURROGATE.test(completion)) throw new TextInputError(field, 'must be valid Unicode (it holds a lone surrogate)');
  // Protobuf and TextDecoder put U+FFFD where bytes were not UTF-8; refusing it is how invalid
  // bytes sent over gRPC come back as an error instead of a silently wrong answer.
  if (completion.includes(REPLACEMENT))
    throw new TextInputError(field, 'must be valid UTF-8 (it holds U+FFFD, the mark of undecodable bytes)');
  const bytes = utf8.encode(completion).length;
  if (bytes > maxBytes) throw new TextInputError(field, `must be at most ${maxBytes} UTF-8 bytes, got ${bytes}`);
  return completion;
}

export class TextEnv<P extends TextProblem = TextProblem> {
  readonly rewardComponents: readonly string[];
  readonly numLevels: number;
  private rng = new Rng(0);
  private problem: P | null = null;
  private steps = 0;
  private level = 0;
  private conversation = '';

  constructor(
    readonly task: TextTask<P> | MultiTurnTextTask<P>,
    readonly maxEpisodeSteps = 1,
    readonly maxCompletionBytes = DEFAULT_MAX_COMPLETION_BYTES,
  ) {
    if (!Number.isInteger(maxEpisodeSteps) || maxEpisodeSteps < 1)
      throw new Error(`maxEpisodeSteps must be a positive integer, got ${maxEpisodeSteps}`);
    if (!Number.isInteger(maxCompletionBytes) || maxCompletionBytes < 1)
      throw new Error(`maxCompletionBytes must be a positive integer, got ${maxCompletionBytes}`);
    this.rewardComponents = task.rewardComponents;
    this.numLevels = task.numLevels;
  }

  /** The problem under way (null between episodes): for evaluators and tests, not for policies. */
  get current(): P | null {
    return this.problem;
  }

  /** Starts an episode and returns its prompt. A seed re-seeds the generator; without one it continues. */
  reset(seed?: number, options: ResetOptions = {}): string {
    if (seed !== undefined) this.rng = new Rng(seed);
    const level = options.difficulty ?? this.level;
    if (!Number.isInteger(level) || level < 0 || level >= this.numLevels)
      throw new Error(`reset: difficulty must be an integer in [0, ${this.numLevels - 1}] for ${this.task.name}, got ${level}`);
    this.level = level;
    this.problem = this.task.draw(this.rng, level, seed);
    this.steps = 0;
    this.conversation = this.problem.prompt;
    return this.problem.prompt;
  }

  /**
   * Scores a completion. Single-turn tasks: the episode is terminated once the verifier finds the
   * answer correct or the steps reach maxEpisodeSteps (one by default, so one completion ends it); a
   * multi-step episode shows the same prompt again. Multi-turn tasks: terminated when the task says
   * done, truncated when maxEpisodeSteps actions did not get there (never both), and the next prompt
   * is the conversation so far. Bad completions throw TextInputError naming `completion`.
   */
  step(completion: string): TextStep {
    if (this.problem === null) throw new Error('step: the episode has ended or was never started; call reset first');
    checkCompletion(completion, this.maxCompletionBytes);
    this.steps++;
    if ('act' in this.task) {
      const t = this.task.act(this.problem, completion);
      const truncated = !t.done && this.steps >= this.maxEpisodeSteps;
      this.conversation += completion + t.observation;
      const ended = t.done || truncated;
      if (ended) this.problem = null;
      const prompt = ended ? '' : this.conversation;
      return { reward: t.reward, success: t.success, parsed: t.parsed, terminated: t.done, truncated, prompt, observation: t.observation };
    }
    const v = this.task.verify(this.problem, completion);
    const terminated = v.success || this.steps >= this.maxEpisodeSteps;
    const prompt = terminated ? '' : this.problem.prompt;
    if (terminated) this.problem = null;
    return { reward: v.reward, success: v.success, parsed: v.parsed, terminated, truncated: false, prompt, observation: '' };
  }

  snapshot(): unknown {
    return {
      rng: this.rng.state(),
      problem: structuredClone(this.problem),
      steps: this.steps,
      level: this.level,
      conversation: this.conversation,
    };
  }

  restore(saved: unknown): void {
    const s = saved as { rng: RngState; problem: P | null; steps: number; level: number; conversation?: string };
    this.rng = Rng.fromState(s.rng);
    this.problem = structuredClone(s.problem);
    this.steps = s.steps;
    this.level = s.level;
    this.conversation = s.conversation ?? s.problem?.prompt ?? '';
  }
}

export interface TextEnvSpec<S extends Schema = Schema> {
  id: string;
  /** One line for listings. */
  description: string;
  options: S;
  make(options: Infer<S>): TextEnv;
}

const TEXT_ENVS = new Map<string, TextEnvSpec<Schema>>();

export function registerTextEnv<S extends Schema>(spec: TextEnvSpec<S>): void {
  if (TEXT_ENVS.has(spec.id) || envIds().includes(spec.id)) throw new Error(`registerTextEnv: env "${spec.id}" is already registered`);
  TEXT_ENVS.set(spec.id, spec as unknown as TextEnvSpec<Schema>);
}

export function textEnvIds(): string[] {
  return [...TEXT_ENVS.keys()];
}

export function isTextEnv(id: string): boolean {
  return TEXT_ENVS.has(id);
}

/** The spec of text env `id`; an unknown id is a ConfigError at `key` listing the known ones. */
export function textEnvSpec(id: string, key = 'env.id'): TextEnvSpec<Schema> {
  const spec = TEXT_ENVS.get(id);
  if (!spec)
    throw new ConfigError(
      key,
      `unknown text env ${JSON.stringify(id)}; known text envs: ${textEnvIds().join(', ') || '(none registered)'}`,
    );
  return spec;
}

/** One text environment of `id`; options are validated (errors name `<prefix>.<option>`). */
export function makeTextEnv(id: string, options: unknown = {}, prefix = 'env.options'): TextEnv {
  const spec = textEnvSpec(id);
  const valid = validate(spec.options, options ?? {}, prefix);
  try {
    return spec.make(valid);
  } catch (e) {
    // A rule across options is checked by make, which knows the option's name but not where it sits.
    if (e instanceof ConfigError && !e.key.startsWith(`${prefix}.`)) throw new ConfigError(`${prefix}.${e.key}`, e.rule);
    throw e;
  }
}
