/** LearnerService over gRPC: a thin adapter over LearnerCore, and the `rlmesh serve learner` entry. */
import type { ServerCredentials, ServerWritableStream } from '@grpc/grpc-js';
import type { Device } from '@rlmesh/graph';
import { type Bus, createLogger, type Logger, type RunningServer, resourceExhausted, type ServiceBinding, startServer } from '@rlmesh/mesh';
import {
  type GetRunRequest,
  LearnerServiceService,
  type ListRunsResponse,
  type Run,
  type StartRunRequest,
  type StopRunRequest,
} from '@rlmesh/proto';
import { LearnerCore } from './learner-core';

/** Watch streams one learner serves at once: each costs an encode and a write on every update. */
export const MAX_WATCHERS = 64;
/** A watcher hears of a run at most this often; its last state always goes out. */
export const WATCH_INTERVAL_MS = 100;

/** Coalesces a stream of states into at most one write per interval, keeping the newest. */
function throttled(write: (r: Run) => void, intervalMs: number) {
  let last = 0;
  let pending: Run | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (!pending) return;
    last = Date.now();
    write(pending);
    pending = undefined;
  };
  return {
    push(r: Run) {
      pending = r;
      if (timer) return;
      const wait = last + intervalMs - Date.now();
      if (wait <= 0) flush();
      else timer = setTimeout(flush, wait);
    },
    flush,
  };
}

export function learnerServiceBinding(core: LearnerCore): ServiceBinding {
  let watchers = 0;
  return {
    name: 'rlmesh.v1.LearnerService',
    definition: LearnerServiceService,
    handlers: {
      startRun: (req: StartRunRequest): Promise<Run> => core.startRun(req.config, req.runId),
      getRun: async (req: GetRunRequest): Promise<Run> => core.getRun(req.runId),
      stopRun: (req: StopRunRequest): Promise<Run> => core.stopRun(req.runId),
      listRuns: async (): Promise<ListRunsResponse> => ({ runs: core.listRuns() }),
      watchRun: async (call: ServerWritableStream<GetRunRequest, Run>): Promise<void> => {
        if (watchers >= MAX_WATCHERS)
          throw resourceExhausted('run_id', `this learner already streams ${watchers} watchers (max ${MAX_WATCHERS}); poll GetRun instead`);
        watchers++;
        const signal = { cancelled: false };
        call.on('cancelled', () => (signal.cancelled = true));
        const out = throttled((r) => call.write(r), WATCH_INTERVAL_MS);
        try {
          await core.watchRun(call.request.runId, (r) => out.push(r), signal);
          out.flush();
          call.end();
        } finally {
          watchers--;
        }
      },
    },
  };
}

export interface LearnerServerOptions {
  bus: Bus;
  port?: number;
  host?: string;
  outDir?: string;
  logger?: Logger;
  /** Default plaintext; see serverCredentials in @rlmesh/mesh. */
  credentials?: ServerCredentials;
  /**
   * A learner service that restarts continues the runs it left: take over the running runs found on
   * the bus at start, and hand runs over (leave them running) at shutdown instead of stopping them.
   */
  takeOverRuns?: boolean;
  /** Train steps on this device for every run (LearnerCoreOptions.device). */
  device?: Device;
}

export async function startLearnerServer(opts: LearnerServerOptions): Promise<RunningServer & { core: LearnerCore }> {
  const logger = opts.logger ?? createLogger('learner');
  const core = new LearnerCore({ bus: opts.bus, logger, outDir: opts.outDir, device: opts.device });
  const server = await startServer({
    service: 'learner',
    services: [learnerServiceBinding(core)],
    port: opts.port,
    host: opts.host,
    credentials: opts.credentials,
    logger,
  });
  if (opts.takeOverRuns) {
    const taken = await core.recover();
    if (taken.length) logger.info('took over runs', { runs: taken });
  }
  return {
    ...server,
    core,
    shutdown: async (o) => {
      // Runs end (or are handed over) first, so that WatchRun streams finish and do not hold the drain.
      await core.close({ handOver: opts.takeOverRuns });
      await server.shutdown(o);
    },
  };
}
