/**
 * The NATS options of every command that connects to the bus (`serve`, `up`, `dashboard`): `--nats
 * URL` (or NATS_URL) and the login and TLS files of nats-auth.ts. They are checked here, before
 * anything starts, so that a mistake is one line and exit 2; so is a connection NATS refuses.
 * Imports nothing that loads gRPC: `serve` parses these before OpenTelemetry starts.
 */
import { NATS_AUTH_OPTIONS, type NatsAuth, natsAuthFrom, natsConnectOptions } from '@rlmesh/mesh/nats-auth';
import { UsageError } from './args';

/** Option names, without the dashes, for a command's list of known options. */
export const NATS_OPTIONS: readonly string[] = ['nats', ...Object.keys(NATS_AUTH_OPTIONS)];

export interface NatsTarget {
  servers: string;
  auth: NatsAuth;
}

/**
 * The bus a command was pointed at, or undefined when it was given none. `fromEnv`: NATS_URL counts
 * when --nats is absent (serve, up; the dashboard reads NATS only when asked with --nats).
 */
export function natsTarget(options: Record<string, string | undefined>, command: string, fromEnv = true): NatsTarget | undefined {
  const auth = natsAuthFrom(options);
  const url = options.nats ?? (fromEnv ? process.env.NATS_URL : undefined);
  if (!url) {
    const given = Object.keys(NATS_AUTH_OPTIONS).find((k) => options[k] !== undefined);
    if (given) throw new UsageError(`${command}: --${given} needs --nats URL${fromEnv ? ' or NATS_URL' : ''}`);
    return undefined;
  }
  try {
    natsConnectOptions(url, auth);
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
  return { servers: url, auth };
}

/**
 * Connects the bus. A refused login, a TLS failure, an unreachable server, or a server that will not
 * set up the bus's streams (no JetStream, no permission) is one line (UsageError, exit 2).
 */
export async function connectBus(target: NatsTarget, name: string) {
  const { NatsBus, redactNatsUrl } = await import('@rlmesh/mesh');
  try {
    return await NatsBus.connect({ servers: target.servers, auth: target.auth, name });
  } catch (e) {
    const err = e as Error;
    if (err.name === 'NatsConnectError') throw new UsageError(err.message);
    throw new UsageError(`NATS at ${redactNatsUrl(target.servers)}: cannot set up the bus: ${err.message}`);
  }
}
