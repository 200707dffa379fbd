/**
 * The gRPC face of EnvServiceCore: a ServiceBinding for @rlmesh/mesh's server (which adds health,
 * reflection, spans and error-to-status mapping) and `startEnvServer`, what `rlmesh serve env` runs.
 * All semantics live in the core; this file only moves messages and owns the idle-handle timer.
 */
import type { ServerCredentials, ServerDuplexStream } from '@grpc/grpc-js';
import { createLogger, type Logger, type RunningServer, type ServiceBinding, startServer, toStatus } from '@rlmesh/mesh';
import {
  type CloseEnvRequest,
  EnvServiceService,
  type ListEnvsRequest,
  type ResetRequest,
  type SessionRequest,
  type SessionResponse,
  type StepRequest,
  type VecResetRequest,
  type VecStepRequest,
} from '@rlmesh/proto';
import { EnvServiceCore } from './service';

export const ENV_SERVICE_NAME = 'rlmesh.v1.EnvService';
/** Handles untouched this long are closed: clients that crash never call CloseEnv. */
export const DEFAULT_IDLE_MS = 10 * 60 * 1000;

/** One Session stream: the core's session fed message by message, its env closed when the stream goes. */
function serveSession(core: EnvServiceCore, call: ServerDuplexStream<SessionRequest, SessionResponse>, log?: Logger): Promise<void> {
  return new Promise((resolve) => {
    const session = core.session();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      session.close();
      resolve();
    };
    call.on('data', (msg: SessionRequest) => {
      if (done) return;
      try {
        // A client that sends without reading would have its replies pile up here without bound:
        // stop reading its requests until the replies already written have gone out.
        if (!call.write(session.handle(msg))) {
          call.pause();
          call.once('drain', () => call.resume());
        }
      } catch (e) {
        // A bidi stream has no per-message error: the first bad message ends the stream with its status.
        const { code, details } = toStatus(e);
        if (code === 13) log?.error('internal error', { method: `${ENV_SERVICE_NAME}/Session`, error: String((e as Error)?.stack ?? e) });
        finish();
        call.emit('error', { code, details, message: details });
      }
    });
    call.on('end', () => {
      if (!done) call.end();
      finish();
    });
    call.on('cancelled', finish);
    call.on('close', finish);
  });
}

export function envServiceBinding(core: EnvServiceCore, log?: Logger): ServiceBinding {
  return {
    name: ENV_SERVICE_NAME,
    definition: EnvServiceService,
    handlers: {
      listEnvs: async (req: ListEnvsRequest) => core.listEnvs(req),
      reset: async (req: ResetRequest) => core.reset(req),
      step: async (req: StepRequest) => core.step(req),
      vecReset: async (req: VecResetRequest) => core.vecReset(req),
      vecStep: async (req: VecStepRequest) => core.vecStep(req),
      closeEnv: async (req: CloseEnvRequest) => core.closeEnv(req),
      session: (call: ServerDuplexStream<SessionRequest, SessionResponse>) => serveSession(core, call, log),
    },
  };
}

export interface EnvServerOptions {
  port?: number;
  host?: string;
  logger?: Logger;
  core?: EnvServiceCore;
  /** Idle time after which a handle is closed (default 10 min). */
  idleMs?: number;
  /** Default plaintext; see serverCredentials in @rlmesh/mesh. */
  credentials?: ServerCredentials;
}

export async function startEnvServer(opts: EnvServerOptions = {}): Promise<RunningServer & { core: EnvServiceCore }> {
  const core = opts.core ?? new EnvServiceCore();
  const logger = opts.logger ?? createLogger('env');
  const idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
  const running = await startServer({
    service: 'env',
    services: [envServiceBinding(core, logger)],
    host: opts.host,
    port: opts.port,
    credentials: opts.credentials,
    logger,
  });
  // Sweeping a few times per idle period bounds how long an abandoned handle outlives idleMs.
  const timer = setInterval(
    () => {
      const gone = core.sweep(idleMs);
      if (gone.length > 0) logger.info('closed idle env handles', { count: gone.length, idleMs });
    },
    Math.max(1000, Math.min(idleMs / 4, 60_000)),
  );
  timer.unref();
  const shutdown: RunningServer['shutdown'] = (o) => {
    clearInterval(timer);
    return running.shutdown(o);
  };
  return { ...running, shutdown, core };
}
