/**
 * The bus of `rlmesh up`: the one given (--nats or NATS_URL, with its --nats-* login and TLS files),
 * or a private nats-server that admits only a user `rlmesh` with a random password. The password
 * never goes on a command line (where `ps` shows it to every user): it is in the server's config and
 * in a file `nats-url` beside it, both readable by this user only, and children get it through
 * NATS_URL in their environment. The login is checked once before any service starts, so that a
 * refused one is one line, not a service that dies during start-up.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsServer } from '@rlmesh/mesh';
import { NATS_AUTH_OPTIONS, natsAuthArgs, redactNatsUrl } from '@rlmesh/mesh/nats-auth';
import { UsageError } from './args';
import { connectBus, type NatsTarget, natsTarget } from './nats-args';

export interface UpNats {
  target: NatsTarget;
  /** The server started here, if any. */
  server?: NatsServer;
  /** What a service started by `up` adds to its arguments and environment to connect. */
  args: string[];
  env: NodeJS.ProcessEnv;
  /** One line for the user: where NATS is and how a client logs in (no secret in it). */
  describe: string;
}

export const NATS_USER = 'rlmesh';

export async function upNats(options: Record<string, string>): Promise<UpNats> {
  let target = natsTarget(options, 'up');
  let server: NatsServer | undefined;
  let describe: string;
  if (target) {
    describe = `rlmesh up: NATS ${redactNatsUrl(target.servers)}`;
  } else {
    const { findNatsServer, startNatsServer } = await import('@rlmesh/mesh');
    if (!findNatsServer()) throw new UsageError('up: no NATS: set NATS_URL, or install nats-server (Debian: apt-get install nats-server)');
    const password = randomBytes(24).toString('base64url');
    server = await startNatsServer({ auth: { user: NATS_USER, password } });
    const url = server.url.replace('://', `://${NATS_USER}:${password}@`);
    const file = join(server.dir, 'nats-url');
    writeFileSync(file, `${url}\n`, { mode: 0o600 });
    target = { servers: url, auth: {} };
    describe =
      `rlmesh up: NATS ${redactNatsUrl(url)} (started here; it admits only this login, whose URL is in ${file}, ` +
      `readable by you only: export NATS_URL=$(cat ${file}))`;
  }
  try {
    await (await connectBus(target, 'rlmesh-up')).close();
  } catch (e) {
    await server?.stop();
    throw e;
  }
  const env: NodeJS.ProcessEnv = { ...process.env, NATS_URL: target.servers };
  // The server started here takes its own login only: files meant for another NATS must not reach the children.
  if (server) for (const [, variable] of Object.values(NATS_AUTH_OPTIONS)) delete env[variable];
  return { target, server, args: natsAuthArgs(target.auth), env, describe };
}
