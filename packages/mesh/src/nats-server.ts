/**
 * Starts a private nats-server with JetStream on a free loopback port and a temporary store
 * directory: what `rlmesh up` uses when NATS_URL is unset, and what the integration tests use.
 * With `auth` it admits only clients that log in (a user and password, a token, or NKey users);
 * with `tls` it serves TLS only, and with a CA it also requires client certificates the CA signed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  /** The URL without credentials: what a client adds its login to. */
  url: string;
  port: number;
  /** The store directory (JetStream data, the config file); private to this user, removed by stop(). */
  dir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export type NatsServerAuth = { user: string; password: string } | { token: string } | { nkeys: string[] };

export interface NatsServerOptions {
  binary?: string;
  port?: number;
  auth?: NatsServerAuth;
  /** PEM files of the server's certificate and key; with `ca`, clients must present a certificate it signed. */
  tls?: { cert: string; key: string; ca?: string };
  /** More nats-server configuration, appended as is (an operator and its resolver, for JWT logins). */
  config?: string;
}

/** nats-server's configuration file for `auth` and `tls`, or null when flags say everything. */
export function natsServerConfig(opts: Pick<NatsServerOptions, 'auth' | 'tls' | 'config'>): string | null {
  const q = (s: string) => JSON.stringify(s);
  const lines: string[] = [];
  const auth = opts.auth;
  if (auth && 'user' in auth) lines.push(`authorization { user: ${q(auth.user)}, password: ${q(auth.password)} }`);
  else if (auth && 'token' in auth) lines.push(`authorization { token: ${q(auth.token)} }`);
  else if (auth) lines.push(`authorization { users: [ ${auth.nkeys.map((k) => `{ nkey: ${q(k)} }`).join(', ')} ] }`);
  if (opts.tls) {
    const { cert, key, ca } = opts.tls;
    lines.push(`tls { cert_file: ${q(cert)}, key_file: ${q(key)}${ca ? `, ca_file: ${q(ca)}, verify: true` : ''}, timeout: 2 }`);
  }
  if (opts.config) lines.push(opts.config);
  return lines.length ? `${lines.join('\n')}\n` : null;
}

/** The nats-server binary on PATH (or /usr/sbin, where Debian puts it), or null. */
export function findNatsServer(): string | null {
  for (const candidate of ['nats-server', '/usr/sbin/nats-server', '/usr/local/bin/nats-server']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {}
  }
  return null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      const settle = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.once('connect', () => settle(true));
      s.once('error', () => settle(false));
      s.connect(port, '127.0.0.1');
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = opts.binary ?? findNatsServer();
  if (!binary) throw new Error('nats-server is not installed (Debian: apt-get install nats-server); or set NATS_URL');
  const port = opts.port ?? (await freePort());
  // mkdtemp makes the directory 0700: the config file in it may hold the password.
  const storeDir = mkdtempSync(join(tmpdir(), 'rlmesh-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir];
  const config = natsServerConfig(opts);
  if (config) {
    const file = join(storeDir, 'nats-server.conf');
    writeFileSync(file, config, { mode: 0o600 });
    args.push('-c', file);
  }
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  try {
    await waitForPort(port, 10_000, child);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}: ${stderr.trim()}`);
  }
  return {
    url: `${opts.tls ? 'tls' : 'nats'}://127.0.0.1:${port}`,
    port,
    dir: storeDir,
    process: child,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
