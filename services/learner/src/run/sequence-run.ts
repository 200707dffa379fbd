/**
 * The embedded mode of RL on token sequences (`rlmesh train` with a text env): one text actor and
 * the sequence learner core in one process, joined by direct calls. The actor is the
 * SequenceCollector the mesh's text actors run, generating in-process from the learner's current
 * parameters (a Gpt2Generator built from them each update); the learner is SequenceLearnerRun.
 * Policy lag is always 0.
 *
 * A multi-turn env (its task has `act`) is played by core's ConversationCollector instead: an
 * episode is a conversation, every policy turn a row, with at most env.max_turns turns and an
 * episode cut (truncated) where its conversation leaves no room in the model's context for another
 * turn. One generator serves every turn of a rollout, so it is built once per update.
 */
import { join } from 'node:path';
import {
  actorSeed,
  ConversationCollector,
  isMultiTurn,
  makeTextEnv,
  SequenceCollector,
  type SequenceRequest,
  type SequenceRollout,
  type SequenceSampling,
  type TextCodec,
} from '@rlmesh/core';
import { Gpt2Generator } from '../models/gpt2-generate';
import { causalLmArchitecture } from '../models/hf-causal-lm';
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
  onStart?(info: {
    start: number;
    total: number;
    /** GPT-2, Llama, Qwen2 or Qwen3. */
    architecture: string;
    parameters: number;
    prompts: number;
    generations: number;
  }): void;
  onUpdate?(r: UpdateRecord): void;
}

/**
 * The text actor loop of a run, for the embedded driver and the mesh's text actors alike: one env
 * per prompt of an update, played by ConversationCollector when the env is multi-turn (turns capped
 * by env.max_turns, episodes cut where the conversation leaves no room in the model's `context` for
 * a turn) and by SequenceCollector otherwise, seeded by the run's seed and the actor's id.
 */
export function textCollector(
  cfg: SequenceRunConfig,
  o: { codec: TextCodec; actorId: string; sampling: SequenceSampling & { promptsPerUpdate: number }; context: number },
): SequenceCollector {
  const envs = Array.from({ length: o.sampling.promptsPerUpdate }, () => makeTextEnv(cfg.env.id, cfg.env.options));
  const seed = actorSeed(cfg.run.seed, o.actorId);
  if (!isMultiTurn(envs[0])) return new SequenceCollector(envs, o.codec, o.actorId, o.sampling, seed);
  return new ConversationCollector(envs, o.codec, o.actorId, o.sampling, seed, {
    maxTurns: cfg.env.max_turns > 0 ? cfg.env.max_turns : undefined,
    maxPromptTokens: Math.max(1, o.context - o.sampling.maxCompletionLength),
  });
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
    const codec = {
      encode: (text: string) => encodePrompt(tokenizer, text),
      decode: (ids: readonly number[]) => tokenizer.decodeCompletion(ids),
    };
    collector = textCollector(cfg, { codec, actorId: LOCAL_ACTOR, sampling, context: run.model.dims.context });
    if (run.resumed.collector) collector.restore(run.resumed.collector);
    let gen: Gpt2Generator | null = null;
    const generate = async (rows: readonly SequenceRequest[]) => {
      for (const r of rows) run.checkPrompt(r.prompt.length, r.maxNewTokens);
      gen ??= await Gpt2Generator.create(run.model, run.parameters(), { threads: cfg.train.threads });
      return { results: await gen.generate(rows), version: run.version };
    };
    const releaseGenerator = async () => {
      await gen?.release();
      gen = null;
    };
    opts.onStart?.({
      start: run.updates,
      total: run.total,
      architecture: causalLmArchitecture(run.model),
      parameters: run.model.parameterCount(),
      prompts: sampling.promptsPerUpdate,
      generations: sampling.numGenerations,
    });
    const stopAt = opts.maxUpdates !== undefined ? Math.min(run.total, run.updates + opts.maxUpdates) : run.total;
    while (run.updates < stopAt) {
      const t0 = performance.now();
      let rollout: SequenceRollout;
      try {
        rollout = await collector.collect(generate);
      } finally {
        // Released before the train step, which changes the parameters it was built from.
        await releaseGenerator();
      }
      // Where an update's time goes: the actor (generation and scoring) here, the learner in train_s.
      const record = await run.update(rollout, { rollout_s: (performance.now() - t0) / 1000 });
      opts.onUpdate?.(record);
    }
    return await run.finish();
  } finally {
    await run.release();
  }
}
