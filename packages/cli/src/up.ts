/**
 * `rlmesh up`: the mesh on one machine. Uses NATS_URL, or starts a private nats-server (JetStream,
 * temp store, a generated login: up-nats.ts) when one is on the PATH, and otherwise fails with a
 * clear message. Then starts the learner, the policy service, the env replicas, the evaluator and
 * the SAE service as child processes (`rlmesh serve ...`) with the same NATS login and gRPC TLS
 * files, waits for each to listen, prints their addresses, and stops them all on Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs, UsageError } from './args';
import { NATS_OPTIONS } from './nats-args';
import { tlsOrUsage } from './serve';
import { upNats } from './up-nats';

export const UP_USAGE = `rlmesh up [--env-replicas N] [--base-port P] [--out-dir DIR] [--tls-cert F --tls-key F --tls-ca F] [--openai-port N]
      [--nats URL] [--nats-creds F | --nats-nkey F] [--nats-tls-ca F [--nats-tls-cert F --nats-tls-key F]]
    Without --nats or NATS_URL, starts a nats-server that admits only a generated login (the file
    holding it is printed). --tls-*: every service serves mTLS and env replicas call the policy
    service with the same files, so all three are needed. --openai-port: the policy service's
    OpenAI-compatible chat endpoint (default P + 200; 0: off).`;

/** First and longest wait before restarting a service that died; a run of 60 s resets it. */
const RESTART_DELAY_MS = { first: 1000, max: 30_000, healthyAfter: 60_000 };

/**
 * A service child that `up` restarts when it dies (crash, signal, OOM kill), waiting longer after
 * each death in a row, and says so on stderr with a restart count.
 */
export class Supervised {
  restarts = 0;
  private stopping = false;
  private delay = RESTART_DELAY_MS.first;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    private readonly args: string[],
    public child: ChildProcess,
    readonly address: string,
    readonly metricsPort: number,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.watch(child);
  }

  private watch(child: ChildProcess): void {
    this.child = child;
    const started = Date.now();
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      if (Date.now() - started > RESTART_DELAY_MS.healthyAfter) this.delay = RESTART_DELAY_MS.first;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.scheduleRestart(how);
    });
  }

  private scheduleRestart(why: string): void {
    this.restarts++;
    console.error(`rlmesh up: ${this.name} ${why}; restarting in ${this.delay / 1000} s (restart ${this.restarts})`);
    this.timer = setTimeout(() => void this.restart(), this.delay);
    this.delay = Math.min(this.delay * 2, RESTART_DELAY_MS.max);
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    try {
      const { child } = await spawnService(this.name, this.args, this.env);
      if (this.stopping) {
        child.kill('SIGTERM');
        return;
      }
      this.watch(child);
      console.error(`rlmesh up: ${this.name} is back (pid ${child.pid})`);
    } catch (e) {
      if (!this.stopping) this.scheduleRestart(`did not come back (${(e as Error).message})`);
    }
  }

  /** Stops the service and any pending restart; resolves once the child is gone. */
  stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

const BIN = join(__dirname, '..', 'bin', 'rlmesh.js');

export interface Ready {
  service: string;
  host: string;
  port: number;
  pid: number;
}

/**
 * Spawns `rlmesh serve <args>` and resolves once it prints READY. Its log lines go to this process's
 * stderr, or with `stderr: 'pipe'` to `child.stderr`, which the caller must then read (a full pipe
 * stops the service at its next log line).
 */
export function spawnService(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  { timeoutMs = 60_000, stderr = 'inherit' }: { timeoutMs?: number; stderr?: 'inherit' | 'pipe' } = {},
): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], {
    stdio: ['ignore', 'pipe', stderr],
    env: { ...env, RLMESH_EXIT_WITH_PARENT: '1' },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeoutMs} ms`)), timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) {
        clearTimeout(timer);
        resolve({ child, ready: JSON.parse(line.slice(6)) as Ready });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code} before it was ready`));
    });
  });
}

export async function up(argv: readonly string[]): Promise<number> {
  const { options } = parseArgs(argv);
  const known = ['env-replicas', 'base-port', 'out-dir', 'tls-cert', 'tls-key', 'tls-ca', 'openai-port', ...NATS_OPTIONS];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw new UsageError(`up: unknown option --${k}\n  ${UP_USAGE}`);
  const replicas = Number(options['env-replicas'] ?? 1);
  const base = Number(options['base-port'] ?? 50051);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 32)
    throw new UsageError(`--env-replicas: must be an integer in 1..32, got ${options['env-replicas']}`);
  if (!Number.isInteger(base) || base < 1024 || base > 65000)
    throw new UsageError(`--base-port: must be an integer in 1024..65000, got ${options['base-port']}`);
  // Agents reach a trained run through OpenAI's clients; on by default so that `up` serves them too.
  const openaiPort = Number(options['openai-port'] ?? base + 200);
  if (!Number.isInteger(openaiPort) || openaiPort < 0 || openaiPort > 65535)
    throw new UsageError(`--openai-port: must be an integer in 0..65535 (0: off), got ${options['openai-port']}`);

  const tlsArgs = await upTlsArgs(options);
  const bus = await upNats(options);
  const nats = bus.server;
  const plan = [
    { name: 'learner', port: base, extra: options['out-dir'] ? ['--out-dir', options['out-dir']] : [] },
    { name: 'policy', port: base + 1, extra: openaiPort ? ['--openai-port', String(openaiPort)] : [] },
    ...Array.from({ length: replicas }, (_, i) => ({
      name: `env-${i}`,
      port: base + 2 + i,
      extra: ['--policy', `127.0.0.1:${base + 1}`, '--replica-id', `env-${i}`],
    })),
    // After the replicas, so that adding replicas moves it rather than the ports users already know.
    // The evaluator reads checkpoints where the learner writes runs.
    { name: 'evaluator', port: base + 2 + replicas, extra: ['--checkpoint-root', options['out-dir'] ?? 'runs'] },
    // Activation stores are read, and SAEs kept, under ./sae (rlmesh sae capture --out sae/<name>).
    { name: 'sae', port: base + 3 + replicas, extra: ['--sae-root', 'sae'] },
  ];
  const running: Supervised[] = [];
  let stopped = false;
  const stopAll = async () => {
    stopped = true;
    await Promise.all(running.map((s) => s.stop()));
    await nats?.stop();
  };
  // Ctrl-C and termination stop the mesh at any stage, whatever has died or restarted before.
  const stopRequested = new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => resolve());
  });
  try {
    for (const p of plan) {
      const kind = p.name.startsWith('env') ? 'env' : p.name;
      const metricsPort = p.port + 100;
      const args = [kind, '--port', String(p.port), '--metrics-port', String(metricsPort), ...bus.args, ...tlsArgs, ...p.extra];
      const { child } = await Promise.race([
        spawnService(p.name, args, bus.env),
        stopRequested.then(() => Promise.reject(new Error('stopped'))),
      ]);
      running.push(new Supervised(p.name, args, child, `127.0.0.1:${p.port}`, metricsPort, bus.env));
    }
  } catch (e) {
    await stopAll();
    if (stopped && (e as Error).message === 'stopped') return 0;
    throw new UsageError(
      `up: ${(e as Error).message} (is port ${base}..${base + 3 + replicas} or its +100 metrics port taken? try --base-port)`,
    );
  }
  console.log(bus.describe);
  for (const s of running)
    console.log(`  ${s.name.padEnd(8)} ${s.address}   metrics http://127.0.0.1:${s.metricsPort}/metrics   pid ${s.child.pid}`);
  if (openaiPort) console.log(`  openai   http://127.0.0.1:${openaiPort}/v1   (the policy service's chat endpoint; model: a run id)`);
  console.log(
    `ready: rlmesh train --mesh configs/wmil-pattern-echo.yaml --learner 127.0.0.1:${base}${tlsArgs.length ? ` ${tlsArgs.join(' ')}` : ''}   (Ctrl-C stops the mesh)`,
  );
  await stopRequested;
  await stopAll();
  return 0;
}

/**
 * The gRPC TLS files every service gets. Checked here as both a server (every service) and a client
 * (env replicas call the policy service) would use them, so that a mistake is one line before
 * anything starts rather than services dying one by one.
 */
async function upTlsArgs(options: Record<string, string>): Promise<string[]> {
  const keys = ['tls-cert', 'tls-key', 'tls-ca'] as const;
  if (!keys.some((k) => options[k])) return [];
  const { channelCredentials, serverCredentials } = await import('@rlmesh/mesh');
  const tls = { cert: options['tls-cert'], key: options['tls-key'], ca: options['tls-ca'] };
  tlsOrUsage(() => serverCredentials(tls));
  tlsOrUsage(() => channelCredentials(tls));
  return keys.flatMap((k) => (options[k] ? [`--${k}`, options[k]] : []));
}
