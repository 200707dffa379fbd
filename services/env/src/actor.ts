/**
 * A rollout actor in the mesh: an actor loop of core (the same one the embedded trainer runs) plus
 * the mesh's adapters, publishing every rollout as a TrajectoryChunk to rlmesh.traj.<run>, with the
 * trace context of its span in the message headers. What it plays is a ChunkSource: for envs that
 * take actions, core's RolloutCollector acting through the policy service (central inference) or a
 * local copy of each published version (local inference), see numericSource; for text envs, the
 * SequenceCollector generating through the policy service (sequence-source.ts).
 *
 * Flow control, without a central scheduler: an actor keeps at most `max_chunks_in_flight` chunks
 * published but not yet consumed by the learner (which reports, per actor, the last chunk it
 * consumed), and plays each chunk with the newest policy version announced, asking for it by
 * min_version so that a policy that has not swapped it in yet waits instead of acting stale.
 */
import { type Counter, metrics, SpanKind } from '@opentelemetry/api';
import { type ActFn, actorSeed, makeVectorEnv, RolloutCollector } from '@rlmesh/core';
import '@rlmesh/envs';
import {
  type Bus,
  type ConsumerProgress,
  chunkBytes,
  decodeJson,
  encodeRollout,
  injectContext,
  inSpan,
  keys,
  type Logger,
  subjects,
} from '@rlmesh/mesh';
import type { RunAnnouncement, TrajectoryChunk } from '@rlmesh/proto';
import { PolicyUnreachableError } from './policy-client';

/** What an actor plays: one chunk per call, with at least the policy version it is given. */
export interface ChunkSource {
  /** Chunks played so far (the next chunk's sequence). */
  readonly sequence: number;
  /** The run's announcement changed its curriculum level. */
  setLevel(level: number): void;
  play(minVersion: number): Promise<{ chunk: TrajectoryChunk; steps: number; sequence: number; policyVersion: number }>;
}

/** An env that takes actions, played by RolloutCollector with `act` (the policy service or a local copy of the policy). */
export function numericSource(run: RunAnnouncement, actorId: string, act: ActFn): ChunkSource {
  const vec = makeVectorEnv(run.envId, JSON.parse(run.envOptions || '{}'), run.numEnvs, 'env_options');
  const collector = new RolloutCollector(vec, actorId, run.numSteps, actorSeed(run.seed, actorId), run.level);
  return {
    get sequence() {
      return collector.sequence;
    },
    setLevel: (level) => collector.setLevel(level),
    play: async (minVersion) => {
      const r = await collector.collect(act, minVersion);
      return { chunk: encodeRollout(run.runId, r), steps: r.numSteps * r.numEnvs, sequence: r.sequence, policyVersion: r.policyVersion };
    },
  };
}

export interface ActorOptions {
  actorId: string;
  run: RunAnnouncement;
  source: ChunkSource;
  bus: Bus;
  logger: Logger;
}

/**
 * The actors' instruments, made on first use: the OpenTelemetry API hands out no-op meters until a
 * MeterProvider is registered (rlmesh serve registers one), and this module may load before that.
 */
let instruments: { steps: Counter; chunks: Counter } | undefined;
function actorInstruments() {
  if (instruments) return instruments;
  const meter = metrics.getMeter('rlmesh.env');
  instruments = {
    steps: meter.createCounter('rlmesh.env.steps', { unit: '{step}', description: 'Environment steps taken by rollout actors' }),
    chunks: meter.createCounter('rlmesh.env.chunks.published', { unit: '{chunk}', description: 'Trajectory chunks published' }),
  };
  return instruments;
}

/** How long an actor waits for the learner to report its in-flight chunks before it gives up on them. */
const STALL_MS = 10_000;

export class RolloutActor {
  /** Newest policy version announced (0: none yet). */
  private latestVersion = 0;
  /** Sequences of chunks published and not yet reported consumed by the learner. */
  private inFlight: number[] = [];
  private waitingSince = 0;
  private wakeUp: (() => void) | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  get actorId(): string {
    return this.opts.actorId;
  }

  get sequence(): number {
    return this.opts.source.sequence;
  }

  constructor(private readonly opts: ActorOptions) {}

  /** The run's announcement changed (curriculum level). */
  setLevel(level: number): void {
    this.opts.source.setLevel(level);
  }

  /** A newer policy version was announced: the next chunk will be played with it. */
  notifyVersion(version: number): void {
    if (version > this.latestVersion) this.latestVersion = version;
  }

  /** The learner has consumed this actor's chunks up to `sequence`: room for more. */
  notifyConsumed(sequence: number): void {
    this.inFlight = this.inFlight.filter((s) => s > sequence);
    this.wakeUp?.();
  }

  /** Rolls out and publishes one chunk inside a span whose context the chunk carries. */
  async rolloutAndPublish(): Promise<void> {
    const { run, actorId, bus } = this.opts;
    return inSpan(
      'env',
      'actor.rollout',
      { kind: SpanKind.PRODUCER, attributes: { 'rlmesh.run': run.runId, 'rlmesh.actor': actorId } },
      async (span) => {
        const played = await this.opts.source.play(this.latestVersion);
        actorInstruments().steps.add(played.steps, { run: run.runId });
        span.setAttribute('rlmesh.policy_version', played.policyVersion);
        await bus.publish(subjects.trajectories(run.runId), chunkBytes(played.chunk), injectContext());
        actorInstruments().chunks.add(1, { run: run.runId });
        this.inFlight.push(played.sequence);
      },
    );
  }

  /** True while this actor has its share of chunks in flight. */
  private async mustWait(): Promise<boolean> {
    if (this.inFlight.length < this.opts.run.maxChunksInFlight) {
      this.waitingSince = 0;
      return false;
    }
    this.waitingSince ||= Date.now();
    if (Date.now() - this.waitingSince <= STALL_MS) return true;
    // No report for a while. Read the learner's progress itself: a report missed while the watch
    // reconnected counts, and while NATS is down this read waits for it (the actor pauses).
    this.waitingSince = 0;
    const { bus, run, actorId, logger } = this.opts;
    try {
      const progress = await bus.kv.get(keys.progress(run.runId));
      if (progress) {
        const { version, consumed } = decodeJson<ConsumerProgress>(progress);
        this.notifyVersion(version);
        if (consumed[actorId] !== undefined) this.notifyConsumed(consumed[actorId]);
      }
    } catch (e) {
      logger.debug('progress read failed', { actor: actorId, error: (e as Error).message });
    }
    if (this.inFlight.length < run.maxChunksInFlight) return false;
    // A chunk the learner never reports (lost with a restarted learner, trimmed by stream limits)
    // must not stop this actor for good.
    logger.warn('no progress report for in-flight chunks; counting them as lost', { actor: actorId, chunks: this.inFlight });
    this.inFlight = [];
    return false;
  }

  start(): void {
    this.loop ??= (async () => {
      let failures = 0;
      while (!this.stopped) {
        if (await this.mustWait()) {
          // Woken by notifyConsumed; the timeout re-checks in case a report was missed.
          await new Promise<void>((r) => {
            this.wakeUp = r;
            setTimeout(r, 250);
          });
          this.wakeUp = undefined;
          continue;
        }
        // Stopped while it waited for the bus.
        if (this.stopped) break;
        try {
          await this.rolloutAndPublish();
          failures = 0;
        } catch (e) {
          failures++;
          // An unreachable policy service is reported once by its client, not once per retry here.
          const level = e instanceof PolicyUnreachableError ? 'debug' : 'warn';
          this.opts.logger[level]('rollout failed; retrying', { actor: this.opts.actorId, error: (e as Error).message, failures });
          await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** failures)));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    await this.loop;
  }
}
