/**
 * An env replica's actor side: it watches the runs the learner announces (KV run.<run>) and runs
 * `actors_per_replica` RolloutActors for each running run, stopping them when the run ends, and
 * forwards policy-version announcements (KV policy.<run>) to them. Replicas need no registration:
 * start another one and it joins every running run; kill one and the others go on.
 *
 * While NATS is down the actors pause (their publishes wait for it) and go on when it is back. A
 * run's end could come while the watch was reconnecting, so each run played here is also re-read
 * every few seconds: actors never keep playing a run that is over.
 */

import { isTextEnv } from '@rlmesh/core';
import {
  type Bus,
  type ConsumerProgress,
  decodeAnnouncement,
  decodeJson,
  keys,
  type Logger,
  parsePolicyPointer,
  type Subscription,
} from '@rlmesh/mesh';
import type { RunAnnouncement } from '@rlmesh/proto';
import { type ChunkSource, numericSource, RolloutActor } from './actor';
import { centralAct, LocalPolicy, type PolicyClient } from './policy-client';
import { sequenceSources } from './sequence-source';

/** How often the runs played here are re-read from the bus. */
const RECHECK_MS = 5000;

export interface ReplicaOptions {
  replicaId: string;
  bus: Bus;
  /** The policy service, for runs with central inference. */
  policy: PolicyClient;
  logger: Logger;
}

interface RunActors {
  actors: RolloutActor[];
  watches: Subscription[];
  local?: LocalPolicy;
}

export class EnvReplica {
  private readonly runs = new Map<string, RunActors>();
  private runWatch: Subscription | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private readonly stopping = new Set<Promise<void>>();

  constructor(private readonly opts: ReplicaOptions) {}

  async start(): Promise<void> {
    this.runWatch = await this.opts.bus.kv.watch('run.>', (_key, value) => {
      if (value) this.announced(value);
    });
    this.recheckTimer = setInterval(() => this.recheck(), RECHECK_MS);
    this.recheckTimer.unref();
  }

  private announced(value: Uint8Array): void {
    let run: RunAnnouncement;
    try {
      run = decodeAnnouncement(value);
    } catch (e) {
      this.opts.logger.warn('undecodable run announcement ignored', { error: (e as Error).message });
      return;
    }
    this.onAnnouncement(run).catch((e) => this.opts.logger.error('run announcement failed', { run: run.runId, error: String(e) }));
  }

  /** Re-reads the announcement of every run played here; a run deleted from the bus is over too. */
  private rechecking = false;
  private async recheck(): Promise<void> {
    if (this.rechecking) return;
    this.rechecking = true;
    try {
      for (const runId of [...this.runs.keys()]) {
        const value = await this.opts.bus.kv.get(keys.run(runId));
        if (value) this.announced(value);
        else await this.stopRun(runId);
      }
    } catch (e) {
      // NATS is down: the bus has retried already, the next tick tries again.
      this.opts.logger.debug('run recheck failed', { error: (e as Error).message });
    } finally {
      this.rechecking = false;
    }
  }

  /** Runs with actors here, and how many chunks each actor has published. */
  status(): Record<string, number[]> {
    return Object.fromEntries([...this.runs].map(([id, r]) => [id, r.actors.map((a) => a.sequence)]));
  }

  private async onAnnouncement(run: RunAnnouncement): Promise<void> {
    const current = this.runs.get(run.runId);
    if (run.state !== 'running') {
      if (current) await this.stopRun(run.runId);
      return;
    }
    if (current) {
      for (const a of current.actors) a.setLevel(run.level);
      return;
    }
    const { replicaId, bus, policy, logger } = this.opts;
    // Claimed before the awaits below, so that a second announcement meanwhile starts nothing more.
    const entry: RunActors = { actors: [], watches: [] };
    this.runs.set(run.runId, entry);
    let source: (actorId: string) => ChunkSource;
    if (isTextEnv(run.envId)) {
      try {
        source = await sequenceSources(run, bus, policy);
      } catch (e) {
        // Retried on the next recheck of the run's announcement.
        this.runs.delete(run.runId);
        throw e;
      }
      // Ended while its tokenizer was read.
      if (this.runs.get(run.runId) !== entry) return;
    } else {
      entry.local = run.inference === 'local' ? new LocalPolicy(bus, run.runId) : undefined;
      const act = entry.local ? entry.local.act : centralAct(policy, run.runId);
      source = (actorId) => numericSource(run, actorId, act);
    }
    const { local } = entry;
    const actors = Array.from({ length: run.actorsPerReplica }, (_, k) => {
      const actorId = `${replicaId}-a${k}`;
      return new RolloutActor({ actorId, run, source: source(actorId), bus, logger });
    });
    entry.actors = actors;
    entry.watches.push(
      await bus.kv.watch(keys.policy(run.runId), (_k, v) => {
        if (!v) return;
        let version: number;
        try {
          version = parsePolicyPointer(v).version;
        } catch {
          return;
        }
        local?.refresh(v);
        for (const a of actors) a.notifyVersion(version);
      }),
      await bus.kv.watch(keys.progress(run.runId), (_k, v) => {
        if (!v) return;
        const { version, consumed } = decodeJson<ConsumerProgress>(v);
        for (const a of actors) {
          a.notifyVersion(version);
          if (consumed[a.actorId] !== undefined) a.notifyConsumed(consumed[a.actorId]);
        }
      }),
    );
    logger.info('starting actors', { run: run.runId, actors: actors.length, env: run.envId, inference: run.inference || 'central' });
    for (const a of actors) a.start();
  }

  private stopRun(runId: string): Promise<void> {
    const r = this.runs.get(runId);
    if (!r) return Promise.resolve();
    this.runs.delete(runId);
    const stopping = (async () => {
      await Promise.all(r.watches.map((w) => w.stop()));
      await Promise.all(r.actors.map((a) => a.stop()));
      await r.local?.close();
      this.opts.logger.info('stopped actors', { run: runId });
    })();
    this.stopping.add(stopping);
    return stopping.finally(() => this.stopping.delete(stopping));
  }

  /** Stops every actor, including those of runs that were already being stopped. */
  async stop(): Promise<void> {
    clearInterval(this.recheckTimer);
    await this.runWatch?.stop();
    await Promise.all([...this.runs.keys()].map((id) => this.stopRun(id)));
    await Promise.all(this.stopping);
  }
}
