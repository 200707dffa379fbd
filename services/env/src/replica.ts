/**
 * An env replica's actor side: it watches the runs the learner announces (KV run.<run>) and runs
 * `actors_per_replica` RolloutActors for each running run, stopping them when the run ends, and
 * forwards policy-version announcements (KV policy.<run>) to them. Replicas need no registration:
 * start another one and it joins every running run; kill one and the others go on.
 */
import {
  type Bus,
  type ConsumerProgress,
  decodeJson,
  keys,
  type Logger,
  type PolicyPointer,
  type RunAnnouncement,
  type Subscription,
} from '@rlmesh/mesh';
import { type PolicyClient, RolloutActor } from './actor';

export interface ReplicaOptions {
  replicaId: string;
  bus: Bus;
  policy: PolicyClient;
  logger: Logger;
}

interface RunActors {
  actors: RolloutActor[];
  watches: Subscription[];
}

export class EnvReplica {
  private readonly runs = new Map<string, RunActors>();
  private runWatch: Subscription | undefined;
  private readonly stopping = new Set<Promise<void>>();

  constructor(private readonly opts: ReplicaOptions) {}

  async start(): Promise<void> {
    this.runWatch = await this.opts.bus.kv.watch('run.>', (_key, value) => {
      if (!value) return;
      const run = decodeJson<RunAnnouncement>(value);
      this.onAnnouncement(run).catch((e) => this.opts.logger.error('run announcement failed', { run: run.run_id, error: String(e) }));
    });
  }

  /** Runs with actors here, and how many chunks each actor has published. */
  status(): Record<string, number[]> {
    return Object.fromEntries([...this.runs].map(([id, r]) => [id, r.actors.map((a) => a.sequence)]));
  }

  private async onAnnouncement(run: RunAnnouncement): Promise<void> {
    const current = this.runs.get(run.run_id);
    if (run.state !== 'running') {
      if (current) await this.stopRun(run.run_id);
      return;
    }
    if (current) {
      for (const a of current.actors) a.setLevel(run.level);
      return;
    }
    const { replicaId, bus, policy, logger } = this.opts;
    const actors = Array.from(
      { length: run.actors_per_replica },
      (_, k) => new RolloutActor({ actorId: `${replicaId}-a${k}`, run, policy, bus, logger }),
    );
    const entry: RunActors = { actors, watches: [] };
    this.runs.set(run.run_id, entry);
    entry.watches.push(
      await bus.kv.watch(keys.policy(run.run_id), (_k, v) => {
        if (!v) return;
        const version = decodeJson<PolicyPointer>(v).version;
        for (const a of actors) a.notifyVersion(version);
      }),
      await bus.kv.watch(keys.progress(run.run_id), (_k, v) => {
        if (!v) return;
        const { version, consumed } = decodeJson<ConsumerProgress>(v);
        for (const a of actors) {
          a.notifyVersion(version);
          if (consumed[a.actorId] !== undefined) a.notifyConsumed(consumed[a.actorId]);
        }
      }),
    );
    logger.info('starting actors', { run: run.run_id, actors: actors.length, env: run.env.id });
    for (const a of actors) a.start();
  }

  private stopRun(runId: string): Promise<void> {
    const r = this.runs.get(runId);
    if (!r) return Promise.resolve();
    this.runs.delete(runId);
    const stopping = (async () => {
      await Promise.all(r.watches.map((w) => w.stop()));
      await Promise.all(r.actors.map((a) => a.stop()));
      this.opts.logger.info('stopped actors', { run: runId });
    })();
    this.stopping.add(stopping);
    return stopping.finally(() => this.stopping.delete(stopping));
  }

  /** Stops every actor, including those of runs that were already being stopped. */
  async stop(): Promise<void> {
    await this.runWatch?.stop();
    await Promise.all([...this.runs.keys()].map((id) => this.stopRun(id)));
    await Promise.all(this.stopping);
  }
}
