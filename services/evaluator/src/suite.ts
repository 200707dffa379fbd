/**
 * An evaluation suite: environments with their options, how many episodes each, from which seed,
 * under which split label (ID, OOD or any name) and with what weight in the aggregates. Suites are
 * YAML files (configs/suites/) or the same object sent to the EvaluatorService. An entry's env is a
 * numeric env (a policy acts in it) or a text env (a language model completes its prompts, with at
 * most max_new_tokens tokens). Every error is a
 * ConfigError naming the key, e.g. `entries[1].episodes: must be an integer >= 1, got 0`.
 */
import { readFileSync } from 'node:fs';
import {
  ConfigError,
  envOptions,
  envSpec,
  type Infer,
  isTextEnv,
  makeEnv,
  makeTextEnv,
  parseConfigText,
  type Schema,
  textEnvIds,
  textEnvSpec,
  validate,
} from '@rlmesh/core';
import '@rlmesh/envs';

export interface SuiteEntry {
  name: string;
  env: { id: string; options: Record<string, unknown> };
  episodes: number;
  seed: number;
  split: string;
  weight: number;
  /** Steps after which an episode still running is cut and counted as a failure. */
  max_steps?: number;
  /** Curriculum level (the env's reset difficulty) every episode starts at; 0 when absent. */
  level?: number;
  /** Text envs only: the most tokens a completion may have (always set for them). */
  max_new_tokens?: number;
}

/** A completion's token budget when a text entry sets none: the card game's answers take two or three. */
export const DEFAULT_MAX_NEW_TOKENS = 8;

export interface Suite {
  name: string;
  mode: 'greedy' | 'sampled';
  entries: SuiteEntry[];
}

/** Highest seed + episodes: seeds stay within the 31 bits every generator takes. */
const MAX_SEED = 2 ** 31 - 1;

const SUITE_SCHEMA = {
  name: { kind: 'string', doc: 'names the suite in results and reports' },
  mode: {
    kind: 'string',
    default: 'greedy',
    oneOf: ['greedy', 'sampled'],
    doc: 'greedy: the mode of the action distribution; sampled: a seeded draw',
  },
} as const satisfies Schema;

const ENTRY_SCHEMA = {
  name: { kind: 'string', doc: 'unique within the suite' },
  env: {
    kind: 'section',
    fields: {
      id: { kind: 'string' },
      options: { kind: 'open', doc: "the environment's options, checked by its schema" },
    },
  },
  episodes: { kind: 'int', min: 1, max: 1_000_000 },
  seed: { kind: 'int', default: 0, min: 0, max: MAX_SEED, doc: 'episode i starts from seed + i' },
  split: { kind: 'string', default: 'ID', doc: 'a label for aggregates: ID, OOD or any name' },
  weight: { kind: 'number', default: 1, min: 0 },
  max_steps: { kind: 'int', default: 0, min: 0, max: 10_000_000, doc: 'cut episodes after this many steps; 0: the default cap' },
  level: { kind: 'int', default: 0, min: 0, doc: "curriculum level every episode starts at (the env's reset difficulty)" },
  max_new_tokens: {
    kind: 'int',
    default: 0,
    min: 0,
    max: 4096,
    doc: `text envs: tokens a completion may have; 0: ${DEFAULT_MAX_NEW_TOKENS}`,
  },
} as const satisfies Schema;

type RawEntry = Infer<typeof ENTRY_SCHEMA>;

/** A numeric env's options and curriculum levels; an unknown id lists the text envs too. */
function checkEnvEntry(v: RawEntry, at: string): { options: Record<string, unknown>; levels: number } {
  try {
    envSpec(v.env.id, `${at}.env.id`);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.key, `${e.rule}; text envs: ${textEnvIds().join(', ') || '(none)'}`);
    throw e;
  }
  const options = envOptions(v.env.id, v.env.options, `${at}.env.options`);
  return { options, levels: makeEnv(v.env.id, options, `${at}.env.options`).numLevels };
}

/**
 * A text env's options and levels. Its first and last episodes are reset here, so an entry that
 * asks for prompts its env cannot show (a test set shorter than seed + episodes) fails before any
 * episode runs.
 */
function checkTextEntry(v: RawEntry, at: string): { options: Record<string, unknown>; levels: number } {
  const spec = textEnvSpec(v.env.id, `${at}.env.id`);
  const options = validate(spec.options, v.env.options ?? {}, `${at}.env.options`);
  const env = makeTextEnv(v.env.id, options, `${at}.env.options`);
  for (const [seed, key] of [
    [v.seed, 'seed'],
    [v.seed + v.episodes - 1, 'episodes'],
  ] as const) {
    try {
      env.reset(seed, { difficulty: Math.min(v.level, env.numLevels - 1) });
    } catch (e) {
      throw new ConfigError(`${at}.${key}`, `episode seed ${seed} cannot be reset: ${(e as Error).message}`);
    }
  }
  return { options, levels: env.numLevels };
}

/** Validates a parsed suite (from YAML, JSON or code); env ids, options and levels are checked against the registry. */
export function parseSuite(raw: unknown): Suite {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError('(root)', 'a suite must be a mapping');
  const { entries, ...top } = raw as Record<string, unknown>;
  const head = validate(SUITE_SCHEMA, top);
  if (head.name.trim() === '') throw new ConfigError('name', 'must not be empty');
  if (!Array.isArray(entries) || entries.length === 0)
    throw new ConfigError('entries', `must be a non-empty list of environments, got ${JSON.stringify(entries ?? null)}`);
  const names = new Set<string>();
  const out = entries.map((e, i): SuiteEntry => {
    const at = `entries[${i}]`;
    const v: RawEntry = validate(ENTRY_SCHEMA, e, at);
    if (v.name.trim() === '') throw new ConfigError(`${at}.name`, 'must not be empty');
    if (names.has(v.name)) throw new ConfigError(`${at}.name`, `${JSON.stringify(v.name)} is used by an earlier entry`);
    names.add(v.name);
    if (v.seed + v.episodes > MAX_SEED) throw new ConfigError(`${at}.seed`, `seed + episodes must be <= ${MAX_SEED}`);
    const text = isTextEnv(v.env.id);
    const { options, levels } = text ? checkTextEntry(v, at) : checkEnvEntry(v, at);
    if (v.level >= levels) throw new ConfigError(`${at}.level`, `must be an integer in [0, ${levels - 1}] for ${v.env.id}, got ${v.level}`);
    if (!text && v.max_new_tokens > 0)
      throw new ConfigError(`${at}.max_new_tokens`, `applies to text envs only; ${v.env.id} takes actions, not completions`);
    const entry: SuiteEntry = {
      name: v.name,
      env: { id: v.env.id, options },
      episodes: v.episodes,
      seed: v.seed,
      split: v.split,
      weight: v.weight,
    };
    if (v.max_steps > 0) entry.max_steps = v.max_steps;
    if (v.level > 0) entry.level = v.level;
    if (text) entry.max_new_tokens = v.max_new_tokens || DEFAULT_MAX_NEW_TOKENS;
    return entry;
  });
  return { name: head.name, mode: head.mode, entries: out };
}

/** Reads and validates a suite YAML file. */
export function loadSuite(path: string): Suite {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('(file)', `cannot read suite ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseSuite(parseConfigText(text, path));
}
