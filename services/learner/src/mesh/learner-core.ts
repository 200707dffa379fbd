/**
 * The learner service's core: the runs of this learner process, started from a config text (YAML
 * or JSON, the file `rlmesh train` reads) and driven by chunks from the bus. Transport-free: the
 * gRPC adapter (grpc.ts) and the tests call these methods directly.
 */
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { ConfigError, parseConfigText } from '@rlmesh/core';
import type { Device } from '@rlmesh/graph';
import {
  type Bus,
  decodeAnnouncement,
  invalidArgument,
  keys,
  type Logger,
  MeshError,
  notFound,
  parsePolicyPointer,
  pathUnder,
  RUN_ID_PATTERN,
  type Subscription,
} from '@rlmesh/mesh';
import { type Run, RunState } from '@rlmesh/proto';
import { parseRunConfig, type RunConfig } from '../run/config';
import { buildModel, envShape } from '../run/learner-run';
import { isSequenceRunConfig, parseSequenceRunConfig } from '../run/sequence-config';
import { DEFAULT_LEASE_TTL_MS, isLease, Lease, leaseOwner } from './lease';
import { MeshRun } from './mesh-run';
import type { MeshRunConfig } from './trainee';

/** Where runs go when the service is given no --out-dir. */
export const DEFAULT_RUN_ROOT = 'runs';

/** A config from a client: ConfigError (naming the key) becomes INVALID_ARGUMENT on field `config`. */
function checked<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof ConfigError) throw invalidArgument('config', e.key === 'config' ? e.rule : e.message);
    throw e;
  }
}

export interface LearnerCoreOptions {
  bus: Bus;
  logger: Logger;
  /** The root every run directory goes under (default `runs`); a StartRun config's run.out_dir is ignored. */
  outDir?: string;
  /** Concurrent running runs this learner accepts. */
  maxRuns?: number;
  /** The device of every run's train step, whatever its train.device says: where this process was placed. */
  device?: Device;
  /** This learner's name in run leases (default: host, pid and a random suffix). */
  owner?: string;
  /** How long a run's lease outlives its learner's last renewal (lease.ts). */
  leaseTtlMs?: number;
}

export class LearnerCore {
  private readonly runs = new Map<string, MeshRun>();
  /** The lease of every run this learner trains. */
  private readonly leases = new Map<string, Lease>();
  /** Runs another learner holds, with the timer that tries again when their lease expires. */
  private readonly waiting = new Map<string, NodeJS.Timeout>();
  private readonly attempting = new Set<string>();
  private announcements: Subscription | undefined;
  private closed = false;
  readonly owner: string;

  constructor(private readonly opts: LearnerCoreOptions) {
    this.owner = opts.owner ?? leaseOwner();
  }

  async startRun(config: string, runId = ''): Promise<Run> {
    const raw = checked(() => parseConfigText(config, 'config'));
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw invalidArgument('config', 'must be a mapping of sections (env, model, algo, train, ...); an empty config starts nothing');
    const cfg = isSequenceRunConfig(raw) ? this.sequenceConfig(raw) : this.numericConfig(raw);
    // A client must not choose where the service writes: every run lives under the service's own root.
    cfg.run.out_dir = this.root;
    const id = runId || `${cfg.run.name}-${randomBytes(3).toString('hex')}`;
    if (!RUN_ID_PATTERN.test(id)) throw invalidArgument('run_id', `must match ${RUN_ID_PATTERN}, got ${JSON.stringify(id)}`);
    if (this.runs.has(id)) throw new MeshError(status.ALREADY_EXISTS, `run_id: run "${id}" already exists`);
    const running = [...this.runs.values()].filter((r) => r.state === 'running').length;
    if (running >= (this.opts.maxRuns ?? 4))
      throw new MeshError(status.RESOURCE_EXHAUSTED, `run_id: this learner already trains ${running} runs (max ${this.opts.maxRuns ?? 4})`);
    const claim = await Lease.acquire(this.opts.bus, id, this.owner, this.ttl);
    if (!isLease(claim)) throw new MeshError(status.ALREADY_EXISTS, `run_id: run "${id}" is trained by learner ${claim.owner}`);
    const run = new MeshRun(id, cfg, this.opts.bus, this.opts.logger, cfg.run.out_dir);
    this.runs.set(id, run);
    this.hold(run, claim);
    try {
      await run.start();
    } catch (e) {
      await run.finish('failed', (e as Error).message);
      if (e instanceof ConfigError) throw invalidArgument('config', e.message);
      throw e;
    }
    return run.toProto();
  }

  private get root(): string {
    return this.opts.outDir ?? DEFAULT_RUN_ROOT;
  }

  private numericConfig(raw: unknown): RunConfig {
    const cfg = this.placed(checked(() => parseRunConfig(raw)));
    // Building the model only declares its parameters: a size no train step could hold is refused here.
    checked(() => buildModel(cfg, envShape(cfg)));
    return cfg;
  }

  /** A text-env run: its init_from is a GPT-2 directory under this learner's run root, like everything it reads. */
  private sequenceConfig(raw: unknown): MeshRunConfig {
    const cfg = checked(() => parseSequenceRunConfig(raw));
    cfg.init_from = pathUnder(this.root, cfg.init_from, 'config.init_from', "the learner's run root");
    return cfg;
  }

  /** A run trains on this learner's device; its resolved config (config.json) records which. */
  private placed(cfg: RunConfig): RunConfig {
    if (this.opts.device) cfg.train.device = this.opts.device;
    return cfg;
  }

  private get(runId: string): MeshRun {
    const run = this.runs.get(runId);
    if (!run) throw notFound('run_id', `no run "${runId}" on this learner`);
    return run;
  }

  getRun(runId: string): Run {
    return this.get(runId).toProto();
  }

  async stopRun(runId: string): Promise<Run> {
    const run = this.get(runId);
    if (run.state === 'running') await run.finish('stopped');
    return run.toProto();
  }

  listRuns(): Run[] {
    return [...this.runs.values()].map((r) => r.toProto());
  }

  /** Calls `fn` with the run now and after every change until it ends; returns when it has ended. */
  watchRun(runId: string, fn: (r: Run) => void, signal?: { cancelled: boolean }): Promise<void> {
    const run = this.get(runId);
    return new Promise((resolve) => {
      const done = (r: Run) => r.state !== RunState.RUN_STATE_RUNNING || run.handedOver;
      const first = run.toProto();
      fn(first);
      if (done(first)) return resolve();
      const off = run.onChange((r) => {
        if (signal?.cancelled) {
          off();
          return resolve();
        }
        fn(r);
        if (done(r)) {
          off();
          resolve();
        }
      });
    });
  }

  private get ttl(): number {
    return this.opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  /**
   * Keeps the run's lease while it runs: renewed until the run's end is announced (then released),
   * and a run whose lease another learner took (this process was stalled past its expiry) stops
   * training here.
   */
  private hold(run: MeshRun, lease: Lease): void {
    this.leases.set(run.id, lease);
    const off = run.onChange((r) => {
      if (r.state === RunState.RUN_STATE_RUNNING) return;
      off();
      this.releaseWhenAnnounced(run.id).catch((e) => this.opts.logger.warn('lease release failed', { run: run.id, error: String(e) }));
    });
    lease.keep((holder) => {
      off();
      this.leases.delete(run.id);
      if (run.state !== 'running' || run.handedOver) return;
      this.opts.logger.error('lost the run to another learner; stopping here', { run: run.id, holder });
      run
        .handOver()
        .catch((e) => this.opts.logger.warn('hand-over failed', { run: run.id, error: String(e) }))
        .finally(() => {
          // Gone from this learner, so that it may take the run back if that learner goes away in turn.
          if (this.runs.get(run.id) === run) this.runs.delete(run.id);
        });
    });
  }

  /**
   * Watchers hear of a run's end before the bus does; a lease released in between would let another
   * learner find the run still announced as running and start it again. So the lease is held (and
   * renewed) until the announcement says the run ended.
   */
  private async releaseWhenAnnounced(runId: string): Promise<void> {
    while (!this.closed && this.leases.has(runId)) {
      const value = await this.opts.bus.kv.get(keys.run(runId)).catch(() => undefined);
      if (value === null || (value && decodeAnnouncement(value).state !== 'running')) break;
      await new Promise((r) => setTimeout(r, this.ttl / 8));
    }
    await this.releaseLease(runId);
  }

  private async releaseLease(runId: string): Promise<void> {
    const lease = this.leases.get(runId);
    this.leases.delete(runId);
    await lease?.release();
  }

  /**
   * Takes over every run announced as running that no learner trains: a learner restarted (or
   * rescheduled) continues its runs from their last checkpoints. A run whose lease another learner
   * holds is left to it; this learner tries again when that lease expires, and keeps watching the
   * announcements for runs that appear later, so a learner that dies has its runs taken over by a
   * live one. Returns the runs taken now.
   */
  async recover(): Promise<string[]> {
    const taken: string[] = [];
    for (const key of await this.opts.bus.kv.keys(keys.runs)) {
      const runId = key.slice(keys.runs.length);
      try {
        if (await this.tryTakeOver(runId)) taken.push(runId);
      } catch (e) {
        this.opts.logger.warn('take-over attempt failed; trying again', { run: runId, error: String(e) });
      }
    }
    this.announcements ??= await this.opts.bus.kv.watch(`${keys.runs}>`, (key, value) => {
      const runId = key.slice(keys.runs.length);
      if (!value || this.runs.has(runId) || this.waiting.has(runId) || this.attempting.has(runId)) return;
      this.retryAt(runId, Date.now());
    });
    return taken;
  }

  /** Tries to take `runId` over at `at` (ms since the epoch), unless an attempt is already due. */
  private retryAt(runId: string, at: number): void {
    if (this.closed || this.waiting.has(runId)) return;
    // A little later than the expiry, spread, so that waiting learners do not all write at once.
    const delay = Math.max(0, at - Date.now()) + 100 + Math.random() * 400;
    const timer = setTimeout(() => {
      this.waiting.delete(runId);
      this.tryTakeOver(runId)
        .then((taken) => taken && this.opts.logger.info('took over run', { run: runId }))
        .catch((e) => this.opts.logger.warn('take-over attempt failed; trying again', { run: runId, error: String(e) }));
    }, delay);
    timer.unref();
    this.waiting.set(runId, timer);
  }

  private async tryTakeOver(runId: string): Promise<boolean> {
    if (this.closed || this.runs.has(runId) || this.attempting.has(runId)) return false;
    this.attempting.add(runId);
    try {
      return await this.takeOver(runId);
    } catch (e) {
      // The bus failed us: look again later rather than forget the run.
      this.retryAt(runId, Date.now() + this.ttl);
      throw e;
    } finally {
      this.attempting.delete(runId);
    }
  }

  private async takeOver(runId: string): Promise<boolean> {
    const value = await this.opts.bus.kv.get(keys.run(runId));
    if (!value) return false;
    const a = decodeAnnouncement(value);
    if (a.state !== 'running' || !a.config) return false;
    const claim = await Lease.acquire(this.opts.bus, runId, this.owner, this.ttl);
    if (!isLease(claim)) {
      this.retryAt(runId, claim.expiresAt);
      return false;
    }
    // The announcement may have changed (ended, a newer checkpoint) while the lease was someone else's.
    const current = await this.opts.bus.kv.get(keys.run(runId));
    const b = current ? decodeAnnouncement(current) : a;
    if (b.state !== 'running' || !b.config || this.closed) {
      await claim.release();
      return false;
    }
    let cfg: RunConfig;
    try {
      const raw = JSON.parse(b.config);
      if (isSequenceRunConfig(raw)) return await this.refuseTakeOver(runId, parseSequenceRunConfig(raw), claim);
      cfg = this.placed(parseRunConfig(raw));
    } catch (e) {
      // Written by a learner of another version, or by hand: no learner here can train it.
      this.opts.logger.error('announced run has a config this learner cannot train; left alone', {
        run: runId,
        error: (e as Error).message,
      });
      await claim.release();
      return false;
    }
    const pointer = await this.opts.bus.kv.get(keys.policy(runId));
    const publishedVersion = pointer ? parsePolicyPointer(pointer).version : 0;
    const run = new MeshRun(runId, cfg, this.opts.bus, this.opts.logger, this.opts.outDir ?? cfg.run.out_dir, {
      checkpoint: b.checkpoint || undefined,
      publishedVersion,
    });
    this.hold(run, claim);
    try {
      await run.start();
      if (this.closed) {
        // close() ran while this started: it did not see the run, so let it go here.
        await run.handOver();
        await this.releaseLease(runId);
        return false;
      }
      return true;
    } catch (e) {
      this.opts.logger.error('could not take the run over', { run: runId, error: (e as Error).message });
      await run.finish('failed', (e as Error).message);
      return false;
    } finally {
      // Seen by GetRun and WatchRun once started (or failed): a client that finds it sees where it resumed.
      this.runs.set(runId, run);
    }
  }

  /**
   * A text-env run's checkpoints are directories on its learner's disk, not objects on the bus, so
   * no other learner can continue it: it ends as failed, saying so, and its actors stop.
   */
  private async refuseTakeOver(runId: string, cfg: MeshRunConfig, claim: Lease): Promise<false> {
    const run = new MeshRun(runId, cfg, this.opts.bus, this.opts.logger, this.root);
    this.runs.set(runId, run);
    this.hold(run, claim);
    const why =
      'a text-env run cannot be taken over by another learner (its checkpoints are directories, not stored on the bus); start it again';
    this.opts.logger.error('run not taken over', { run: runId, error: why });
    await run.finish('failed', why);
    return false;
  }

  /**
   * Stops every run here. `handOver`: leave them announced as running, for the next learner's
   * recover() (a rolling restart); otherwise they end as stopped.
   */
  async close(opts: { handOver?: boolean } = {}): Promise<void> {
    this.closed = true;
    for (const timer of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    await this.announcements?.stop();
    const running = [...this.runs.values()].filter((r) => r.state === 'running');
    if (opts.handOver) {
      await Promise.all(running.map((r) => r.handOver()));
    } else {
      for (const run of running) await run.finish('stopped');
    }
    await Promise.all([...this.runs.values()].filter((r) => !running.includes(r) || !opts.handOver).map((r) => r.release()));
    // Handed-over runs are free for the next learner at once, not after the lease's ttl.
    await Promise.all([...this.leases.keys()].map((id) => this.releaseLease(id)));
  }
}
