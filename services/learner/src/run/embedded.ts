/**
 * The embedded mode (`rlmesh train`): one actor and the learner in one process, joined by direct
 * calls. The actor is the same RolloutCollector env replicas run, playing with the learner's current
 * parameters; the learner is the same LearnerRun the mesh learner drives. Policy lag is always 0.
 */
import { join } from 'node:path';
import { actorSeed, makeVectorEnv, RolloutCollector } from '@rlmesh/core';
import type { UpdateRecord } from '../registry';
import type { RunConfig } from './config';
import { LearnerRun, type RunSummary } from './learner-run';

export interface EmbeddedHooks {
  onUpdate?(r: UpdateRecord, run: LearnerRun): void;
  /** Resume from a training checkpoint written by any mode. */
  resumeFrom?: string;
  /** Stop after this many updates in this call (tests use it to cut a run in two). */
  maxUpdates?: number;
}

/** The actor id of the embedded mode and of the in-process mesh's one actor: both play the same episodes. */
export const LOCAL_ACTOR = 'local-a0';

export async function trainEmbedded(cfg: RunConfig, hooks: EmbeddedHooks = {}): Promise<RunSummary> {
  const vec = makeVectorEnv(cfg.env.id, cfg.env.options, cfg.env.num_envs);
  const collector = new RolloutCollector(
    vec,
    LOCAL_ACTOR,
    cfg.env.num_steps,
    actorSeed(cfg.run.seed, LOCAL_ACTOR),
    cfg.curriculum.start_level,
  );
  const run = await LearnerRun.create(cfg, {
    runDir: join(cfg.run.out_dir, cfg.run.name),
    collectorState: () => collector.snapshot(),
    resumeFrom: hooks.resumeFrom,
  });
  try {
    if (run.resumed.collector) collector.restore(run.resumed.collector);
    const stopAt = hooks.maxUpdates !== undefined ? Math.min(run.total, run.updates + hooks.maxUpdates) : run.total;
    while (run.updates < stopAt) {
      collector.setLevel(run.curriculum.level);
      const rollout = await collector.collect((obs, rows, seed) => run.act(obs, rows, seed));
      const record = await run.update(rollout);
      hooks.onUpdate?.(record, run);
    }
    return await run.finish();
  } finally {
    await run.release();
  }
}
