/**
 * A text-env run in the mesh: SequenceLearnerRun (the core the embedded sequence run drives) fed by
 * the sequence chunks of text actors. A published version is a causal LM (gpt2 or llama) the policy
 * service's Generate serves: the flat parameters, the model's config.json (model_config) and, once
 * per run, the tokenizer. Checkpoints are Hugging Face directories written under the run's directory by the update
 * itself; a directory is not one object, so none goes to the object store and such a run cannot be
 * taken over by another learner (LearnerCore refuses it).
 */
import { Discrete, makeTextEnv, type SequenceRollout, TokenSequence } from '@rlmesh/core';
import { ParamLayout } from '@rlmesh/graph';
import { decodeSequenceRollout, spaceToProto } from '@rlmesh/mesh';
import { causalLmModelConfig } from '../models/gpt2-generate';
import { causalLmModelId } from '../models/hf-causal-lm';
import type { SequenceRunConfig } from '../run/sequence-config';
import { SequenceLearnerRun } from '../run/sequence-learner-run';
import type { MeshTrainee } from './trainee';

export async function sequenceTrainee(cfg: SequenceRunConfig, runDir: string): Promise<MeshTrainee<SequenceRollout>> {
  const run = await SequenceLearnerRun.create(cfg, { runDir });
  const layout = new ParamLayout(run.model);
  const { vocabSize, context } = run.model.dims;
  const components = makeTextEnv(cfg.env.id, cfg.env.options).rewardComponents;
  const { promptsPerUpdate, numGenerations, maxCompletionLength } = run.sampling;
  const tokenizer = new TextEncoder().encode(JSON.stringify(run.tokenizer.toJSON()));
  const spec = {
    observationSpace: spaceToProto(new TokenSequence(vocabSize, context, run.padId)),
    actionSpace: spaceToProto(new Discrete(vocabSize)),
    model: causalLmModelId(run.model),
    numParameters: layout.total,
  };
  return {
    get updates() {
      return run.updates;
    },
    total: run.total,
    get done() {
      return run.done;
    },
    get version() {
      return run.version;
    },
    level: 0,
    get success() {
      return run.successMean;
    },
    get episodes() {
      return run.episodes;
    },
    get envSteps() {
      return run.envSteps;
    },
    get metrics() {
      return run.metrics;
    },
    returnMean: () => run.rewardMean,
    chunkShape: { numEnvs: promptsPerUpdate, numSteps: 1 },
    stepsPerUpdate: promptsPerUpdate * numGenerations,
    continueAfter() {
      throw new Error('a text-env run is not taken over: its checkpoints are directories the object store does not hold');
    },
    publication: (first) => ({
      params: layout.pack(run.parameters()),
      spec,
      distribution: 'categorical',
      modelConfig: causalLmModelConfig(run.model),
      tokenizer: first ? tokenizer : 'stored',
    }),
    decode: (chunk) =>
      decodeSequenceRollout(chunk, {
        numPrompts: promptsPerUpdate,
        groupSize: numGenerations,
        maxCompletionLength,
        vocabSize,
        components,
      }),
    update: (r) => run.update(r),
    // The update itself writes checkpoints/update_<n>/ every train.checkpoint_every updates.
    checkpoint: async () => null,
    lastCheckpoint: () => null,
    finish: () => run.finish(),
    release: () => run.release(),
  };
}
