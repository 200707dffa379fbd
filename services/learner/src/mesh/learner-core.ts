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
  RUN_ID_PATTERN,
} from '@rlmesh/mesh';
import { type Run, RunState } from '@rlmesh/proto';
import { parseRunConfig, type RunConfig } from '../run/config';
import { buildModel, envShape } from '../run/learner-run';
import { MeshRun } from './mesh-run';

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
}

export class LearnerCore {
  private readonly runs = new Map<string, MeshRun>();

  constructor(private readonly opts: LearnerCoreOptions) {}

  async startRun(config: string, runId = ''): Promise<Run> {
    const raw = checked(() => parseConfigText(config, 'config'));
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw invalidArgument('config', 'must be a mapping of sections (env, model, algo, train, ...); an empty config starts nothing');
    const cfg = this.placed(checked(() => parseRunConfig(raw)));
    // Building the model only declares its parameters: a size no train step could hold is refused here.
    checked(() => buildModel(cfg, envShape(cfg)));
    // A client must not choose where the service writes: every run lives under the service's own root.
    cfg.run.out_dir = this.opts.outDir ?? DEFAULT_RUN_ROOT;
    const id = runId || `${cfg.run.name}-${randomBytes(3).toString('hex')}`;
    if (!RUN_ID_PATTERN.test(id)) throw invalidArgument('run_id', `must match ${RUN_ID_PATTERN}, got ${JSON.stringify(id)}`);
    if (this.runs.has(id)) throw new MeshError(status.ALREADY_EXISTS, `run_id: run "${id}" already exists`);
    const running = [...this.runs.values()].filter((r) => r.state === 'running').length;
    if (running >= (this.opts.maxRuns ?? 4))
      throw new MeshError(status.RESOURCE_EXHAUSTED, `run_id: this learner already trains ${running} runs (max ${this.opts.maxRuns ?? 4})`);
    const run = new MeshRun(id, cfg, this.opts.bus, this.opts.logger, cfg.run.out_dir);
    this.runs.set(id, run);
    try {
      await run.start();
    } catch (e) {
      await run.finish('failed', (e as Error).message);
      if (e instanceof ConfigError) throw invalidArgument('config', e.message);
      throw e;
    }
    return run.toProto();
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

  /**
   * Takes over every run announced as running that no learner here trains: a learner restarted (or
   * rescheduled) continues its runs from their last checkpoints. Meant for one learner per bus: two
   * learners recovering at once would both train the same run.
   */
  async recover(): Promise<string[]> {
    const taken: string[] = [];
    for (const key of await this.opts.bus.kv.keys(keys.runs)) {
      const value = await this.opts.bus.kv.get(key);
      if (!value) continue;
      const a = decodeAnnouncement(value);
      if (a.state !== 'running' || !a.config || this.runs.has(a.runId)) continue;
      const pointer = await this.opts.bus.kv.get(keys.policy(a.runId));
      const publishedVersion = pointer ? parsePolicyPointer(pointer).version : 0;
      const cfg = this.placed(parseRunConfig(JSON.parse(a.config)));
      const run = new MeshRun(a.runId, cfg, this.opts.bus, this.opts.logger, this.opts.outDir ?? cfg.run.out_dir, {
        checkpoint: a.checkpoint || undefined,
        publishedVersion,
      });
      this.runs.set(a.runId, run);
      try {
        await run.start();
        taken.push(a.runId);
      } catch (e) {
        this.opts.logger.error('could not take the run over', { run: a.runId, error: (e as Error).message });
        await run.finish('failed', (e as Error).message);
      }
    }
    return taken;
  }

  /**
   * Stops every run here. `handOver`: leave them announced as running, for the next learner's
   * recover() (a rolling restart); otherwise they end as stopped.
   */
  async close(opts: { handOver?: boolean } = {}): Promise<void> {
    const running = [...this.runs.values()].filter((r) => r.state === 'running');
    if (opts.handOver) {
      await Promise.all(running.map((r) => r.handOver()));
    } else {
      for (const run of running) await run.finish('stopped');
    }
    await Promise.all([...this.runs.values()].filter((r) => !running.includes(r) || !opts.handOver).map((r) => r.release()));
  }
}
