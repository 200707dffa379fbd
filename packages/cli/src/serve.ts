/**
 * `rlmesh serve <env|policy|learner|evaluator|sae>`: one service as its own process. OpenTelemetry starts first,
 * before anything loads @grpc/grpc-js (hence the subpath import and the lazy imports below). The
 * process prints one `READY {json}` line on stdout once it listens (what `rlmesh up` and the tests
 * wait for), logs JSON lines on stderr, and shuts down gracefully on SIGTERM / SIGINT.
 */

import { mkdirSync } from 'node:fs';
import type { Device } from '@rlmesh/graph';
import type { Bus, Logger } from '@rlmesh/mesh';
import { startTelemetry } from '@rlmesh/mesh/telemetry';
import type { startPolicyServer } from '@rlmesh/policy';
import { parseArgs, UsageError } from './args';
import { connectBus, NATS_OPTIONS, natsTarget } from './nats-args';

export const SERVE_USAGE = `rlmesh serve <env|policy|learner|evaluator|sae> [--port N] [--host H] [--nats URL] [--metrics-port N]
    [--tls-cert F --tls-key F [--tls-ca F]]   TLS; with a CA, mTLS both ways (or RLMESH_TLS_CERT / _KEY / _CA)
    [--nats-creds F | --nats-nkey F] [--nats-tls-ca F [--nats-tls-cert F --nats-tls-key F]]   NATS login and TLS
        (or RLMESH_NATS_CREDS / _NKEY / _TLS_CA / _TLS_CERT / _TLS_KEY); a password or token goes in the URL:
        nats://user:password@host:4222, nats://token@host:4222, tls://host:4222
    env:     [--policy HOST:PORT] [--replica-id ID]
    policy:  [--max-batch ROWS] [--max-wait-ms MS] [--seed N] [--device cpu|cuda]
             [--openai-port N]   OpenAI-compatible chat endpoint on N (http://HOST:N/v1; default 0: off);
             with RLMESH_OPENAI_API_KEY set, it requires Authorization: Bearer <that key>
    learner: [--out-dir DIR] [--device cpu|cuda]   --device: onnxruntime's execution provider (default cpu)
    evaluator: [--checkpoint-root DIR]   checkpoints named in requests are read only from under DIR (default runs)
    sae:     [--sae-root DIR]   activation stores are read from under DIR, SAEs kept in DIR/saes (default sae)`;

const SERVICES = ['env', 'policy', 'learner', 'evaluator', 'sae'] as const;
type ServiceName = (typeof SERVICES)[number];

function intOption(options: Record<string, string>, key: string, fallback: number | undefined): number | undefined {
  const raw = options[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535 * 1000)
    throw new UsageError(`--${key}: must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

export async function serve(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  const name = positionals[0] as ServiceName;
  if (positionals.length !== 1 || !SERVICES.includes(name))
    throw new UsageError(`serve needs one of ${SERVICES.join(', ')}\n${SERVE_USAGE}`);
  const known = new Set([
    ...NATS_OPTIONS,
    'port',
    'host',
    'metrics-port',
    'policy',
    'replica-id',
    'max-batch',
    'max-wait-ms',
    'seed',
    'out-dir',
    'tls-cert',
    'tls-key',
    'tls-ca',
    'device',
    'checkpoint-root',
    'sae-root',
    'openai-port',
  ]);
  for (const k of Object.keys(options)) if (!known.has(k)) throw new UsageError(`serve: unknown option --${k}`);
  const port = intOption(options, 'port', 0);
  const metricsPort = intOption(options, 'metrics-port', undefined);
  const host = options.host ?? '127.0.0.1';
  const device = await deviceOption(name, options.device);
  const nats = natsTarget(options, 'serve');
  if (!nats) throw new UsageError('serve: needs --nats URL or NATS_URL (rlmesh up starts a nats-server for you)');
  // Metrics listen where the service does: in a pod, Prometheus scrapes the pod's address.
  const telemetry = startTelemetry({ serviceName: `rlmesh-${name}`, metricsPort, metricsHost: host });
  await telemetry.metricsReady.catch(async (e: NodeJS.ErrnoException) => {
    await telemetry.shutdown().catch(() => undefined);
    throw new UsageError(`--metrics-port ${metricsPort}: cannot serve /metrics on ${host} (${e.code ?? e.message})`);
  });
  const { channelCredentials, serverCredentials, tlsFilesFrom } = await import('@rlmesh/mesh');
  const tls = tlsFilesFrom(options);
  const credentials = tlsOrUsage(() => serverCredentials(tls));

  const { createLogger } = await import('@rlmesh/mesh');
  const logger = createLogger(name);
  const bus = await connectBus(nats, `rlmesh-${name}`).catch(async (e) => {
    await telemetry.shutdown().catch(() => undefined);
    throw e;
  });
  let shutdown: () => Promise<void>;
  let boundPort: number;
  let openaiPort: number | undefined;
  if (name === 'env') {
    const { startEnvServer, EnvReplica, GrpcPolicyClient } = await import('@rlmesh/env');
    const server = await startEnvServer({ port, host, logger, credentials });
    const policyAddress = options.policy ?? process.env.RLMESH_POLICY ?? '127.0.0.1:50052';
    const policy = new GrpcPolicyClient(
      policyAddress,
      5000,
      tlsOrUsage(() => channelCredentials(tls)),
      logger,
    );
    const replica = new EnvReplica({ replicaId: options['replica-id'] ?? `env-${process.pid}`, bus, policy, logger });
    await replica.start();
    boundPort = server.port;
    shutdown = async () => {
      await server.shutdown({ drainMs: 200 });
      await replica.stop();
      policy.close();
    };
  } else if (name === 'policy') {
    const { startPolicyServer } = await import('@rlmesh/policy');
    const server = await startPolicyServer({
      bus,
      credentials,
      port,
      host,
      logger,
      maxBatch: intOption(options, 'max-batch', undefined),
      maxWaitMs: intOption(options, 'max-wait-ms', undefined),
      seed: intOption(options, 'seed', undefined),
      device,
    });
    boundPort = server.port;
    const openai = await startOpenAi(intOption(options, 'openai-port', 0) ?? 0, host, server, bus, logger).catch(async (e) => {
      await bus.close();
      await telemetry.shutdown().catch(() => undefined);
      throw e;
    });
    openaiPort = openai?.port;
    shutdown = async () => {
      await openai?.close();
      await server.shutdown({ drainMs: 200 });
    };
  } else if (name === 'evaluator') {
    // Results go to the bus (KV summary + object per evaluation); the promotion gate runs here too.
    const { startEvaluatorServer } = await import('@rlmesh/evaluator');
    const checkpointRoot = options['checkpoint-root'] ?? 'runs';
    mkdirSync(checkpointRoot, { recursive: true });
    const server = await startEvaluatorServer({ bus, port, host, logger, credentials, checkpointRoot });
    boundPort = server.port;
    shutdown = () => server.shutdown({ drainMs: 200 });
  } else if (name === 'sae') {
    const { startSaeServer } = await import('@rlmesh/sae');
    const root = options['sae-root'] ?? 'sae';
    mkdirSync(root, { recursive: true });
    const server = await startSaeServer({ root, port, host, logger, credentials, bus });
    boundPort = server.port;
    shutdown = () => server.shutdown({ drainMs: 200 });
  } else {
    const { startLearnerServer } = await import('@rlmesh/learner');
    const server = await startLearnerServer({
      bus,
      port,
      host,
      logger,
      outDir: options['out-dir'],
      credentials,
      takeOverRuns: true,
      device,
    });
    boundPort = server.port;
    shutdown = () => server.shutdown({ drainMs: 200 });
  }
  const ready = { service: name, host, port: boundPort, metrics_port: metricsPort ?? null, pid: process.pid };
  console.log(`READY ${JSON.stringify(openaiPort ? { ...ready, openai_port: openaiPort } : ready)}`);
  let busLost = false;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('shutting down', { signal });
      resolve();
    };
    // NATS ended the connection for good (it refused the login on a reconnect): a service without
    // its bus only looks alive, so it says why in one line and stops with exit code 2.
    void bus.closed().then((e) => {
      if (!e) return;
      busLost = true;
      console.error(`rlmesh: ${e.message}`);
      stop('NATS connection ended');
    });
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Started by `rlmesh up`: a parent that dies without stopping us (SIGKILL, crash) must not leave
    // us running. Orphans are re-parented, so a changed ppid means the parent is gone.
    if (process.env.RLMESH_EXIT_WITH_PARENT === '1') {
      const parent = process.ppid;
      setInterval(() => process.ppid !== parent && stop('parent exited'), 500).unref();
    }
  });
  await shutdown();
  await bus.close();
  await telemetry.shutdown();
  logger.info('stopped');
  return busLost ? 2 : 0;
}

/**
 * The execution provider of the services that run ONNX models. CUDA is checked before anything
 * starts: asked for and missing, the service refuses with the reason (exit 2) and never runs on the CPU.
 */
async function deviceOption(name: ServiceName, raw: string | undefined): Promise<Device | undefined> {
  if (raw === undefined) return undefined;
  const { DEVICES, deviceUnavailable } = await import('@rlmesh/graph');
  if (name !== 'policy' && name !== 'learner') throw new UsageError(`--device: only policy and learner run models, not ${name}`);
  if (!DEVICES.includes(raw as Device)) throw new UsageError(`--device: must be one of ${DEVICES.join(', ')}, got ${JSON.stringify(raw)}`);
  const why = deviceUnavailable(raw as Device);
  if (why) throw new UsageError(`--device ${raw}: ${why}`);
  return raw as Device;
}

/**
 * The policy service's OpenAI-compatible endpoint on `port` (0: none) over the gRPC server's core. A
 * port it cannot take stops the service with one line (exit 2), as a taken gRPC port does.
 */
async function startOpenAi(port: number, host: string, server: Awaited<ReturnType<typeof startPolicyServer>>, bus: Bus, logger: Logger) {
  if (port === 0) return undefined;
  const { startOpenAiServer } = await import('@rlmesh/policy');
  try {
    return await startOpenAiServer({ core: server.core, bus, logger, host, port, apiKey: process.env.RLMESH_OPENAI_API_KEY || undefined });
  } catch (e) {
    await server.shutdown({ drainMs: 0 });
    throw new UsageError(`--openai-port ${port}: cannot listen on ${host} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** A TLS file or option mistake is a usage error: one line, exit 2. */
export function tlsOrUsage<T>(make: () => T): T {
  try {
    return make();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
