/**
 * The environment registry. An environment is one file that exports an EnvSpec (its id, its options
 * schema and a constructor) and one `registerEnv(spec)` line where the environments are gathered
 * (@rlmesh/envs). Options are validated by the spec's schema wherever they come from (a run config,
 * an EnvService request), so an unknown or bad option is an error naming it, and defaults live only
 * in the schema.
 */
import { ConfigError, type Infer, type Schema, validate } from './config';
import type { Env } from './env';
import { VectorEnv } from './vector';

export interface EnvSpec<S extends Schema = Schema> {
  id: string;
  /** One line for listings. */
  description: string;
  options: S;
  make(options: Infer<S>): Env;
}

// Specs are stored type-erased: each one's options are validated by its own schema before make.
const ENVS = new Map<string, EnvSpec<Schema>>();

export function registerEnv<S extends Schema>(spec: EnvSpec<S>): void {
  if (ENVS.has(spec.id)) throw new Error(`registerEnv: env "${spec.id}" is already registered`);
  ENVS.set(spec.id, spec as unknown as EnvSpec<Schema>);
}

export function envIds(): string[] {
  return [...ENVS.keys()];
}

/** The spec of `id`; an unknown id is a ConfigError at `key` listing the known ones. */
export function envSpec(id: string, key = 'env.id'): EnvSpec<Schema> {
  const spec = ENVS.get(id);
  if (!spec) throw new ConfigError(key, `unknown env ${JSON.stringify(id)}; known envs: ${envIds().join(', ') || '(none registered)'}`);
  return spec;
}

/** Validated options with defaults filled in; errors name `<prefix>.<option>`. */
export function envOptions(id: string, options: unknown = {}, prefix = 'env.options'): Record<string, unknown> {
  return validate(envSpec(id).options, options ?? {}, prefix);
}

/** One environment of `id`; options are validated (errors name `<prefix>.<option>`). */
export function makeEnv(id: string, options: unknown = {}, prefix = 'env.options'): Env {
  const spec = envSpec(id);
  return spec.make(validate(spec.options, options ?? {}, prefix));
}

/** `n` environments of `id` with the same options, stepped together. */
export function makeVectorEnv(id: string, options: unknown, n: number, prefix = 'env.options'): VectorEnv {
  const spec = envSpec(id);
  const opts = validate(spec.options, options ?? {}, prefix);
  return new VectorEnv(Array.from({ length: n }, () => spec.make(opts)));
}
