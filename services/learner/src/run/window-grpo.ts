/**
 * One iteration of GRPO by window from a trajectory archive (the Babylon design):
 *
 *   windows      the archive's training groups: windows with >= min_agents agents, thinned by its
 *                automatic dropout when they hold more trajectories than `target`
 *   judge        the caller's scorer, one window at a time (scores in [0, 1], relative within it)
 *   rollouts     window-rollouts.ts: each window's LM calls as one group, rewarded with the scores
 *   update       SequenceLearnerRun.update per window (GRPO's num_iterations steps each)
 *   record       a checkpoint (a Hugging Face directory), a training_batches row (the windows, the
 *                trajectories, the dropout rate; pending -> training -> trained, or failed) and a
 *                trained_models row naming the checkpoint and the batch
 *
 * The archive is described by the methods called here, so @rlmesh/archive's Archive fits it without
 * the learner depending on that package.
 */
import { Discrete, TokenSequence } from '@rlmesh/core';
import { ParamLayout } from '@rlmesh/graph';
import { type Bus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { causalLmModelConfig } from '../models/gpt2-generate';
import { causalLmModelId } from '../models/hf-causal-lm';
import type { UpdateRecord } from '../registry';
import type { SequenceLearnerRun } from './sequence-learner-run';
import { type ArchivedCall, type ArchivedTrajectory, callsOfTrajectory, windowRollout } from './window-rollouts';

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface WindowArchive {
  /** The window id holding `at`. */
  windowOf(at: Date): string;
  trainingGroups(options: {
    minAgents: number;
    target: number;
    seed: number;
    maxDropout?: number;
    from?: string;
    to?: string;
  }): Promise<{ rate: number; available: number; kept: number; windows: { windowId: string; members: ArchivedTrajectory[] }[] }>;
  llmCallsOf(trajectoryId: string): Promise<ArchivedCall[]>;
  llmCallsInWindow(windowId: string): Promise<ArchivedCall[]>;
  createTrainingBatch(input: { windowIds: string[]; trajectoryIds: string[]; dropoutRate?: number }): Promise<string>;
  setTrainingBatchStatus(id: string, status: 'pending' | 'training' | 'trained' | 'failed'): Promise<void>;
  recordTrainedModel(input: {
    version: string;
    path: string;
    baseModel: string;
    batchId?: string;
    metrics?: { [key: string]: JsonValue };
  }): Promise<void>;
}

/** Judge scores in [0, 1] by trajectory id, for the trajectories of one window. */
export type WindowScorer = (windowId: string, trajectories: ArchivedTrajectory[]) => Promise<Map<string, number>>;

export interface WindowGrpoOptions {
  minAgents: number;
  /** Trajectories a batch needs; more in the archive switches dropout on. */
  target: number;
  maxDropout?: number;
  /** K: rows each trajectory contributes. */
  callsPerTrajectory: number;
  seed: number;
  /** Windows in [from, to) only (window ids), e.g. those recorded since the last iteration. */
  from?: string;
  to?: string;
  /** The recorded model version: `<prefix>-v<policy version>`. */
  versionPrefix: string;
  /** Extra fields for the trained_models row's metrics (a loop's iteration, which a resumed run reads back). */
  metrics?: { [key: string]: JsonValue };
}

export interface WindowGrpoResult {
  batchId: string | null;
  /** The trained_models version and its checkpoint; null when no window gave a group. */
  version: string | null;
  checkpoint: string | null;
  dropoutRate: number;
  windows: number;
  /** Windows that gave a group (>= 2 trajectories with usable calls). */
  trainedWindows: number;
  trajectories: number;
  rows: number;
  /** Judge scores: their mean, and the mean over windows of (max - min) within a window. */
  scoreMean: number;
  scoreSpread: number;
  skipped: Record<string, number>;
  updates: UpdateRecord[];
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export async function trainOnWindows(
  archive: WindowArchive,
  learner: SequenceLearnerRun,
  score: WindowScorer,
  encodePrompt: (messages: ArchivedCall['messages']) => number[],
  o: WindowGrpoOptions,
): Promise<WindowGrpoResult> {
  const groups = await archive.trainingGroups({
    minAgents: o.minAgents,
    target: o.target,
    seed: o.seed,
    maxDropout: o.maxDropout,
    from: o.from,
    to: o.to,
  });
  const result: WindowGrpoResult = {
    batchId: null,
    version: null,
    checkpoint: null,
    dropoutRate: groups.rate,
    windows: groups.windows.length,
    trainedWindows: 0,
    trajectories: 0,
    rows: 0,
    scoreMean: 0,
    scoreSpread: 0,
    skipped: {},
    updates: [],
  };
  const windows = groups.windows.filter((w) => w.members.length > 0);
  if (windows.length === 0) return result;
  const batchId = await archive.createTrainingBatch({
    windowIds: windows.map((w) => w.windowId),
    trajectoryIds: windows.flatMap((w) => w.members.map((t) => t.id)),
    dropoutRate: groups.rate,
  });
  result.batchId = batchId;
  await archive.setTrainingBatchStatus(batchId, 'training');
  try {
    const scores: number[] = [];
    const spreads: number[] = [];
    for (const [w, { windowId, members }] of windows.entries()) {
      const judged = await score(windowId, members);
      const values = members.map((t) => judged.get(t.id)).filter((s): s is number => s !== undefined);
      scores.push(...values);
      if (values.length > 0) spreads.push(Math.max(...values) - Math.min(...values));
      // Calls made outside trajectories carry their own time's window, which may be a later one.
      const spanned = new Set(members.flatMap((t) => [windowId, archive.windowOf(t.endedAt)]));
      const loose = (await Promise.all([...spanned].map((id) => archive.llmCallsInWindow(id)))).flat();
      const calls = new Map<string, ArchivedCall[]>();
      for (const t of members) calls.set(t.id, callsOfTrajectory(t, await archive.llmCallsOf(t.id), loose));
      const built = windowRollout({
        windowId,
        trajectories: members,
        calls,
        scores: judged,
        tokenizer: learner.tokenizer,
        encodePrompt,
        callsPerTrajectory: o.callsPerTrajectory,
        seed: o.seed * 1_000_003 + w,
        currentVersion: learner.version,
      });
      for (const [k, v] of Object.entries(built.skipped)) result.skipped[k] = (result.skipped[k] ?? 0) + v;
      if (!built.rollout) continue;
      result.updates.push(await learner.update(built.rollout));
      result.trainedWindows++;
      result.trajectories += built.trajectories;
      result.rows += built.rollout.groupSize;
    }
    result.scoreMean = mean(scores);
    result.scoreSpread = mean(spreads);
    if (result.updates.length > 0) {
      result.checkpoint = await learner.checkpoint();
      result.version = `${o.versionPrefix}-v${learner.version}`;
      const last = result.updates[result.updates.length - 1].metrics;
      await archive.recordTrainedModel({
        version: result.version,
        path: result.checkpoint,
        baseModel: learner.cfg.init_from,
        batchId,
        metrics: {
          windows: result.trainedWindows,
          trajectories: result.trajectories,
          rows: result.rows,
          dropout_rate: result.dropoutRate,
          score_mean: result.scoreMean,
          score_spread: result.scoreSpread,
          loss: last.loss ?? null,
          kl: last.kl ?? null,
          ...o.metrics,
        },
      });
    }
    // A batch no window could train on (no two judged trajectories with usable calls) is not a trained one.
    await archive.setTrainingBatchStatus(batchId, result.updates.length > 0 ? 'trained' : 'failed');
  } catch (e) {
    await archive.setTrainingBatchStatus(batchId, 'failed').catch(() => {});
    throw e;
  }
  return result;
}

/**
 * Publishes the learner's current parameters as version `learner.version` of `runId` on `bus`, so a
 * policy service (and its OpenAI-compatible endpoint) serves the model just trained. `first`
 * stores the tokenizer; later versions name the stored one.
 */
export async function publishSequenceVersion(bus: Bus, runId: string, learner: SequenceLearnerRun, first: boolean): Promise<void> {
  const { vocabSize, context } = learner.model.dims;
  await publishPolicy(bus, runId, {
    version: learner.version,
    params: new ParamLayout(learner.model).pack(learner.parameters()),
    spec: {
      observationSpace: spaceToProto(new TokenSequence(vocabSize, context, learner.padId)),
      actionSpace: spaceToProto(new Discrete(vocabSize)),
      model: causalLmModelId(learner.model),
      numParameters: new ParamLayout(learner.model).total,
    },
    distribution: 'categorical',
    modelConfig: causalLmModelConfig(learner.model),
    tokenizer: first ? new TextEncoder().encode(JSON.stringify(learner.tokenizer.toJSON())) : 'stored',
  });
}
