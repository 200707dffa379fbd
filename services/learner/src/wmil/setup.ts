/**
 * What the embedded loop (run.ts) and the mesh learner (mesh/learner-core.ts) build identically from
 * a WMIL config: the environment's shape, the BabyModel, the REINFORCE train step, the policy
 * forward program (flat params in, log-probs and value out), and the files a finished run leaves.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeEnv } from '@rlmesh/env';
import {
  buildForwardProgram,
  buildInferenceProgram,
  logSoftmax,
  type ParamLayout,
  saveWeights,
  softmax,
  type TrainProgram,
} from '@rlmesh/graph';
import { buildReinforceProgram } from '../algorithms/reinforce';
import { BabyModel } from '../models/baby';
import type { WmilConfig } from './config';

export interface WmilSetup {
  obsDim: number;
  numActions: number;
  numLevels: number;
  components: string[];
  model: BabyModel;
  program: TrainProgram;
}

export function envShape(cfg: WmilConfig) {
  const env = makeEnv(cfg.env.id, { numSymbols: cfg.env.num_symbols, maxEpisodeSteps: cfg.env.max_episode_steps });
  return { obsDim: env.obsDim, numActions: env.actionSpace.n, numLevels: env.numLevels, components: [...env.rewardComponents] };
}

export function buildWmil(cfg: WmilConfig, opts: { offPolicyCorrection?: boolean } = {}): WmilSetup {
  const shape = envShape(cfg);
  const model = new BabyModel({
    stateDim: shape.obsDim,
    numActions: shape.numActions,
    hiddenDim: cfg.model.hidden_dim,
    numLayers: cfg.model.num_layers,
    numHeads: cfg.model.num_heads,
    ffDim: cfg.model.ff_dim,
    dropout: cfg.model.dropout,
  });
  const a = cfg.algo;
  const program = buildReinforceProgram(
    model,
    {
      baseline: a.baseline,
      baselineDecay: a.baseline_decay,
      entropyCoef: a.entropy_coef,
      worldModelCoef: a.world_model_coef,
      valueCoef: a.value_coef,
      maxGradNorm: a.max_grad_norm,
      rewardWeights: a.reward_weights,
      offPolicyCorrection: opts.offPolicyCorrection,
    },
    shape.components,
  );
  return { ...shape, model, program };
}

/** The served policy: inputs `params` [P] and `obs` [batch, S]; outputs `log_probs` [batch, A] and `value` [batch]. */
export function buildPolicyProgram(model: BabyModel): { onnx: Uint8Array; layout: ParamLayout } {
  return buildForwardProgram({
    module: model,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', model.config.stateDim] }],
    forward: (i) => {
      const { logits, value } = model.forward(i.obs);
      return { log_probs: logSoftmax(logits, -1), value };
    },
  });
}

/** model.safetensors (weights, PyTorch names) and policy.onnx (weights baked in) for `rlmesh policy act` and outside users. */
export async function exportPolicy(runDir: string, cfg: WmilConfig, model: BabyModel, params: Map<string, Float32Array>): Promise<void> {
  await saveWeights(join(runDir, 'model.safetensors'), model, params, {
    config: JSON.stringify(cfg),
    num_actions: String(model.config.numActions),
    state_dim: String(model.config.stateDim),
  });
  const onnx = buildInferenceProgram({
    module: model,
    params,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', model.config.stateDim] }],
    name: 'wmil_policy',
    forward: (i) => {
      const { logits, value } = model.forward(i.obs);
      return { logits, probs: softmax(logits, -1), value };
    },
  });
  writeFileSync(join(runDir, 'policy.onnx'), onnx);
}
