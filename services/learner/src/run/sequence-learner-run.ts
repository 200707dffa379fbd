/**
 * The learner core of RL on token sequences: turns SequenceRollouts into train steps, whoever
 * played them (the embedded driver in sequence-run.ts now; the mesh's text actors through
 * trajectory chunks next). Reads top to bottom:
 *   create: init_from (a Hugging Face GPT-2, Llama or Qwen2 directory with its tokenizer), or the checkpoint resumed
 *           -> model -> the algorithm's gradient program + AdamW (models/gpt2-step.ts) -> reference
 *   update: lag -> algorithm.update -> counters -> metrics.jsonl line -> checkpoint every
 *           train.checkpoint_every updates
 *   finish: final checkpoint, summary.json
 *
 * It shares LearnerRun's conventions rather than its class, whose model, act program and rollout
 * are numeric: runs/<name>/ holds config.json, metrics.jsonl (one UpdateRecord per update, the
 * algorithm's metrics under `metrics`), checkpoints/update_<n>/ and summary.json (RunSummary's
 * fields). A checkpoint is a Hugging Face directory of the same architecture with its tokenizer (so SFT's evaluation,
 * the evaluator and `transformers` read it), the AdamW state and trainer_state.json as SFT writes
 * them, and rl_state.json: the counters, the actor's state (the embedded driver's envs and sampling
 * generator) and the algorithm's state, so a resumed run continues exactly where it was written.
 * The reference of a KL term is always init_from, re-read on resume. With `lora.r` > 0 the trainer
 * holds only the adapters (and a value head) over init_from's frozen weights, and generators and
 * checkpoints get the merged weights (lora.ts says what such a checkpoint holds).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ConfigError,
  isMultiTurn,
  makeTextEnv,
  type SequenceCollectorState,
  type SequenceRollout,
  type SequenceSampling,
  sequenceRows,
} from '@rlmesh/core';
import {
  buildForwardProgram,
  Rng as GraphRng,
  type HostTensor,
  initParameters,
  type LoraConfig,
  mergeLora,
  ParamLayout,
  Session,
} from '@rlmesh/graph';
import type { Tokenizer } from '@rlmesh/text';
import type { CausalLm } from '../models/causal-lm';
import { Gpt2ValueHead } from '../models/gpt2';
import { buildGradientProgram, GradientTrainer, LM_BATCH_INPUTS, tokenLogProbs } from '../models/gpt2-step';
import { causalLmContextKey, withConfig } from '../models/hf-causal-lm';
import { LlamaForCausalLM } from '../models/llama';
import { type SequenceAlgorithmSpec, sequenceAlgorithmSpec, type UpdateRecord } from '../registry';
import { loadCausalLmCheckpoint, saveCausalLmCheckpoint } from '../sft/checkpoint';
import { keepLinesUpTo } from '../sft/run';
import type { RunSummary } from './learner-run';
import { loadLoraState, loraOf, loraTrained, saveLoraCheckpoint, withLora } from './lora';
import { type SequenceRunConfig, sequenceSampling } from './sequence-config';

export const RL_STATE_FILE = 'rl_state.json';

interface RlState {
  updates: number;
  env_steps: number;
  episodes: number;
  success_history: number[];
  reward_history: number[];
  best: number;
  collector: SequenceCollectorState | null;
  algo_state: unknown;
}

/**
 * Reward components the env does not compute, scored by the learner on each rollout with the
 * parameters that generated it (SAE feature rewards: @rlmesh/sae's FeatureRewarder), joined to the
 * rollout's rewards under their own names before the algorithm weights them. Episodes' returns keep
 * the env's components only, so return_mean (and the summary's reward_start / reward_end) is the
 * env's reward; the algorithm logs each extra component as reward_<name>.
 */
export interface ExtraRewards {
  readonly components: readonly string[];
  score(r: SequenceRollout, params: ReadonlyMap<string, Float32Array>): Promise<Record<string, Float32Array>>;
}

export interface SequenceLearnerRunOptions {
  runDir: string;
  extraRewards?: ExtraRewards;
  /** A checkpoint directory written by a sequence run (checkpoints/update_<n>). */
  resumeFrom?: string;
  /** The embedded actor's state, saved with every checkpoint. */
  collectorState?: () => SequenceCollectorState | null;
  /** Reward components of rollouts made elsewhere than cfg.env (an archive's judged windows); cfg.env is then not made. */
  rewardComponents?: readonly string[];
}

export interface SequenceRunSummary extends RunSummary {
  final_checkpoint: string;
  /** Mean reward of the first and last train.success_window updates this process trained. */
  reward_start: number;
  reward_end: number;
}

async function loadDir(dir: string, resumable: boolean, key: string) {
  try {
    return await loadCausalLmCheckpoint(dir, resumable);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(key, (e as Error).message);
  }
}

/**
 * `params` with a value head: the checkpoint's own, or a fresh one drawn from `seed` when it has
 * none (an SFT checkpoint), so PPO starts from any causal-LM directory.
 */
function withValueHead(model: CausalLm, params: Map<string, Float32Array>, seed: number): Map<string, Float32Array> {
  if (model.vHead) return params;
  const out = new Map(params);
  for (const [k, v] of initParameters(new Gpt2ValueHead(model.dims.hidden), new GraphRng(seed))) out.set(`v_head.${k}`, v);
  return out;
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export class SequenceLearnerRun {
  readonly total: number;
  readonly sampling: SequenceSampling & { promptsPerUpdate: number };
  readonly padId: number;
  /** What the checkpoint resumed from held for the caller (the embedded actor's state). */
  resumed: { collector?: SequenceCollectorState } = {};
  private state: RlState;
  private readonly rewards: number[] = [];
  private readonly t0 = performance.now();
  private readonly trainedAtStart: number;
  private readonly stepsAtStart: number;

  private constructor(
    readonly cfg: SequenceRunConfig,
    readonly spec: SequenceAlgorithmSpec,
    private readonly algoCfg: never,
    /** The checkpoint's model as saved (the trained copy, `model`, has dropout off). */
    readonly saved: CausalLm,
    readonly model: CausalLm,
    /** With LoRA: its settings and the adapted modules (the trainer holds the adapters, `model` the plain architecture). */
    private readonly lora: { config: LoraConfig; adapted: string[] } | null,
    readonly tokenizer: Tokenizer,
    private readonly trainer: GradientTrainer,
    private readonly reference: { session: Session; params: Float32Array } | null,
    private readonly valueSession: Session | null,
    private readonly opts: SequenceLearnerRunOptions,
    state: RlState | null,
  ) {
    this.total = cfg.train.total_updates;
    const eosId = tokenizer.eosId as number;
    this.padId = tokenizer.padId ?? eosId;
    this.sampling = sequenceSampling(cfg, eosId);
    this.state = state ?? {
      updates: 0,
      env_steps: 0,
      episodes: 0,
      success_history: [],
      reward_history: [],
      best: 0,
      collector: null,
      algo_state: spec.initialState(algoCfg),
    };
    if (this.state.collector) this.resumed = { collector: this.state.collector };
    this.trainedAtStart = this.state.updates;
    this.stepsAtStart = this.state.env_steps;
  }

  static async create(cfg: SequenceRunConfig, opts: SequenceLearnerRunOptions): Promise<SequenceLearnerRun> {
    const spec = sequenceAlgorithmSpec(cfg.algo.name);
    const { name: _name, ...rest } = cfg.algo;
    const algoCfg = rest as never;
    const lora = loraOf(cfg.lora);
    // The policy: the checkpoint resumed from, or init_from (always, with LoRA: the base it adapts).
    // The reference is init_from either way.
    const resumed = opts.resumeFrom && !lora ? await loadDir(opts.resumeFrom, true, 'resume') : null;
    let state: RlState | null = null;
    if (opts.resumeFrom) {
      const path = join(opts.resumeFrom, RL_STATE_FILE);
      if (!existsSync(path))
        throw new ConfigError('resume', `${opts.resumeFrom}: no ${RL_STATE_FILE}; only a checkpoint of a sequence run resumes one`);
      state = JSON.parse(readFileSync(path, 'utf8')) as RlState;
    }
    // A resumed run reads init_from only for the reference, so a run without a KL term resumes without it.
    const init = resumed && !spec.usesReference(algoCfg) ? null : await loadDir(cfg.init_from, false, 'init_from');
    const start = resumed ?? init;
    if (!start) throw new ConfigError('init_from', 'must name a Hugging Face causal-LM directory (GPT-2, Llama, Qwen2)');
    const { tokenizer } = start;
    // A value-head algorithm trains (and saves) the head beside the LM; the reference carries it unused.
    const headed = spec.valueHead === true;
    const saved = headed ? withConfig(start.model, { valueHead: true }) : start.model;
    const startParams = headed ? withValueHead(start.model, start.params, cfg.run.seed) : start.params;
    if (tokenizer.eosId === null)
      throw new ConfigError('init_from', "the checkpoint's tokenizer has no EOS token; completions end with it");
    const env = opts.rewardComponents ? null : makeTextEnv(cfg.env.id, cfg.env.options);
    const envComponents = opts.rewardComponents ?? env?.rewardComponents ?? [];
    const extra = opts.extraRewards?.components ?? [];
    // Feature rewards score one completion per episode; a conversation's turns are not scored yet.
    if (env && extra.length > 0 && isMultiTurn(env))
      throw new ConfigError('feature_rewards', `score single-turn text envs; ${cfg.env.id} is multi-turn`);
    for (const c of extra)
      if (envComponents.includes(c)) throw new ConfigError('feature_rewards', `${c} is already a reward component of ${cfg.env.id}`);
    const components = [...envComponents, ...extra];
    for (const [c, w] of Object.entries(spec.rewardWeights(algoCfg, components)))
      if (w !== 0 && !components.includes(c))
        throw new ConfigError(`algo.reward_weights.${c}`, `${cfg.env.id} has no reward component ${c} (it has: ${components.join(', ')})`);
    // Dropout off, so the learner's log-probs are the generator's (the saved config keeps its own values).
    const model = withConfig(saved, { dropout: 0 });
    const adapted = lora ? withLora(saved, lora, startParams, cfg.run.seed) : null;
    const trainModel = adapted?.model ?? model;
    if (cfg.train.gradient_checkpointing) {
      if (!(trainModel instanceof LlamaForCausalLM))
        throw new ConfigError('train.gradient_checkpointing', `is built for llama models; init_from holds ${trainModel.constructor.name}`);
      if (lora && lora.dropout > 0)
        throw new ConfigError(
          'lora.dropout',
          'must be 0 with train.gradient_checkpointing (a recomputed layer would draw another dropout mask)',
        );
      trainModel.gradientCheckpointing = true;
    }
    const program = buildGradientProgram(
      trainModel,
      `${spec.name}_gradient`,
      spec.inputs(algoCfg),
      (b) => spec.loss(trainModel, b, algoCfg),
      lora ? (n) => !loraTrained(n) : undefined,
    );
    const trainer = await GradientTrainer.create(program, adapted?.params ?? startParams, spec.adamw(algoCfg), cfg.train.threads);
    if (resumed?.trainer) trainer.restore(resumed.trainer.state);
    if (lora && opts.resumeFrom) trainer.restore(await loadLoraState(opts.resumeFrom, trainer.layout.total));
    let reference: { session: Session; params: Float32Array } | null = null;
    if (spec.usesReference(algoCfg)) {
      const { onnx, layout } = buildForwardProgram({
        module: model,
        name: 'reference_log_probs',
        inputs: LM_BATCH_INPUTS,
        forward: (b) => ({ log_probs: tokenLogProbs(model, b).logProbs }),
      });
      reference = {
        session: await Session.create(onnx, { intraOpThreads: cfg.train.threads }),
        params: layout.pack(init && headed ? withValueHead(init.model, init.params, cfg.run.seed) : (init ?? start).params),
      };
    }
    let valueSession: Session | null = null;
    if (headed) {
      const { onnx, layout } = buildForwardProgram({
        module: model,
        name: 'values',
        inputs: LM_BATCH_INPUTS.slice(0, 2),
        forward: (b) => ({ value: model.forward({ ids: b.input_ids, attentionMask: b.attention_mask }).value as never }),
      });
      if (!lora && layout.total !== trainer.layout.total)
        throw new Error("values program: its parameter layout differs from the trainer's");
      valueSession = await Session.create(onnx, { intraOpThreads: cfg.train.threads });
    }
    mkdirSync(join(opts.runDir, 'checkpoints'), { recursive: true });
    writeFileSync(join(opts.runDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
    keepLinesUpTo(join(opts.runDir, 'metrics.jsonl'), state?.updates ?? 0, opts.resumeFrom);
    const loraState = lora && adapted ? { config: lora, adapted: adapted.names } : null;
    return new SequenceLearnerRun(cfg, spec, algoCfg, saved, model, loraState, tokenizer, trainer, reference, valueSession, opts, state);
  }

  get updates(): number {
    return this.state.updates;
  }

  /** Policy versions count from 1 (the starting parameters); one more per update. */
  get version(): number {
    return this.state.updates + 1;
  }

  get done(): boolean {
    return this.state.updates >= this.total;
  }

  get episodes(): number {
    return this.state.episodes;
  }

  get envSteps(): number {
    return this.state.env_steps;
  }

  /** Mean success and reward over the last train.success_window updates. */
  get successMean(): number {
    return mean(this.state.success_history);
  }

  get rewardMean(): number {
    return mean(this.state.reward_history);
  }

  /** The last update's algorithm metrics. */
  metrics: Record<string, number> = {};

  /** The current parameters by name (with LoRA, merged into the base), for generators and published versions. */
  parameters(): Map<string, Float32Array> {
    const all = this.trainer.parameters();
    return this.lora ? mergeLora(all, this.lora.config, this.lora.adapted) : all;
  }

  /** Throws a ConfigError when a prompt of `promptTokens` with `maxNewTokens` does not fit the model's context. */
  checkPrompt(promptTokens: number, maxNewTokens: number): void {
    const context = this.model.dims.context;
    if (promptTokens + maxNewTokens > context)
      throw new ConfigError(
        'algo.max_completion_length',
        `a prompt of ${promptTokens} tokens with ${maxNewTokens} new ones exceeds the model context ${causalLmContextKey(this.model)} ${context}`,
      );
  }

  /** Trains on one rollout; returns the line it logged, with the actor's `timings` among the metrics. */
  async update(r: SequenceRollout, timings: Record<string, number> = {}): Promise<UpdateRecord> {
    const s = this.state;
    const lag = this.version - r.policyVersion;
    const t0 = performance.now();
    if (this.opts.extraRewards) Object.assign(r.rewards, await this.opts.extraRewards.score(r, this.parameters()));
    const metrics = await this.spec.update(r, {
      cfg: this.algoCfg,
      state: s.algo_state,
      update: s.updates,
      totalUpdates: this.total,
      lag,
      optimizerSteps: this.trainer.stepCount,
      gradient: (micro) => this.trainer.gradient(micro),
      apply: (grad, lr) => this.trainer.apply(grad, lr),
      referenceLogProbs: (batch) => this.referenceLogProbs(batch),
      values: (batch) => this.values(batch),
      padId: this.padId,
      components: Object.keys(r.rewards),
    });
    Object.assign(metrics, timings, { train_s: (performance.now() - t0) / 1000 });
    // A multi-turn rollout's rows are turns: how long its conversations ran and how many a limit cut.
    if (r.episodeTruncated) {
      metrics.episode_turns_mean = mean(r.episodes.map((e) => e.length));
      metrics.episode_truncated_frac = mean(Array.from(r.episodeTruncated));
    }
    this.metrics = metrics;
    s.updates++;
    s.env_steps += sequenceRows(r);
    s.episodes += r.episodes.length;
    const weights = this.spec.rewardWeights(this.algoCfg, Object.keys(r.rewards));
    // Per episode: one per row for single-turn rollouts, one per conversation for multi-turn ones.
    const success = mean(r.episodes.map((e) => (e.success ? 1 : 0)));
    const reward = mean(r.episodes.map((e) => Object.entries(weights).reduce((a, [c, w]) => a + w * (e.returns[c] ?? 0), 0)));
    this.rewards.push(reward);
    const window = this.cfg.train.success_window;
    s.success_history = [...s.success_history, success].slice(-window);
    s.reward_history = [...s.reward_history, reward].slice(-window);
    s.best = Math.max(s.best, mean(s.success_history));
    const record: UpdateRecord = {
      update: s.updates,
      env_steps: s.env_steps,
      episodes: s.episodes,
      level: 0,
      success,
      success_mean: mean(s.success_history),
      return_mean: reward,
      policy_lag: lag,
      metrics,
    };
    appendFileSync(join(this.opts.runDir, 'metrics.jsonl'), `${JSON.stringify(record)}\n`);
    const every = this.cfg.train.checkpoint_every;
    if (every > 0 && s.updates % every === 0 && !this.done) await this.checkpoint();
    return record;
  }

  private async referenceLogProbs(batch: Record<string, HostTensor>): Promise<Float32Array> {
    const ref = this.reference;
    if (!ref) throw new Error(`${this.spec.name}: asked for reference log-probs but usesReference is false`);
    const out = await ref.session.run({
      params: { data: ref.params, shape: [ref.params.length] },
      input_ids: batch.input_ids,
      attention_mask: batch.attention_mask,
      labels: batch.labels,
    });
    return out.log_probs.data as Float32Array;
  }

  private async values(batch: Record<string, HostTensor>): Promise<Float32Array> {
    const session = this.valueSession;
    if (!session) throw new Error(`${this.spec.name}: asked for values but the algorithm has no valueHead`);
    const params = this.lora ? new ParamLayout(this.model).pack(this.parameters()) : this.trainer.flatParams;
    const out = await session.run({
      params: { data: params, shape: [params.length] },
      input_ids: batch.input_ids,
      attention_mask: batch.attention_mask,
    });
    return out.value.data as Float32Array;
  }

  /** Writes checkpoints/update_<n>/; returns its path. */
  async checkpoint(): Promise<string> {
    const dir = join(this.opts.runDir, 'checkpoints', `update_${this.state.updates}`);
    const iterations = Number((this.algoCfg as Record<string, unknown>).num_iterations ?? 1);
    if (this.lora)
      await saveLoraCheckpoint(dir, {
        saved: this.saved,
        merged: this.parameters(),
        tokenizer: this.tokenizer,
        lora: this.lora.config,
        baseModel: this.cfg.init_from,
        trained: this.trainer.parameters(),
        state: this.trainer.snapshot(),
      });
    else
      await saveCausalLmCheckpoint(dir, this.saved, this.tokenizer, this.trainer.snapshot(), {
        total_steps: this.total * iterations,
        seed: this.cfg.run.seed,
      });
    this.state.collector = this.opts.collectorState?.() ?? null;
    writeFileSync(join(dir, RL_STATE_FILE), `${JSON.stringify(this.state)}\n`);
    return dir;
  }

  /** The final checkpoint and summary.json. */
  async finish(): Promise<SequenceRunSummary> {
    const finalCheckpoint = await this.checkpoint();
    const s = this.state;
    const seconds = (performance.now() - this.t0) / 1000;
    const trained = s.updates - this.trainedAtStart;
    const window = this.cfg.train.success_window;
    const summary: SequenceRunSummary = {
      run_dir: this.opts.runDir,
      updates: s.updates,
      env_steps: s.env_steps,
      episodes: s.episodes,
      final_success: mean(s.success_history),
      best_success: s.best,
      return_mean: mean(s.reward_history),
      level: 0,
      parameters: this.model.parameterCount(),
      seconds,
      // Rows trained (completions, or turns of conversations) per second.
      env_steps_per_s: seconds > 0 ? (s.env_steps - this.stepsAtStart) / seconds : 0,
      updates_per_s: seconds > 0 ? trained / seconds : 0,
      criteria: [],
      pass: true,
      final_checkpoint: finalCheckpoint,
      reward_start: mean(this.rewards.slice(0, window)),
      reward_end: mean(this.rewards.slice(-window)),
    };
    writeFileSync(join(this.opts.runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  }

  async release(): Promise<void> {
    await this.trainer.release();
    await this.reference?.session.release();
    await this.valueSession?.release();
  }
}
