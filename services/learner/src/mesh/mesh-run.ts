/**
 * One training run in the mesh: the learner side of WMIL REINFORCE, fed by trajectory chunks from
 * any number of env actors instead of an in-process rollout. Reads top to bottom:
 *   start: model + train step (setup.ts, as embedded) -> publish policy v0 -> announce the run ->
 *          pull-consume rlmesh.traj.<run> (durable consumer, explicit ack)
 *   chunk: decode + check -> policy lag (drop beyond max_policy_lag) -> batch + returns -> train
 *          step (truncated importance weights for stale chunks) -> curriculum -> publish version -> ack
 *   every train.checkpoint_every updates and at the end: a training checkpoint in the run directory
 *          and in the object store (<run>/checkpoints/update-N.safetensors), for any process to resume from
 *   end:   policy.onnx, summary; announce completed / stopped / failed.
 * One chunk is one update (N episodes of L steps), as one rollout is in the embedded loop.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metrics, SpanKind } from '@opentelemetry/api';
import { Rng } from '@rlmesh/core';
import { initParameters, loadTrainingCheckpoint, saveTrainingCheckpoint, Trainer } from '@rlmesh/graph';
import {
  type Bus,
  type BusMessage,
  type ConsumerProgress,
  encodeJson,
  extractContext,
  inSpan,
  keys,
  type Logger,
  objects,
  publishPolicy,
  type RunAnnouncement,
  type Subscription,
  subjects,
} from '@rlmesh/mesh';
import { decodeTensor, type Run, RunState, TrajectoryChunk } from '@rlmesh/proto';
import type { WmilConfig } from '../wmil/config';
import { mvpCriteria } from '../wmil/criteria';
import { Curriculum } from '../wmil/curriculum';
import { discountedReturns } from '../wmil/returns';
import { buildPolicyProgram, buildWmil, envShape, exportPolicy, type WmilSetup } from '../wmil/setup';

type Feed = Record<string, { data: Float32Array | BigInt64Array; shape: number[] }>;
const STATE: Record<RunAnnouncement['state'], RunState> = {
  running: RunState.RUN_STATE_RUNNING,
  completed: RunState.RUN_STATE_COMPLETED,
  stopped: RunState.RUN_STATE_STOPPED,
  failed: RunState.RUN_STATE_FAILED,
};
const meter = metrics.getMeter('rlmesh.learner');
const updatesCounter = meter.createCounter('rlmesh.learner.updates', { unit: '{update}', description: 'Train steps taken' });
const lagHistogram = meter.createHistogram('rlmesh.learner.policy_lag', {
  unit: '{version}',
  description: 'Learner version minus the version that acted in a chunk',
  advice: { explicitBucketBoundaries: [0, 1, 2, 4, 8, 16, 32] },
});
const droppedCounter = meter.createCounter('rlmesh.learner.chunks.dropped', {
  unit: '{chunk}',
  description: 'Chunks not trained on (stale or malformed)',
});

/** Old parameter objects kept in the store, for policy replicas that are a few versions behind. */
const KEEP_VERSIONS = 8;

export class MeshRun {
  state: RunAnnouncement['state'] = 'running';
  error = '';
  /** Policy versions count from 1 (the initial parameters). */
  version = 1;
  updates = 0;
  private episodes = 0;
  private baseline = 0;
  private metrics: Record<string, number> = {};
  private consumed = 0;
  private dropped = 0;
  private lagSum = 0;
  private lagMax = 0;
  private readonly byActor: Record<string, number> = {};
  private publishedVersion = 0;
  /** Last chunk sequence consumed per actor, published so that actors know when to play the next. */
  private readonly consumedThrough: ConsumerProgress['consumed'] = {};
  private readonly totalUpdates: number;
  private readonly listeners = new Set<(r: Run) => void>();
  private subscription: Subscription | undefined;
  private trainer!: Trainer;
  private setup!: WmilSetup;
  private curriculum: Curriculum;
  private lastCheckpoint: string | undefined;
  /** Left running for another learner: this one no longer trains it. */
  handedOver = false;
  private t0 = 0;
  private readonly runDir: string;
  private finished: Promise<void> | undefined;

  constructor(
    readonly id: string,
    readonly cfg: WmilConfig,
    private readonly bus: Bus,
    private readonly log: Logger,
    outDir: string,
    /** Take over a run another learner announced: resume from its checkpoint object. */
    private readonly takeOver?: { checkpoint?: string; publishedVersion: number },
  ) {
    this.totalUpdates = Math.ceil(cfg.train.total_episodes / cfg.env.num_envs);
    this.curriculum = new Curriculum(cfg, envShape(cfg).numLevels);
    this.runDir = join(outDir, id);
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    this.setup = buildWmil(cfg, { offPolicyCorrection: cfg.mesh.off_policy_correction });
    if (cfg.env.start_level >= this.setup.numLevels)
      throw new Error(`env.start_level: ${cfg.env.id} has levels 0..${this.setup.numLevels - 1}, got ${cfg.env.start_level}`);
    this.trainer = await Trainer.create(this.setup.program, initParameters(this.setup.model, new Rng(cfg.run.seed)), {
      intraOpThreads: cfg.train.threads,
      // The step runs in a worker thread: this process also serves gRPC and consumes NATS.
      inWorker: true,
    });
    mkdirSync(join(this.runDir, 'checkpoints'), { recursive: true });
    writeFileSync(join(this.runDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
    if (this.takeOver) await this.resume(this.takeOver);
    else writeFileSync(join(this.runDir, 'metrics.jsonl'), '');
    await this.publishPolicy(buildPolicyProgram(this.setup.model).onnx);
    await this.announce();
    this.t0 = performance.now();
    this.subscription = await this.bus.consume({ subject: subjects.trajectories(this.id), durable: `learner-${this.id}` }, (m) =>
      this.onChunk(m),
    );
    this.log.info('run started', { run: this.id, env: cfg.env.id, updates: this.totalUpdates });
  }

  /**
   * Continues a run from its last checkpoint. Updates after that checkpoint are lost (their chunks
   * were acked); unacked chunks come again from the durable consumer. Versions keep moving forward
   * past whatever the previous learner published, because policy services never go back.
   */
  private async resume(from: { checkpoint?: string; publishedVersion: number }): Promise<void> {
    if (from.checkpoint) {
      const bytes = await this.bus.objects.get(from.checkpoint);
      if (!bytes) throw new Error(`checkpoint: object ${from.checkpoint} is missing`);
      const path = join(this.runDir, 'checkpoints', 'taken-over.safetensors');
      writeFileSync(path, bytes);
      const meta = await loadTrainingCheckpoint(path, this.trainer);
      this.updates = this.trainer.stepCount;
      this.episodes = this.updates * this.cfg.env.num_envs;
      this.baseline = Number(meta.baseline);
      this.curriculum = new Curriculum(this.cfg, this.setup.numLevels, { level: Number(meta.level) });
      this.lastCheckpoint = from.checkpoint;
    }
    this.version = Math.max(this.updates + 1, from.publishedVersion + 1);
    this.log.info('run taken over', { run: this.id, updates: this.updates, version: this.version, checkpoint: from.checkpoint ?? null });
  }

  private async announce(): Promise<void> {
    const a: RunAnnouncement = {
      run_id: this.id,
      state: this.state,
      seed: this.cfg.run.seed,
      env: {
        id: this.cfg.env.id,
        num_symbols: this.cfg.env.num_symbols,
        max_episode_steps: this.cfg.env.max_episode_steps,
        num_envs: this.cfg.env.num_envs,
      },
      level: this.curriculum.level,
      actors_per_replica: this.cfg.mesh.actors_per_replica,
      max_chunks_in_flight: this.cfg.mesh.max_chunks_in_flight,
      config: JSON.stringify(this.cfg),
      checkpoint: this.lastCheckpoint,
    };
    await this.bus.kv.put(keys.run(this.id), encodeJson(a));
  }

  private async publishPolicy(program?: Uint8Array): Promise<void> {
    this.publishedVersion = this.version;
    await publishPolicy(this.bus, this.id, {
      version: this.version,
      params: this.trainer.flatParams as Float32Array,
      program,
      spec: {
        obs_dim: this.setup.obsDim,
        num_actions: this.setup.numActions,
        model: 'BabyModel',
        num_parameters: this.setup.model.parameterCount(),
      },
    });
    // Nobody waits on the clean-up, so it does not hold up the next chunk.
    if (this.version > KEEP_VERSIONS)
      this.bus.objects
        .delete(objects.policyParams(this.id, this.version - KEEP_VERSIONS))
        .catch((e) => this.log.warn('delete failed', { error: String(e) }));
  }

  private async onChunk(m: BusMessage): Promise<void> {
    if (this.state !== 'running') return m.ack();
    let chunk: TrajectoryChunk;
    try {
      chunk = TrajectoryChunk.decode(m.data);
      this.checkShape(chunk);
    } catch (e) {
      this.log.warn('malformed chunk dropped', { run: this.id, error: (e as Error).message });
      this.dropped++;
      return m.term();
    }
    const lag = this.version - chunk.policyVersion;
    lagHistogram.record(lag, { run: this.id });
    if (lag > this.cfg.mesh.max_policy_lag || lag < 0) {
      this.dropped++;
      droppedCounter.add(1, { run: this.id, reason: 'stale' });
      m.ack();
      return this.markConsumed(chunk);
    }
    try {
      await inSpan(
        'learner',
        'learner.train_chunk',
        { kind: SpanKind.CONSUMER, parent: extractContext(m.headers), attributes: { 'rlmesh.run': this.id, 'rlmesh.policy_lag': lag } },
        () => this.train(chunk, lag),
      );
    } catch (e) {
      m.term();
      if ((e as Error).name === 'TensorError') {
        this.log.warn('malformed chunk dropped', { run: this.id, actor: chunk.actorId, error: (e as Error).message });
        this.dropped++;
        return this.markConsumed(chunk);
      }
      // A train step that fails on a well-formed chunk will fail on the next one too.
      return this.finish('failed', (e as Error).message);
    }
    m.ack();
    await this.markConsumed(chunk);
    if (this.updates >= this.totalUpdates) await this.finish('completed');
  }

  /** Tells the chunk's actor it may play another (after the policy it should use is published). */
  private async markConsumed(chunk: TrajectoryChunk): Promise<void> {
    this.consumedThrough[chunk.actorId] = Math.max(this.consumedThrough[chunk.actorId] ?? -1, chunk.sequence);
    const progress: ConsumerProgress = { version: this.publishedVersion, consumed: this.consumedThrough };
    await this.bus.kv.put(keys.progress(this.id), encodeJson(progress));
  }

  private checkShape(c: TrajectoryChunk): void {
    const { num_envs: N, max_episode_steps: T } = this.cfg.env;
    if (c.numEnvs !== N || c.numSteps !== T) throw new Error(`chunk is [${c.numSteps}, ${c.numEnvs}], run expects [${T}, ${N}]`);
  }

  private async train(c: TrajectoryChunk, lag: number): Promise<void> {
    const { num_envs: N, max_episode_steps: T } = this.cfg.env;
    const S = this.setup.obsDim;
    const B = T * N;
    const tn = [T, N];
    const obs = decodeTensor('obs', c.obs, { dtype: 'float32', shape: [T, N, S] }).data;
    const next = decodeTensor('next_obs', c.nextObs, { dtype: 'float32', shape: [T, N, S] }).data;
    const actions = decodeTensor('actions', c.actions, { dtype: 'int32', shape: tn }).data;
    const behaviour = decodeTensor('log_probs', c.logProbs, { dtype: 'float32', shape: tn }).data;
    const success = decodeTensor('success', c.success, { dtype: 'uint8', shape: tn }).data;
    const terminated = decodeTensor('terminated', c.terminated, { dtype: 'uint8', shape: tn }).data;
    const truncated = decodeTensor('truncated', c.truncated, { dtype: 'uint8', shape: tn }).data;
    const done = terminated.map((t, i) => t | truncated[i]);
    const feed: Feed = {
      obs: { data: obs, shape: [B, S] },
      actions: { data: BigInt64Array.from(actions, (a) => BigInt(a)), shape: [B] },
      next_obs: { data: next, shape: [B, S] },
      baseline: { data: Float32Array.of(this.baseline), shape: [] },
    };
    if (this.cfg.mesh.off_policy_correction) feed.behaviour_log_prob = { data: behaviour, shape: [B] };
    for (const comp of this.setup.components) {
      const r = decodeTensor(`rewards.${comp}`, c.rewards[comp], { dtype: 'float32', shape: tn }).data;
      feed[`return.${comp}`] = { data: discountedReturns(r, done, T, N, this.cfg.algo.gamma), shape: [B] };
    }
    this.metrics = await this.trainer.step(feed, this.cfg.algo.lr);
    if (this.cfg.algo.baseline === 'ema') this.baseline = this.metrics.baseline;
    this.updates++;
    updatesCounter.add(1, { run: this.id });
    this.episodes += N;
    this.consumed++;
    this.lagSum += lag;
    this.lagMax = Math.max(this.lagMax, lag);
    this.byActor[c.actorId] = (this.byActor[c.actorId] ?? 0) + 1;
    const batchSuccess = success.reduce((a, b) => a + b, 0) / B;
    // Success counts toward the curriculum only for chunks played at the current level.
    if (c.level === this.curriculum.level && this.curriculum.record(batchSuccess))
      this.announce().catch((e) => this.log.warn('announce failed', { error: String(e) }));
    appendFileSync(
      join(this.runDir, 'metrics.jsonl'),
      `${JSON.stringify({ update: this.updates, episodes: this.episodes, level: c.level, success: batchSuccess, success_mean: this.curriculum.success, policy_lag: lag, actor: c.actorId, metrics: this.metrics })}\n`,
    );
    this.version++;
    if (this.updates % this.cfg.mesh.publish_every === 0 || this.updates >= this.totalUpdates) await this.publishPolicy();
    const every = this.cfg.train.checkpoint_every;
    if (every > 0 && this.updates % every === 0 && this.updates < this.totalUpdates) await this.checkpoint();
    this.notify();
  }

  private async checkpoint(): Promise<void> {
    const path = join(this.runDir, 'checkpoints', `update-${String(this.updates).padStart(6, '0')}.safetensors`);
    await saveTrainingCheckpoint(path, this.trainer, {
      baseline: String(this.baseline),
      level: String(this.curriculum.level),
      config: JSON.stringify(this.cfg),
    });
    const name = objects.checkpoint(this.id, this.updates);
    await this.bus.objects.put(name, readFileSync(path));
    this.lastCheckpoint = name;
    if (this.state === 'running') await this.announce();
  }

  /** Ends the run: no more chunks, final outputs written, the end announced to actors. */
  finish(state: 'completed' | 'stopped' | 'failed', error = ''): Promise<void> {
    this.finished ??= (async () => {
      this.state = state;
      this.error = error;
      // The consumer is stopped from outside the handler that may be calling us (see learner-core).
      if (this.trainer) {
        await this.checkpoint();
        await exportPolicy(this.runDir, this.cfg, this.setup.model, this.trainer.parameters());
        const mvp = mvpCriteria(join(this.runDir, 'metrics.jsonl'), this.setup.numActions);
        writeFileSync(join(this.runDir, 'summary.json'), `${JSON.stringify({ ...this.toProto(), mvp }, null, 2)}\n`);
      }
      await this.announce();
      this.log.info('run ended', { run: this.id, state, updates: this.updates, success: this.curriculum.success, error });
      this.notify();
      setImmediate(() => {
        this.subscription?.stop().catch(() => undefined);
        this.bus.deleteConsumer(`learner-${this.id}`).catch(() => undefined);
      });
    })();
    return this.finished;
  }

  /** Stops training here but leaves the run announced as running, for another learner to take over. */
  async handOver(): Promise<void> {
    this.handedOver = true;
    await this.subscription?.stop();
    await this.trainer?.release();
    this.notify();
    this.log.info('run handed over', { run: this.id, updates: this.updates, checkpoint: this.lastCheckpoint ?? null });
  }

  async release(): Promise<void> {
    await this.subscription?.stop();
    await this.trainer?.release();
  }

  onChange(fn: (r: Run) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private notify(): void {
    const r = this.toProto();
    for (const fn of this.listeners) fn(r);
  }

  toProto(): Run {
    const seconds = this.t0 ? (performance.now() - this.t0) / 1000 : 0;
    return {
      runId: this.id,
      state: STATE[this.state],
      envId: this.cfg.env.id,
      policyVersion: this.version,
      updates: this.updates,
      totalUpdates: this.totalUpdates,
      episodes: this.episodes,
      success: this.curriculum.success,
      level: this.curriculum.level,
      metrics: { ...this.metrics },
      chunksConsumed: this.consumed,
      chunksDropped: this.dropped,
      policyLagMean: this.consumed ? this.lagSum / this.consumed : 0,
      policyLagMax: this.lagMax,
      chunksByActor: { ...this.byActor },
      error: this.error,
      updatesPerS: seconds > 0 ? this.updates / seconds : 0,
      episodesPerS: seconds > 0 ? this.episodes / seconds : 0,
    };
  }
}
