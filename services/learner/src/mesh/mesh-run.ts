/**
 * One training run in the mesh: a learner core (the same one the embedded trainer drives; LearnerRun
 * or SequenceLearnerRun, seen through MeshTrainee) fed by trajectory chunks from any number of env
 * actors. This file only adapts: it decodes chunks,
 * drops stale ones, publishes policy versions (object store + KV pointer), announces the run, puts
 * checkpoints in the object store, and reports progress for the actors' flow control.
 *   start: trainee -> (take over: resume from the checkpoint object) -> publish policy -> announce
 *          -> pull-consume rlmesh.traj.<run> (durable consumer, explicit ack)
 *   chunk: decode + check -> policy lag (drop beyond max_policy_lag) -> trainee.update -> publish
 *          version -> ack -> progress
 *   end:   trainee.finish (checkpoint, exports, summary); announce completed / stopped / failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metrics, SpanKind } from '@opentelemetry/api';
import {
  type Bus,
  type BusMessage,
  type ConsumerProgress,
  encodeAnnouncement,
  encodeJson,
  extractContext,
  inSpan,
  keys,
  type Logger,
  objects,
  publishPolicy,
  type RunStateName,
  type Subscription,
  subjects,
} from '@rlmesh/mesh';
import { type Run, RunState, TrajectoryChunk } from '@rlmesh/proto';
import type { RunConfig } from '../run/config';
import { isSequenceRunConfig, type SequenceRunConfig } from '../run/sequence-config';
import { ActivationSampler, captureHooks } from './activation-sampler';
import { sequenceTrainee } from './sequence-trainee';
import { type MeshRunConfig, type MeshTrainee, numericTrainee } from './trainee';

const STATE: Record<RunStateName, RunState> = {
  running: RunState.RUN_STATE_RUNNING,
  completed: RunState.RUN_STATE_COMPLETED,
  stopped: RunState.RUN_STATE_STOPPED,
  failed: RunState.RUN_STATE_FAILED,
};
/**
 * The learner's instruments, made on first use: the OpenTelemetry API hands out no-op meters until a
 * MeterProvider is registered, and this module can be loaded before `rlmesh serve` registers one.
 */
let instruments: ReturnType<typeof makeInstruments> | undefined;
function makeInstruments() {
  const meter = metrics.getMeter('rlmesh.learner');
  return {
    updates: meter.createCounter('rlmesh.learner.updates', { unit: '{update}', description: 'Train steps taken' }),
    lag: meter.createHistogram('rlmesh.learner.policy_lag', {
      unit: '{version}',
      description: 'Learner version minus the version that acted in a chunk',
      advice: { explicitBucketBoundaries: [0, 1, 2, 4, 8, 16, 32] },
    }),
    dropped: meter.createCounter('rlmesh.learner.chunks.dropped', {
      unit: '{chunk}',
      description: 'Chunks not trained on (stale or malformed)',
    }),
  };
}
const learnerInstruments = () => (instruments ??= makeInstruments());

/** Old parameter objects kept in the store, for policy replicas that are a few versions behind. */
const KEEP_VERSIONS = 8;
/** Stream positions of trained chunks remembered, to skip one redelivered after its ack was lost. */
const TRAINED_MEMORY = 4096;
/** Between tries to announce a run's end while the bus is unreachable. */
const ANNOUNCE_RETRY_MS = 5000;

export class MeshRun {
  state: RunStateName = 'running';
  error = '';
  private run!: MeshTrainee;
  private consumed = 0;
  private dropped = 0;
  private lagSum = 0;
  private lagMax = 0;
  private resumedFrom = 0;
  private readonly byActor: Record<string, number> = {};
  private publishedVersion = 0;
  /** Last chunk sequence consumed per actor, published so that actors know when to play the next. */
  private readonly consumedThrough: ConsumerProgress['consumed'] = {};
  private readonly listeners = new Set<(r: Run) => void>();
  private subscription: Subscription | undefined;
  private lastCheckpoint: string | undefined;
  /** Left running for another learner: this one no longer trains it. */
  handedOver = false;
  private t0 = 0;
  private readonly runDir: string;
  private finished: Promise<void> | undefined;
  /** Stream positions of the chunks trained on, oldest first (bounded by TRAINED_MEMORY). */
  private readonly trained = new Set<number>();
  /** Released or handed over: nothing here writes to the bus for this run any more. */
  private closing = false;
  /** Publishes sampled activations before each update when the config names capture hooks. */
  private sampler: ActivationSampler | undefined;

  constructor(
    readonly id: string,
    readonly cfg: MeshRunConfig,
    private readonly bus: Bus,
    private readonly log: Logger,
    outDir: string,
    /** Take over a run another learner announced: resume from its checkpoint object. */
    private readonly takeOver?: { checkpoint?: string; publishedVersion: number },
  ) {
    this.runDir = join(outDir, id);
  }

  get updates(): number {
    return this.run?.updates ?? 0;
  }

  async start(): Promise<void> {
    let resumeFrom: string | undefined;
    if (this.takeOver?.checkpoint) {
      const bytes = await this.bus.objects.get(this.takeOver.checkpoint);
      if (!bytes) throw new Error(`checkpoint: object ${this.takeOver.checkpoint} is missing`);
      mkdirSync(join(this.runDir, 'checkpoints'), { recursive: true });
      resumeFrom = join(this.runDir, 'checkpoints', 'taken-over.safetensors');
      writeFileSync(resumeFrom, bytes);
      this.lastCheckpoint = this.takeOver.checkpoint;
    }
    this.run = isSequenceRunConfig(this.cfg)
      ? await sequenceTrainee(this.cfg as SequenceRunConfig, this.runDir)
      : await numericTrainee(this.cfg as RunConfig, this.runDir, resumeFrom);
    const hooks = captureHooks(this.cfg.mesh.capture_hooks);
    if (hooks.length > 0 && this.run.capture)
      this.sampler = await ActivationSampler.open(
        this.bus,
        this.id,
        this.run.capture.model,
        hooks,
        this.cfg.mesh.capture_rows,
        this.cfg.run.seed,
      );
    if (this.takeOver) {
      this.resumedFrom = this.run.updates;
      // Versions keep moving forward past whatever the previous learner published: policy services never go back.
      this.run.continueAfter(this.takeOver.publishedVersion);
      this.log.info('run taken over', { run: this.id, updates: this.run.updates, version: this.run.version });
    }
    await this.publishPolicy(true);
    await this.announce();
    this.t0 = performance.now();
    this.subscription = await this.bus.consume({ subject: subjects.trajectories(this.id), durable: `learner-${this.id}` }, (m) =>
      this.onChunk(m),
    );
    this.log.info('run started', { run: this.id, env: this.cfg.env.id, algo: this.cfg.algo.name, updates: this.run.total });
  }

  private async announce(): Promise<void> {
    const c = this.cfg;
    await this.bus.kv.put(
      keys.run(this.id),
      encodeAnnouncement({
        runId: this.id,
        state: this.state,
        seed: c.run.seed,
        envId: c.env.id,
        envOptions: JSON.stringify(c.env.options),
        numEnvs: this.run?.chunkShape.numEnvs ?? 0,
        numSteps: this.run?.chunkShape.numSteps ?? 0,
        level: this.run?.level ?? 0,
        actorsPerReplica: c.mesh.actors_per_replica,
        maxChunksInFlight: c.mesh.max_chunks_in_flight,
        inference: c.mesh.inference,
        config: JSON.stringify(c),
        checkpoint: this.lastCheckpoint ?? '',
      }),
    );
  }

  private async publishPolicy(first = false): Promise<void> {
    const run = this.run;
    this.publishedVersion = run.version;
    await publishPolicy(this.bus, this.id, { version: run.version, ...run.publication(first) });
    // Nobody waits on the clean-up, so it does not hold up the next chunk.
    if (run.version > KEEP_VERSIONS)
      this.bus.objects
        .delete(objects.policyParams(this.id, run.version - KEEP_VERSIONS))
        .catch((e) => this.log.warn('delete failed', { error: String(e) }));
  }

  private async onChunk(m: BusMessage): Promise<void> {
    if (this.state !== 'running') return m.ack();
    // NATS went away while this chunk was being trained on, so its ack was lost and it came again.
    if (this.trained.has(m.streamSequence)) {
      this.log.info('redelivered chunk skipped: already trained', { run: this.id, streamSequence: m.streamSequence });
      return m.ack();
    }
    const run = this.run;
    let chunk: TrajectoryChunk;
    let rollout: { policyVersion: number };
    try {
      chunk = TrajectoryChunk.decode(m.data);
      rollout = run.decode(chunk);
    } catch (e) {
      this.log.warn('malformed chunk dropped', { run: this.id, error: (e as Error).message });
      this.dropped++;
      learnerInstruments().dropped.add(1, { run: this.id, reason: 'malformed' });
      return m.term();
    }
    const lag = run.version - rollout.policyVersion;
    learnerInstruments().lag.record(lag, { run: this.id });
    if (lag > this.cfg.mesh.max_policy_lag || lag < 0) {
      this.dropped++;
      learnerInstruments().dropped.add(1, { run: this.id, reason: 'stale' });
      m.ack();
      return this.markConsumed(chunk);
    }
    const levelBefore = run.level;
    try {
      const step = inSpan(
        'learner',
        'learner.train_chunk',
        { kind: SpanKind.CONSUMER, parent: extractContext(m.headers), attributes: { 'rlmesh.run': this.id, 'rlmesh.policy_lag': lag } },
        async () => {
          await this.sample(rollout);
          await run.update(rollout);
          learnerInstruments().updates.add(1, { run: this.id });
        },
      );
      this.training = step.catch(() => undefined);
      await step;
    } catch (e) {
      m.term();
      // A train step that fails on a well-formed chunk will fail on the next one too.
      return this.finish('failed', (e as Error).message);
    }
    this.rememberTrained(m.streamSequence);
    this.consumed++;
    this.lagSum += lag;
    this.lagMax = Math.max(this.lagMax, lag);
    this.byActor[chunk.actorId] = (this.byActor[chunk.actorId] ?? 0) + 1;
    // The bus calls below wait (retrying) while NATS is down: the run pauses here and goes on when it is back.
    // One that still fails does not fail the run: the next update publishes again.
    try {
      if (run.level !== levelBefore) await this.announce();
      if (run.updates % this.cfg.mesh.publish_every === 0 || run.done) await this.publishPolicy();
      const every = this.cfg.train.checkpoint_every;
      // A StopRun that came while this waited for the bus has released the run and written its own checkpoint.
      if (every > 0 && run.updates % every === 0 && !run.done && this.state === 'running')
        await this.storeCheckpoint(await run.checkpoint());
      m.ack();
      await this.markConsumed(chunk);
    } catch (e) {
      m.ack();
      this.log.warn('publishing after an update failed; the next update publishes again', {
        run: this.id,
        update: run.updates,
        error: (e as Error).message,
      });
    }
    this.notify();
    if (run.done) await this.finish('completed');
  }

  /** Captured with the weights that are about to be updated; a failed publish costs the batch, not the run. */
  private async sample(rollout: { policyVersion: number }): Promise<void> {
    const capture = this.run.capture;
    if (!this.sampler || !capture) return;
    const o = capture.observations(rollout);
    try {
      await this.sampler.capture(capture.params(), this.run.version, o.level, o.data, o.rows);
    } catch (e) {
      this.log.warn('activation batch not published', { run: this.id, version: this.run.version, error: (e as Error).message });
    }
  }

  private rememberTrained(streamSequence: number): void {
    this.trained.add(streamSequence);
    if (this.trained.size > TRAINED_MEMORY) this.trained.delete(this.trained.values().next().value as number);
  }

  /** Tells the chunk's actor it may play another (after the policy it should use is published). */
  private async markConsumed(chunk: TrajectoryChunk): Promise<void> {
    this.consumedThrough[chunk.actorId] = Math.max(this.consumedThrough[chunk.actorId] ?? -1, chunk.sequence);
    const progress: ConsumerProgress = { version: this.publishedVersion, consumed: this.consumedThrough };
    await this.bus.kv.put(keys.progress(this.id), encodeJson(progress));
  }

  /** Puts a checkpoint in the object store, for any learner process to resume from (null: none to store). */
  private async storeCheckpoint(bytes: Uint8Array | null): Promise<void> {
    if (!bytes) return;
    const name = objects.checkpoint(this.id, this.run.updates);
    await this.bus.objects.put(name, bytes);
    this.lastCheckpoint = name;
    if (this.state === 'running') await this.announce();
  }

  /** Ends the run: no more chunks, final outputs written, the end announced to actors. */
  finish(state: 'completed' | 'stopped' | 'failed', error = ''): Promise<void> {
    this.finished ??= (async () => {
      this.state = state;
      this.error = error;
      // Whatever fails below, the run ends: watchers are told and the end is announced, so that
      // no client waits on it and no actor plays it any more.
      if (this.run) {
        // A StopRun can arrive while a train step runs: the final outputs and release wait for it.
        await this.training;
        try {
          await this.run.finish(this.toProto());
        } catch (e) {
          this.log.error('final outputs failed', { run: this.id, error: (e as Error).message });
          if (this.state === 'completed') [this.state, this.error] = ['failed', `final outputs: ${(e as Error).message}`];
        }
        // An ended run keeps its counters but not its train-step worker and act session.
        await this.releaseRun().catch((e) => this.log.warn('release failed', { run: this.id, error: String(e) }));
      }
      // Watchers learn the end from this process, before the bus calls below that wait while NATS is down.
      this.log.info('run ended', { run: this.id, state: this.state, updates: this.updates, error: this.error });
      this.notify();
      if (this.run) {
        try {
          await this.storeCheckpoint(this.run.lastCheckpoint());
        } catch (e) {
          this.log.warn('final checkpoint not stored in the object store', { run: this.id, error: (e as Error).message });
        }
      }
      await this.announceEnd();
      // The consumer is stopped from outside the handler that may be calling us.
      setImmediate(() => {
        this.subscription?.stop().catch(() => undefined);
        this.bus.deleteConsumer(`learner-${this.id}`).catch(() => undefined);
      });
    })();
    return this.finished;
  }

  /**
   * Announces the end, and while the bus stays unreachable (past its own retries) keeps trying in the
   * background until it succeeds or this learner lets the run go: actors stop only when they see it.
   */
  private async announceEnd(): Promise<void> {
    const attempt = () => this.announce().then(() => true);
    const failed = (e: unknown) => {
      this.log.warn('announcing the end of the run failed; retrying', { run: this.id, state: this.state, error: (e as Error).message });
      return false;
    };
    if (await attempt().catch(failed)) return;
    void (async () => {
      while (!this.closing) {
        await new Promise((r) => setTimeout(r, ANNOUNCE_RETRY_MS));
        if (this.closing || (await attempt().catch(failed))) return;
      }
    })();
  }

  /** Stops training here but leaves the run announced as running, for another learner to take over. */
  async handOver(): Promise<void> {
    this.closing = true;
    this.handedOver = true;
    await this.subscription?.stop();
    await this.releaseRun();
    this.notify();
    this.log.info('run handed over', { run: this.id, updates: this.updates, checkpoint: this.lastCheckpoint ?? null });
  }

  async release(): Promise<void> {
    this.closing = true;
    await this.subscription?.stop();
    await this.releaseRun();
  }

  private released?: Promise<void>;
  /** The train step in progress, if any (settled, never rejecting). */
  private training: Promise<unknown> = Promise.resolve();
  /** Frees the learner run's worker thread and sessions, once whoever asks first. */
  private releaseRun(): Promise<void> {
    this.released ??= (async () => {
      await this.sampler?.release();
      await this.run?.release();
    })();
    return this.released;
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
    const run = this.run;
    const seconds = this.t0 ? (performance.now() - this.t0) / 1000 : 0;
    const trained = (run?.updates ?? 0) - this.resumedFrom;
    const stepsPerUpdate = run?.stepsPerUpdate ?? 0;
    return {
      runId: this.id,
      state: STATE[this.state],
      envId: this.cfg.env.id,
      policyVersion: run?.version ?? 1,
      updates: run?.updates ?? 0,
      totalUpdates: run?.total ?? 0,
      episodes: run?.episodes ?? 0,
      envSteps: run?.envSteps ?? 0,
      returnMean: run?.returnMean() ?? 0,
      success: run?.success ?? 0,
      level: run?.level ?? 0,
      metrics: { ...(run?.metrics ?? {}) },
      chunksConsumed: this.consumed,
      chunksDropped: this.dropped,
      policyLagMean: this.consumed ? this.lagSum / this.consumed : 0,
      policyLagMax: this.lagMax,
      chunksByActor: { ...this.byActor },
      error: this.error,
      updatesPerS: seconds > 0 ? trained / seconds : 0,
      episodesPerS: seconds > 0 ? (trained * stepsPerUpdate) / seconds : 0,
      resumedFromUpdate: this.resumedFrom,
    };
  }
}
