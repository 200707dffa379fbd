/** LearnerService over gRPC: a thin adapter over LearnerCore, and the `rlmesh serve learner` entry. */
import type { ServerCredentials, ServerWritableStream } from '@grpc/grpc-js';
import type { Device } from '@rlmesh/graph';
import { type Bus, createLogger, type Logger, type RunningServer, type ServiceBinding, startServer } from '@rlmesh/mesh';
import {
  type GetRunRequest,
  LearnerServiceService,
  type ListRunsResponse,
  type Run,
  type StartRunRequest,
  type StopRunRequest,
} from '@rlmesh/proto';
import { LearnerCore } from './learner-core';

export function learnerServiceBinding(core: LearnerCore): ServiceBinding {
  return {
    name: 'rlmesh.v1.LearnerService',
    definition: LearnerServiceService,
    handlers: {
      startRun: (req: StartRunRequest): Promise<Run> => core.startRun(req.config, req.runId),
      getRun: async (req: GetRunRequest): Promise<Run> => core.getRun(req.runId),
      stopRun: (req: StopRunRequest): Promise<Run> => core.stopRun(req.runId),
      listRuns: async (): Promise<ListRunsResponse> => ({ runs: core.listRuns() }),
      watchRun: async (call: ServerWritableStream<GetRunRequest, Run>): Promise<void> => {
        const signal = { cancelled: false };
        call.on('cancelled', () => (signal.cancelled = true));
        await core.watchRun(call.request.runId, (r) => call.write(r), signal);
        call.end();
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
