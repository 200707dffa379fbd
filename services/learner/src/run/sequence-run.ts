/**
 * The embedded run of RL on token sequences (`rlmesh train` with a text env), top to bottom:
 *
 *   init_from (a Hugging Face GPT-2 directory with its tokenizer) -> model, tokenizer, reference
 *   -> the algorithm's gradient program + AdamW (models/gpt2-step.ts) -> P text envs, one actor
 *   -> for each update: SequenceCollector.collect (G completions of each of P prompts, generated
 *      in-process from the current parameters, scored by the envs) -> algorithm.update
 *      -> a metrics.jsonl line -> a checkpoint every train.checkpoint_every updates and at the end.
 *
 * It shares LearnerRun's conventions rather than its class, whose model, act program and rollout
 * are numeric: runs/<name>/ holds config.json, metrics.jsonl (one UpdateRecord per update, the
 * algorithm's metrics under `metrics`), checkpoints/update_<n>/ and summary.json (RunSummary's
 * fields). A checkpoint is a Hugging Face GPT-2 directory with its tokenizer (so `rlmesh sft`'s
 * evaluation, the evaluator and `transformers` read it), the AdamW state and trainer_state.json as
 * SFT writes them, and rl_state.json: the counters, the actor (its envs and sampling generator) and
 * the algorithm's state, so a resumed run continues exactly where the checkpoint was written. The
 * reference of a KL term is always init_from, re-read on resume.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { actorSeed, ConfigError, makeTextEnv, SequenceCollector, type SequenceCollectorState, type SequenceRequest } from '@rlmesh/core';
import { buildForwardProgram, type HostTensor, Session } from '@rlmesh/graph';
import { Gpt2LMHeadModel } from '../models/gpt2';
import { Gpt2Generator } from '../models/gpt2-generate';
import { buildGradientProgram, GradientTrainer, LM_BATCH_INPUTS, tokenLogProbs } from '../models/gpt2-step';
import { encodePrompt } from '../models/text-completion';
import { sequenceAlgorithmSpec, type UpdateRecord } from '../registry';
import { loadSftCheckpoint, saveSftCheckpoint } from '../sft/checkpoint';
import { keepLinesUpTo } from '../sft/run';
import { LOCAL_ACTOR } from './embedded';
import type { RunSummary } from './learner-run';
import type { SequenceRunConfig } from './sequence-config';

export const RL_STATE_FILE = 'rl_state.json';

interface RlState {
  updates: number;
  env_steps: number;
  episodes: number;
  success_history: number[];
  reward_history: number[];
  best: number;
  collector: SequenceCollectorState;
  algo_state: unknown;
}

export interface SequenceRunOptions {
  /** A checkpoint directory written by a sequence run (checkpoints/update_<n>). */
  resumeFrom?: string;
  /** Stop after this many updates in this call (tests cut a run in two with it). */
  maxUpdates?: number;
  onStart?(info: { start: number; total: number; parameters: number; prompts: number; generations: number }): void;
  onUpdate?(r: UpdateRecord): void;
}

export interface SequenceRunSummary extends RunSummary {
  final_checkpoint: string;
  /** Mean reward of the first and last train.success_window updates this call trained. */
  reward_start: number;
  reward_end: number;
}

async function loadDir(dir: string, resumable: boolean, key: string) {
  try {
    return await loadSftCheckpoint(dir, resumable);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(key, (e as Error).message);
  }
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export async function trainSequences(cfg: SequenceRunConfig, opts: SequenceRunOptions = {}): Promise<SequenceRunSummary> {
  const started = performance.now();
  const runDir = join(cfg.run.out_dir, cfg.run.name);
  const spec = sequenceAlgorithmSpec(cfg.algo.name);
  const { name: _name, ...algoCfg } = cfg.algo;
  const sampling = spec.sampling(algoCfg as never);

  // The policy: the checkpoint resumed from, or init_from. The reference is init_from either way.
  const resumed = opts.resumeFrom ? await loadDir(opts.resumeFrom, true, 'resume') : null;
  const init = await loadDir(cfg.init_from, false, 'init_from');
  const start = resumed ?? init;
  const { config, tokenizer } = start;
  const eosId = tokenizer.eosId;
  if (eosId === null) throw new ConfigError('init_from', "the checkpoint's tokenizer has no EOS token; completions end with it");
  const padId = tokenizer.padId ?? eosId;
  // Dropout off, so the learner's log-probs are the generator's (the saved config keeps its own values).
  const model = new Gpt2LMHeadModel({ ...config, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 });
  const program = buildGradientProgram(model, `${spec.name}_gradient`, spec.inputs(algoCfg as never), (b) =>
    spec.loss(model, b, algoCfg as never),
  );
  const trainer = await GradientTrainer.create(program, start.params, spec.adamw(algoCfg as never), cfg.train.threads);
  if (resumed?.trainer) trainer.restore(resumed.trainer.state);
  let reference: { session: Session; params: Float32Array } | null = null;
  if (spec.usesReference(algoCfg as never)) {
    const { onnx, layout } = buildForwardProgram({
      module: model,
      name: 'reference_log_probs',
      inputs: LM_BATCH_INPUTS,
      forward: (b) => ({ log_probs: tokenLogProbs(model, b).logProbs }),
    });
    reference = { session: await Session.create(onnx, { intraOpThreads: cfg.train.threads }), params: layout.pack(init.params) };
  }

  const envs = Array.from({ length: sampling.promptsPerUpdate }, () => makeTextEnv(cfg.env.id, cfg.env.options));
  const collector = new SequenceCollector(
    envs,
    { encode: (text) => encodePrompt(tokenizer, text), decode: (ids) => tokenizer.decodeCompletion(ids) },
    LOCAL_ACTOR,
    { ...sampling, eosTokenId: eosId },
    actorSeed(cfg.run.seed, LOCAL_ACTOR),
  );

  let state: RlState = {
    updates: 0,
    env_steps: 0,
    episodes: 0,
    success_history: [],
    reward_history: [],
    best: 0,
    collector: collector.snapshot(),
    algo_state: spec.initialState(algoCfg as never),
  };
  if (opts.resumeFrom) {
    const path = join(opts.resumeFrom, RL_STATE_FILE);
    if (!existsSync(path))
      throw new ConfigError('resume', `${opts.resumeFrom}: no ${RL_STATE_FILE}; only a checkpoint of a sequence run resumes one`);
    state = JSON.parse(readFileSync(path, 'utf8')) as RlState;
    collector.restore(state.collector);
  }

  const total = cfg.train.total_updates;
  const iterations = Number((algoCfg as Record<string, unknown>).num_iterations ?? 1);
  mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
  writeFileSync(join(runDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  const metricsPath = join(runDir, 'metrics.jsonl');
  keepLinesUpTo(metricsPath, state.updates, opts.resumeFrom);

  const context = config.n_positions;
  const generate = async (rows: readonly SequenceRequest[]) => {
    for (const r of rows)
      if (r.prompt.length + r.maxNewTokens > context)
        throw new ConfigError(
          'algo.max_completion_length',
          `a prompt of ${r.prompt.length} tokens with ${r.maxNewTokens} new ones exceeds the model context n_positions ${context}`,
        );
    const gen = await Gpt2Generator.create(model, trainer.parameters(), { threads: cfg.train.threads });
    try {
      return { results: await gen.generate(rows), version: state.updates + 1 };
    } finally {
      await gen.release();
    }
  };
  const referenceLogProbs = async (batch: Record<string, HostTensor>) => {
    if (!reference) throw new Error(`${spec.name}: asked for reference log-probs but usesReference is false`);
    const feeds: Record<string, HostTensor> = {
      params: { data: reference.params, shape: [reference.params.length] },
      input_ids: batch.input_ids,
      attention_mask: batch.attention_mask,
      labels: batch.labels,
    };
    return (await reference.session.run(feeds)).log_probs.data as Float32Array;
  };
  const checkpoint = async () => {
    const dir = join(runDir, 'checkpoints', `update_${state.updates}`);
    await saveSftCheckpoint(dir, config, tokenizer, trainer.snapshot(), { total_steps: total * iterations, seed: cfg.run.seed });
    state.collector = collector.snapshot();
    writeFileSync(join(dir, RL_STATE_FILE), `${JSON.stringify(state)}\n`);
    return dir;
  };

  opts.onStart?.({
    start: state.updates,
    total,
    parameters: model.parameterCount(),
    prompts: sampling.promptsPerUpdate,
    generations: sampling.numGenerations,
  });
  const trainedAtStart = state.updates;
  const rewards: number[] = [];
  const weights = spec.rewardWeights(algoCfg as never, envs[0].rewardComponents);
  for (const [c, w] of Object.entries(weights))
    if (w !== 0 && !envs[0].rewardComponents.includes(c))
      throw new ConfigError(
        `algo.reward_weights.${c}`,
        `${cfg.env.id} has no reward component ${c} (it has: ${envs[0].rewardComponents.join(', ')})`,
      );
  let finalCheckpoint = '';
  try {
    const stopAt = opts.maxUpdates !== undefined ? Math.min(total, state.updates + opts.maxUpdates) : total;
    while (state.updates < stopAt) {
      const t0 = performance.now();
      const rollout = await collector.collect(generate);
      const t1 = performance.now();
      const metrics = await spec.update(rollout, {
        cfg: algoCfg as never,
        state: state.algo_state,
        update: state.updates,
        totalUpdates: total,
        lag: state.updates + 1 - rollout.policyVersion,
        optimizerSteps: trainer.stepCount,
        gradient: (micro) => trainer.gradient(micro),
        apply: (grad, lr) => trainer.apply(grad, lr),
        referenceLogProbs,
        padId,
        components: envs[0].rewardComponents,
      });
      // Where an update's time goes: the actor (generation and scoring) and the learner.
      metrics.rollout_s = (t1 - t0) / 1000;
      metrics.train_s = (performance.now() - t1) / 1000;
      const rows = rollout.numPrompts * rollout.groupSize;
      state.updates++;
      state.env_steps += rows;
      state.episodes += rollout.episodes.length;
      const success = rollout.success.reduce((a, s) => a + s, 0) / rows;
      const reward = mean(rollout.episodes.map((e) => Object.entries(weights).reduce((a, [c, w]) => a + w * (e.returns[c] ?? 0), 0)));
      rewards.push(reward);
      state.success_history = [...state.success_history, success].slice(-cfg.train.success_window);
      state.reward_history = [...state.reward_history, reward].slice(-cfg.train.success_window);
      state.best = Math.max(state.best, mean(state.success_history));
      const record: UpdateRecord = {
        update: state.updates,
        env_steps: state.env_steps,
        episodes: state.episodes,
        level: 0,
        success,
        success_mean: mean(state.success_history),
        return_mean: reward,
        policy_lag: state.updates - rollout.policyVersion,
        metrics,
      };
      appendFileSync(metricsPath, `${JSON.stringify(record)}\n`);
      opts.onUpdate?.(record);
      const every = cfg.train.checkpoint_every;
      if (every > 0 && state.updates % every === 0 && state.updates < stopAt) await checkpoint();
    }
    finalCheckpoint = await checkpoint();
  } finally {
    await trainer.release();
    await reference?.session.release();
  }
  const seconds = (performance.now() - started) / 1000;
  const trained = state.updates - trainedAtStart;
  const window = cfg.train.success_window;
  const summary: SequenceRunSummary = {
    run_dir: runDir,
    updates: state.updates,
    env_steps: state.env_steps,
    episodes: state.episodes,
    final_success: mean(state.success_history),
    best_success: state.best,
    return_mean: mean(state.reward_history),
    level: 0,
    parameters: model.parameterCount(),
    seconds,
    env_steps_per_s: seconds > 0 ? (trained * sampling.promptsPerUpdate * sampling.numGenerations) / seconds : 0,
    updates_per_s: seconds > 0 ? trained / seconds : 0,
    criteria: [],
    pass: true,
    final_checkpoint: finalCheckpoint,
    reward_start: mean(rewards.slice(0, window)),
    reward_end: mean(rewards.slice(-window)),
  };
  writeFileSync(join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
