/**
 * A rollout actor: one vectorised environment group that plays a run's episodes against the policy
 * service and publishes each rollout as a TrajectoryChunk to rlmesh.traj.<run>.
 *
 * One chunk = N environments reset together (seeded from run seed, actor id and chunk sequence) and
 * stepped T = max_episode_steps times, one PolicyService.Act call per step. Flow control: an actor
 * publishes at most `chunks_per_version` chunks under one policy version, then waits for a newer
 * one, which bounds the learner's policy lag without a central scheduler. The trace context of the
 * rollout span travels in the chunk's NATS headers, so a trace follows a chunk from here through
 * the policy service to the learner.
 * The version check is end to end: the actor asks Act for the version it wants (min_version), so a
 * policy replica that has not swapped the new weights in yet makes it wait rather than act stale.
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
  private latestVersion = -1;
  /** The version the policy service last answered with (-1: none yet). */
  private lastServed = -1;
  private readonly publishedAt = new Map<number, number>();
  private wakeUp: (() => void) | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

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

  /** A newer policy version was announced: an actor waiting for one can go on. */
  notifyVersion(version: number): void {
    if (version > this.latestVersion) this.latestVersion = version;
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
      const out = await policy.act(run.run_id, obs, N, this.wantedVersion());
      this.lastServed = Math.max(this.lastServed, out.version);
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
        this.publishedAt.set(chunk.policyVersion, (this.publishedAt.get(chunk.policyVersion) ?? 0) + 1);
        for (const v of this.publishedAt.keys()) if (v < chunk.policyVersion - 8) this.publishedAt.delete(v);
        return chunk;
      },
    );
  }

  /** The version the next chunk should be played with: the next one once this one's share of chunks is out. */
  private wantedVersion(): number {
    if (this.lastServed < 0) return 0;
    const used = this.publishedAt.get(this.lastServed) ?? 0;
    return used >= this.opts.run.chunks_per_version ? this.lastServed + 1 : this.lastServed;
  }

  /** True while the version this actor wants has not been announced yet. */
  private mustWait(): boolean {
    return this.latestVersion < this.wantedVersion();
  }

  start(): void {
    this.loop ??= (async () => {
      let failures = 0;
      while (!this.stopped) {
        if (this.mustWait()) {
          // Woken by notifyVersion; the timeout re-checks in case an announcement was missed.
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
