/**
 * The one learner core: a run that turns rollouts into train steps and policy versions, whatever
 * produced the rollouts. The embedded trainer (embedded.ts) feeds it from an in-process actor; the
 * mesh learner (mesh/mesh-run.ts) from trajectory chunks on the bus. Reads top to bottom:
 *   create: env spaces -> model (registry) -> algorithm's train step -> trainer + act session
 *   update: lag -> algorithm.update (its train steps) -> counters, curriculum, metrics.jsonl line,
 *           checkpoint every train.checkpoint_every updates
 *   finish: final checkpoint, model.safetensors, policy.onnx, summary.json
 * Checkpoints hold the trainer, the algorithm's state, the curriculum, the counters and (embedded)
 * the actor's episodes under way, so a checkpoint written by any mode resumes in any mode.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ActionDistribution,
  type ActOutput,
  actRng,
  type Box,
  type CollectorState,
  ConfigError,
  distributionFor,
  envSpec,
  Rng,
  type Rollout,
  type Space,
  sampleActions,
} from '@rlmesh/core';
import {
  buildInferenceProgram,
  deviceUnavailable,
  initParameters,
  loadTrainingCheckpoint,
  saveTrainingCheckpoint,
  saveWeights,
  Trainer,
  type TrainProgram,
} from '@rlmesh/graph';
import { actOutputs, buildActProgram, buildValueProgram } from '../algorithms/policy-terms';
import { type AlgorithmSpec, algorithmSpec, type Check, episodeReturn, modelSpec, type PolicyModel, type UpdateRecord } from '../registry';
import { type RunConfig, totalUpdates } from './config';
import { Curriculum } from './curriculum';
import { PolicyProgram } from './policy-program';

export interface LearnerRunOptions {
  runDir: string;
  /**
   * Train steps of models with more parameters than this run in a worker thread (services, whose
   * event loop must stay free); smaller ones, and all without it, on the calling thread.
   */
  workerAboveParameters?: number;
  /** The embedded actor's state, saved with every checkpoint. */
  collectorState?: () => CollectorState | null;
  /** Continue from this checkpoint (written by any mode) instead of starting fresh. */
  resumeFrom?: string;
}

export interface EnvShape {
  observationSpace: Box;
  actionSpace: Space;
  distribution: ActionDistribution;
  components: string[];
  numLevels: number;
}

export interface RunSummary {
  run_dir: string;
  updates: number;
  env_steps: number;
  episodes: number;
  final_success: number;
  best_success: number;
  return_mean: number;
  level: number;
  parameters: number;
  seconds: number;
  env_steps_per_s: number;
  updates_per_s: number;
  criteria: Check[];
  pass: boolean;
}

export interface ResumeResult {
  collector?: CollectorState;
}

/** Finished episodes averaged for return_mean (CleanRL's usual report window). */
const RETURN_WINDOW = 20;

/** A seed for (run seed, update, stream): distinct streams never collide for realistic sizes. */
const derivedSeed = (seed: number, update: number, stream: number) => ((seed * 1_000_003 + update) * 7 + stream) % 2 ** 31;

export function envShape(cfg: RunConfig): EnvShape {
  const env = envSpec(cfg.env.id).make(cfg.env.options as never);
  return {
    observationSpace: env.observationSpace,
    actionSpace: env.actionSpace,
    distribution: distributionFor(env.actionSpace),
    components: [...env.rewardComponents],
    numLevels: env.numLevels,
  };
}

/**
 * Parameters a train step may hold: with gradients and two Adam moments that is 16 bytes each, so 1e9
 * is 16 GB. Larger models are refused when they are built, not when their allocation fails.
 */
export const MAX_PARAMETERS = 1_000_000_000;

export function buildModel(cfg: RunConfig, shape: EnvShape): PolicyModel {
  const { id, ...options } = cfg.model;
  const model = modelSpec(id).build(options as never, shape);
  const count = model.module.parameterCount();
  if (count > MAX_PARAMETERS)
    throw new ConfigError(
      'model',
      `${id} with these options has ${count.toExponential(2)} parameters; at most ${MAX_PARAMETERS.toExponential(0)} fit a train step`,
    );
  return model;
}

export class LearnerRun {
  updates = 0;
  envSteps = 0;
  episodes = 0;
  /** Policy versions count from 1 (the initial parameters); one more per update. */
  version = 1;
  metrics: Record<string, number> = {};
  readonly total: number;
  readonly curriculum: Curriculum;
  private best = 0;
  private recentReturns: number[] = [];
  private algoState: unknown;
  private readonly rows: UpdateRecord[] = [];
  private t0 = performance.now();
  private metricsFd?: number;
  private sampleOnnx?: Uint8Array;
  private stepsAtStart = 0;

  private constructor(
    readonly cfg: RunConfig,
    readonly shape: EnvShape,
    readonly model: PolicyModel,
    readonly algorithm: AlgorithmSpec,
    readonly program: TrainProgram,
    readonly actProgram: Uint8Array,
    readonly trainer: Trainer,
    private readonly programs: { evaluate: PolicyProgram; sample: PolicyProgram; value: PolicyProgram },
    private readonly opts: LearnerRunOptions,
  ) {
    this.total = totalUpdates(cfg);
    this.curriculum = new Curriculum(cfg, shape.numLevels);
    this.algoState = algorithm.initialState(algoCfg(cfg));
  }

  static async create(cfg: RunConfig, opts: LearnerRunOptions): Promise<LearnerRun> {
    const shape = envShape(cfg);
    const model = buildModel(cfg, shape);
    const algorithm = algorithmSpec(cfg.algo.name);
    const program = algorithm.program(model, algoCfg(cfg), shape.components);
    const act = buildActProgram(model);
    const unavailable = deviceUnavailable(cfg.train.device);
    if (unavailable) throw new ConfigError('train.device', unavailable);
    const trainer = await Trainer.create(program, initParameters(model.module, new Rng(cfg.run.seed)), {
      intraOpThreads: cfg.train.threads,
      executionProviders: [cfg.train.device],
      inWorker: opts.workerAboveParameters !== undefined && model.module.parameterCount() > opts.workerAboveParameters,
    });
    const programs = {
      evaluate: await PolicyProgram.create(act, model.obsDim),
      // Acting needs no value estimate (the update evaluates V for the whole rollout in one call),
      // and the update's values need no distribution heads.
      sample: await PolicyProgram.create(buildActProgram(model, { value: false }), model.obsDim),
      value: await PolicyProgram.create(buildValueProgram(model), model.obsDim),
    };
    mkdirSync(join(opts.runDir, 'checkpoints'), { recursive: true });
    writeFileSync(join(opts.runDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
    const run = new LearnerRun(cfg, shape, model, algorithm, program, act.onnx, trainer, programs, opts);
    if (opts.resumeFrom) run.resumed = await run.resume(opts.resumeFrom);
    else writeFileSync(join(opts.runDir, 'metrics.jsonl'), '');
    return run;
  }

  /** What the checkpoint resumed from held for the caller (the embedded actor's state). */
  resumed: ResumeResult = {};

  get params(): Float32Array {
    return this.trainer.flatParams as Float32Array;
  }

  /**
   * The act program without the value output, over the whole parameter vector: what mesh actors run.
   * Built when first asked for (only a mesh run publishes it).
   */
  get sampleProgram(): Uint8Array {
    this.sampleOnnx ??= buildActProgram(this.model, { value: false, usedParametersOnly: false }).onnx;
    return this.sampleOnnx;
  }

  get done(): boolean {
    return this.updates >= this.total;
  }

  /** The current policy's outputs (value and distribution heads) on `rows` observations. */
  evaluate(obs: Float32Array, rows: number): Promise<Record<string, Float32Array>> {
    return this.programs.evaluate.run(this.params, obs, rows);
  }

  /** The current value function on `rows` observations. */
  async values(obs: Float32Array, rows: number): Promise<Float32Array> {
    return (await this.programs.value.run(this.params, obs, rows)).value;
  }

  /** The in-process policy: sample actions from the current parameters, seeded per call. */
  async act(obs: Float32Array, rows: number, seed: number): Promise<ActOutput> {
    const out = await this.programs.sample.run(this.params, obs, rows);
    const { actions, logProbs } = sampleActions(this.shape.distribution, out, 0, rows, false, actRng(seed));
    return { actions, logProbs, version: this.version };
  }

  /** Trains on one rollout; returns the line it logged. */
  async update(r: Rollout): Promise<UpdateRecord> {
    const lag = this.version - r.policyVersion;
    const cfg = algoCfg(this.cfg);
    this.metrics = await this.algorithm.update(r, {
      cfg,
      state: this.algoState,
      update: this.updates,
      totalUpdates: this.total,
      lag,
      step: (feed, lr) => this.trainer.step(feed, lr),
      // After train steps in a worker, the parameters come back before they are evaluated.
      evaluate: async (obs, rows) => {
        await this.trainer.sync();
        return this.evaluate(obs, rows);
      },
      values: async (obs, rows) => {
        await this.trainer.sync();
        return this.values(obs, rows);
      },
      rng: new Rng(derivedSeed(this.cfg.run.seed, this.updates, 2)),
      components: this.shape.components,
      distribution: this.shape.distribution,
    });
    await this.trainer.sync();
    this.updates++;
    this.version++;
    const steps = r.numSteps * r.numEnvs;
    this.envSteps += steps;
    this.episodes += r.episodes.length;
    const weights = this.algorithm.rewardWeights(cfg, this.shape.components);
    for (const e of r.episodes) this.recentReturns.push(episodeReturn(e, weights));
    if (this.recentReturns.length > RETURN_WINDOW) this.recentReturns.splice(0, this.recentReturns.length - RETURN_WINDOW);
    let successes = 0;
    for (let k = 0; k < steps; k++) successes += r.success[k];
    const success = successes / steps;
    // Success counts toward the curriculum only for rollouts played at the current level.
    const levelChanged = r.level === this.curriculum.level && this.curriculum.record(success);
    this.best = Math.max(this.best, this.curriculum.success);
    const record: UpdateRecord = {
      update: this.updates,
      env_steps: this.envSteps,
      episodes: this.episodes,
      level: r.level,
      success,
      success_mean: this.curriculum.success,
      return_mean: this.returnMean(),
      policy_lag: lag,
      metrics: this.metrics,
    };
    this.rows.push(record);
    // Kept open for the run: an open and a close per update cost about 1% of a CartPole PPO run.
    this.metricsFd ??= openSync(join(this.opts.runDir, 'metrics.jsonl'), 'a');
    writeSync(this.metricsFd, `${JSON.stringify({ ...record, level_changed: levelChanged })}\n`);
    const every = this.cfg.train.checkpoint_every;
    if (every > 0 && this.updates % every === 0 && !this.done) await this.checkpoint();
    return record;
  }

  returnMean(): number {
    return this.recentReturns.length ? this.recentReturns.reduce((a, b) => a + b, 0) / this.recentReturns.length : 0;
  }

  /** Where the checkpoint after `updates` updates goes. */
  checkpointPath(updates = this.updates): string {
    return join(this.opts.runDir, 'checkpoints', `update-${String(updates).padStart(6, '0')}.safetensors`);
  }

  /** Writes checkpoints/update-N.safetensors; returns its path. */
  async checkpoint(): Promise<string> {
    const path = this.checkpointPath();
    const collector = this.opts.collectorState?.() ?? null;
    await saveTrainingCheckpoint(path, this.trainer, {
      config: JSON.stringify(this.cfg),
      algo_state: JSON.stringify(this.algoState),
      curriculum: JSON.stringify({ level: this.curriculum.level, history: this.curriculum.history }),
      counters: JSON.stringify({
        updates: this.updates,
        env_steps: this.envSteps,
        episodes: this.episodes,
        recent_returns: this.recentReturns,
        best: this.best,
      }),
      ...(collector ? { collector: JSON.stringify(collector) } : {}),
    });
    return path;
  }

  /**
   * Continues from a checkpoint written by any mode. metrics.jsonl keeps the lines of the updates the
   * checkpoint covers and drops later ones, so a resumed run logs each update once.
   */
  private async resume(path: string): Promise<ResumeResult> {
    if (!existsSync(path)) throw new Error(`checkpoint: no file at ${path}`);
    const meta = await loadTrainingCheckpoint(path, this.trainer);
    const json = (k: string) => {
      if (meta[k] === undefined) throw new Error(`checkpoint ${path} has no "${k}" entry: it was not written by this version of rlmesh`);
      return JSON.parse(meta[k]);
    };
    this.algoState = json('algo_state');
    const cur = json('curriculum') as { level: number; history: number[] };
    this.curriculum.restore(cur.level, cur.history);
    const counters = json('counters') as { updates: number; env_steps: number; episodes: number; recent_returns: number[]; best: number };
    this.updates = counters.updates;
    this.version = this.updates + 1;
    this.envSteps = counters.env_steps;
    this.episodes = counters.episodes;
    this.recentReturns = counters.recent_returns;
    this.best = counters.best;
    this.stepsAtStart = this.updates;
    this.t0 = performance.now();
    this.truncateMetrics(path);
    return { collector: meta.collector ? (JSON.parse(meta.collector) as CollectorState) : undefined };
  }

  private truncateMetrics(checkpointPath: string): void {
    const metricsPath = join(this.opts.runDir, 'metrics.jsonl');
    const source = join(checkpointPath, '..', '..', 'metrics.jsonl');
    const lines = existsSync(source) ? readFileSync(source, 'utf8').split('\n').filter(Boolean) : [];
    const kept: string[] = [];
    for (const l of lines) {
      let record: UpdateRecord;
      try {
        record = JSON.parse(l) as UpdateRecord;
      } catch {
        continue; // the half-written last line of a learner killed mid-append
      }
      if (record.update > this.updates) continue;
      kept.push(l);
      this.rows.push(record);
    }
    writeFileSync(metricsPath, kept.map((l) => `${l}\n`).join(''));
  }

  /** Final checkpoint, weights with PyTorch names, the policy as ONNX, and summary.json (with `extra` fields). */
  async finish(extra: Record<string, unknown> = {}): Promise<RunSummary> {
    await this.checkpoint();
    const params = this.trainer.parameters();
    await saveWeights(join(this.opts.runDir, 'model.safetensors'), this.model.module, params, {
      config: JSON.stringify(this.cfg),
      model: this.model.name,
    });
    const onnx = buildInferenceProgram({
      module: this.model.module,
      params,
      inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', this.model.obsDim] }],
      name: 'rlmesh_policy',
      forward: (i) => actOutputs(this.model, i.obs),
    });
    writeFileSync(join(this.opts.runDir, 'policy.onnx'), onnx);
    const seconds = (performance.now() - this.t0) / 1000;
    const trained = this.updates - this.stepsAtStart;
    const criteria =
      this.algorithm.criteria?.(this.rows, {
        numActions: this.shape.distribution.kind === 'categorical' ? this.shape.distribution.n : 0,
      }) ?? [];
    const summary: RunSummary = {
      run_dir: this.opts.runDir,
      updates: this.updates,
      env_steps: this.envSteps,
      episodes: this.episodes,
      final_success: this.curriculum.success,
      best_success: this.best,
      return_mean: this.returnMean(),
      level: this.curriculum.level,
      parameters: this.model.module.parameterCount(),
      seconds,
      env_steps_per_s: seconds > 0 ? (trained * this.cfg.env.num_envs * this.cfg.env.num_steps) / seconds : 0,
      updates_per_s: seconds > 0 ? trained / seconds : 0,
      criteria,
      pass: criteria.every((c) => c.pass),
    };
    writeFileSync(join(this.opts.runDir, 'summary.json'), `${JSON.stringify({ ...summary, ...extra }, null, 2)}\n`);
    return summary;
  }

  async release(): Promise<void> {
    if (this.metricsFd !== undefined) closeSync(this.metricsFd);
    this.metricsFd = undefined;
    for (const p of Object.values(this.programs)) await p.release();
    await this.trainer.release();
  }
}

function algoCfg(cfg: RunConfig): never {
  const { name: _name, ...rest } = cfg.algo;
  return rest as never;
}
