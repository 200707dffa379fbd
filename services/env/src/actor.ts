/**
 * A rollout actor: one vectorised environment group that plays a run's episodes against the policy
 * service and publishes each rollout as a TrajectoryChunk to rlmesh.traj.<run>.
 *
 * One chunk = N environments reset together (seeded from run seed, actor id and chunk sequence) and
 * stepped T = max_episode_steps times, one PolicyService.Act call per step. The trace context of the
 * rollout span travels in the chunk's NATS headers, so a trace follows a chunk from here through
 * the policy service to the learner.
 *
 * Flow control, without a central scheduler: an actor keeps at most `max_chunks_in_flight` chunks
 * published but not yet consumed by the learner (which reports, per actor, the last chunk it
 * consumed), and plays each chunk with the newest policy version announced, asking Act for it by
 * min_version so that a policy replica that has not swapped it in yet waits instead of acting stale.
 * A chunk therefore typically meets a learner at most (actors x max_chunks_in_flight - 1) versions
 * ahead; more only if other actors complete whole chunks while it is still being played.
 */
import { metrics, SpanKind } from '@opentelemetry/api';
import { type Bus, injectContext, inSpan, type Logger, type RunAnnouncement, subjects } from '@rlmesh/mesh';
import { encodeTensor, type Tensor, TrajectoryChunk } from '@rlmesh/proto';
import { makeEnv } from './registry';
import { VectorEnv } from './vector';

export interface ActResult {
  actions: Int32Array;
  logProbs: Float32Array;
  values: Float32Array;
  version: number;
}

/** What an actor needs from the policy service (a gRPC client in the mesh, the core in tests). */
export interface PolicyClient {
  /** `minVersion`: ask the policy service to serve at least this version (it waits a bounded time for it). */
  act(runId: string, obs: Float32Array, rows: number, minVersion?: number): Promise<ActResult>;
}

export interface ActorOptions {
  actorId: string;
  run: RunAnnouncement;
  policy: PolicyClient;
  bus: Bus;
  logger: Logger;
}

// No-ops until the process sets a MeterProvider (rlmesh serve does, with a Prometheus endpoint).
const meter = metrics.getMeter('rlmesh.env');
const envSteps = meter.createCounter('rlmesh.env.steps', { unit: '{step}', description: 'Environment steps taken by rollout actors' });
const chunksPublished = meter.createCounter('rlmesh.env.chunks.published', { unit: '{chunk}', description: 'Trajectory chunks published' });

/** How long an actor waits for the learner to report its in-flight chunks before it gives up on them. */
const STALL_MS = 10_000;

/** FNV-1a: a stable 31-bit number for an actor id, to derive distinct seeds per actor. */
function hash31(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) % 2 ** 31;
}

export class RolloutActor {
  sequence = 0;
  private readonly vec: VectorEnv;
  private level: number;
  /** Newest policy version announced (-1: none yet). */
  private latestVersion = -1;
  /** Sequences of chunks published and not yet reported consumed by the learner. */
  private inFlight: number[] = [];
  private waitingSince = 0;
  private wakeUp: (() => void) | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  get actorId(): string {
    return this.opts.actorId;
  }

  constructor(private readonly opts: ActorOptions) {
    const { env } = opts.run;
    const envOpts = { numSymbols: env.num_symbols, maxEpisodeSteps: env.max_episode_steps };
    this.vec = new VectorEnv(Array.from({ length: env.num_envs }, () => makeEnv(env.id, envOpts)));
    this.level = opts.run.level;
  }

  /** The run's announcement changed (curriculum level). */
  setLevel(level: number): void {
    this.level = level;
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

  /** Plays one chunk's episodes; returns the chunk without publishing it. */
  async rollout(): Promise<TrajectoryChunk> {
    const { run, actorId, policy } = this.opts;
    const N = this.vec.size;
    const T = run.env.max_episode_steps;
    const S = this.vec.obsDim;
    const B = T * N;
    const obsBuf = new Float32Array(B * S);
    const nextBuf = new Float32Array(B * S);
    const actions = new Int32Array(B);
    const logProbs = new Float32Array(B);
    const values = new Float32Array(B);
    const terminated = new Uint8Array(B);
    const truncated = new Uint8Array(B);
    const success = new Uint8Array(B);
    const rewards: Record<string, Float32Array> = Object.fromEntries(this.vec.rewardComponents.map((c) => [c, new Float32Array(B)]));
    const seed = (run.seed * 1_000_003 + hash31(actorId) * 7919 + this.sequence * 31) % 2 ** 31;
    let obs = this.vec.reset(seed, { difficulty: this.level });
    let version = Number.POSITIVE_INFINITY;
    for (let t = 0; t < T; t++) {
      const row = t * N;
      obsBuf.set(obs, row * S);
      const out = await policy.act(run.run_id, obs, N, Math.max(0, this.latestVersion));
      // A chunk is labelled with the oldest version that acted in it: its lag is never understated.
      version = Math.min(version, out.version);
      actions.set(out.actions, row);
      logProbs.set(out.logProbs, row);
      values.set(out.values, row);
      const step = this.vec.step(out.actions);
      for (let i = 0; i < N; i++) {
        const done = step.terminated[i] || step.truncated[i];
        nextBuf.set((done ? step.finalObs : step.obs).subarray(i * S, (i + 1) * S), (row + i) * S);
      }
      terminated.set(step.terminated, row);
      truncated.set(step.truncated, row);
      success.set(step.success, row);
      for (const c of this.vec.rewardComponents) rewards[c].set(step.rewards[c], row);
      obs = step.obs;
      envSteps.add(N, { run: run.run_id });
    }
    const tn = [T, N];
    return {
      runId: run.run_id,
      actorId,
      sequence: this.sequence++,
      policyVersion: version,
      groupId: `${actorId}/${seed}`,
      numSteps: T,
      numEnvs: N,
      level: this.level,
      obs: encodeTensor(obsBuf, [T, N, S]),
      actions: encodeTensor(actions, tn),
      logProbs: encodeTensor(logProbs, tn),
      values: encodeTensor(values, tn),
      rewards: Object.fromEntries(Object.entries(rewards).map(([c, r]): [string, Tensor] => [c, encodeTensor(r, tn)])),
      terminated: encodeTensor(terminated, tn),
      truncated: encodeTensor(truncated, tn),
      success: encodeTensor(success, tn),
      nextObs: encodeTensor(nextBuf, [T, N, S]),
    };
  }

  /** Rolls out and publishes one chunk inside a span whose context the chunk carries. */
  async rolloutAndPublish(): Promise<TrajectoryChunk> {
    const { run, actorId, bus } = this.opts;
    return inSpan(
      'env',
      'actor.rollout',
      { kind: SpanKind.PRODUCER, attributes: { 'rlmesh.run': run.run_id, 'rlmesh.actor': actorId } },
      async (span) => {
        const chunk = await this.rollout();
        span.setAttribute('rlmesh.policy_version', chunk.policyVersion);
        await bus.publish(subjects.trajectories(run.run_id), TrajectoryChunk.encode(chunk).finish(), injectContext());
        chunksPublished.add(1, { run: run.run_id });
        this.inFlight.push(chunk.sequence);
        return chunk;
      },
    );
  }

  /** True while this actor has its share of chunks in flight. */
  private mustWait(): boolean {
    if (this.inFlight.length < this.opts.run.max_chunks_in_flight) {
      this.waitingSince = 0;
      return false;
    }
    this.waitingSince ||= Date.now();
    // A chunk the learner never reports (lost with a restarted learner, trimmed by stream limits)
    // must not stop this actor for good.
    if (Date.now() - this.waitingSince > STALL_MS) {
      this.opts.logger.warn('no progress report for in-flight chunks; counting them as lost', {
        actor: this.opts.actorId,
        chunks: this.inFlight,
      });
      this.inFlight = [];
      this.waitingSince = 0;
      return false;
    }
    return true;
  }

  start(): void {
    this.loop ??= (async () => {
      let failures = 0;
      while (!this.stopped) {
        if (this.mustWait()) {
          // Woken by notifyConsumed; the timeout re-checks in case a report was missed.
          await new Promise<void>((r) => {
            this.wakeUp = r;
            setTimeout(r, 250);
          });
          this.wakeUp = undefined;
          continue;
        }
        try {
          await this.rolloutAndPublish();
          failures = 0;
        } catch (e) {
          failures++;
          this.opts.logger.warn('rollout failed; retrying', { actor: this.opts.actorId, error: (e as Error).message, failures });
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
