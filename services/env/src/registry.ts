/** The environment registry: ids, constructors and what each environment looks like. */
import type { ArrayEnv } from './env';
import { SymbolicEnv } from './symbolic';
import { Conditional, PatternEcho, SequenceNext, type SymbolicTask } from './tasks';

export interface EnvOptions {
  numSymbols?: number;
  maxEpisodeSteps?: number;
  /** SequenceNext: how many past symbols the observation shows. */
  window?: number;
}

// Each task has its own state type; the registry only hands the task to SymbolicEnv, which is
// generic over it, so the state type is erased here.
// biome-ignore lint/suspicious/noExplicitAny: see above
type AnyTask = SymbolicTask<any>;
const FACTORIES: Record<string, (o: EnvOptions) => AnyTask> = {
  PatternEcho: (o) => new PatternEcho(o.numSymbols ?? 8),
  SequenceNext: (o) => new SequenceNext(o.numSymbols ?? 8, o.window ?? 3),
  Conditional: (o) => new Conditional(o.numSymbols ?? 8),
};

export const ENV_IDS = Object.keys(FACTORIES);

export function makeEnv(id: string, opts: EnvOptions = {}): ArrayEnv {
  const make = FACTORIES[id];
  if (!make) throw new Error(`unknown env ${JSON.stringify(id)}; known envs: ${ENV_IDS.join(', ')}`);
  return new SymbolicEnv(make(opts), opts.maxEpisodeSteps ?? 1);
}

export interface EnvDescription {
  id: string;
  observationSpace: unknown;
  actionSpace: unknown;
  rewardComponents: readonly string[];
  numLevels: number;
}

export function listEnvs(opts: EnvOptions = {}): EnvDescription[] {
  return ENV_IDS.map((id) => {
    const e = makeEnv(id, opts);
    return {
      id,
      observationSpace: e.observationSpace.toJSON(),
      actionSpace: e.actionSpace.toJSON(),
      rewardComponents: e.rewardComponents,
      numLevels: e.numLevels,
    };
  });
}
