/**
 * The embedded mode of RL on token sequences (`rlmesh train` with a text env): one text actor and
 * the sequence learner core in one process, joined by direct calls. The actor is the
 * SequenceCollector the mesh's text actors run, generating in-process from the learner's current
 * parameters (a Gpt2Generator built from them each update); the learner is SequenceLearnerRun.
 * Policy lag is always 0.
 */
import { join } from 'node:path';
import { actorSeed, makeTextEnv, SequenceCollector, type SequenceRequest } from '@rlmesh/core';
import { Gpt2Generator } from '../models/gpt2-generate';
import { encodePrompt } from '../models/text-completion';
import type { UpdateRecord } from '../registry';
import { LOCAL_ACTOR } from './embedded';
import type { SequenceRunConfig } from './sequence-config';
import { type ExtraRewards, SequenceLearnerRun, type SequenceRunSummary } from './sequence-learner-run';

export interface SequenceRunOptions {
  /** A checkpoint directory written by a sequence run (checkpoints/update_<n>). */
  resumeFrom?: string;
  /** Stop after this many updates in this call (tests cut a run in two with it). */
  maxUpdates?: number;
  /** Reward components scored by the learner (SAE feature rewards). */
  extraRewards?: ExtraRewards;
  onStart?(info: { start: number; total: number; parameters: number; prompts: number; generations: number }): void;
  onUpdate?(r: UpdateRecord): void;
}

export async function trainSequences(cfg: SequenceRunConfig, opts: SequenceRunOptions = {}): Promise<SequenceRunSummary> {
  let collector: SequenceCollector | null = null;
  const run = await SequenceLearnerRun.create(cfg, {
    runDir: join(cfg.run.out_dir, cfg.run.name),
    resumeFrom: opts.resumeFrom,
    extraRewards: opts.extraRewards,
    collectorState: () => collector?.snapshot() ?? null,
  });
  try {
    const { tokenizer, sampling } = run;
    const envs = Array.from({ length: sampling.promptsPerUpdate }, () => makeTextEnv(cfg.env.id, cfg.env.options));
    collector = new SequenceCollector(
      envs,
      { encode: (text) => encodePrompt(tokenizer, text), decode: (ids) => tokenizer.decodeCompletion(ids) },
      LOCAL_ACTOR,
      sampling,
      actorSeed(cfg.run.seed, LOCAL_ACTOR),
    );
    if (run.resumed.collector) collector.restore(run.resumed.collector);
    const generate = async (rows: readonly SequenceRequest[]) => {
      for (const r of rows) run.checkPrompt(r.prompt.length, r.maxNewTokens);
      const gen = await Gpt2Generator.create(run.model, run.parameters(), { threads: cfg.train.threads });
      try {
        return { results: await gen.generate(rows), version: run.version };
      } finally {
        await gen.release();
      }
    };
    opts.onStart?.({
      start: run.updates,
      total: run.total,
      parameters: run.model.parameterCount(),
      prompts: sampling.promptsPerUpdate,
      generations: sampling.numGenerations,
    });
    const stopAt = opts.maxUpdates !== undefined ? Math.min(run.total, run.updates + opts.maxUpdates) : run.total;
    while (run.updates < stopAt) {
      const t0 = performance.now();
      const rollout = await collector.collect(generate);
      // Where an update's time goes: the actor (generation and scoring) here, the learner in train_s.
      const record = await run.update(rollout, { rollout_s: (performance.now() - t0) / 1000 });
      opts.onUpdate?.(record);
    }
    return await run.finish();
  } finally {
    await run.release();
  }
}
