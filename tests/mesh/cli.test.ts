/**
 * What a user types: `rlmesh up` starts nats-server and the services as child processes, and
 * `rlmesh train --mesh` submits PatternEcho to it, streams progress and exits 0 once the run
 * completes. Both are the real command (bin/rlmesh.js) in their own processes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as tlsConnect } from 'node:tls';
import { NatsBus, NatsConnectError } from '@rlmesh/mesh';
import { afterAll, describe, expect, it } from 'vitest';
import { freeUpBase, missingParts, ROOT, stopChild, until } from './helpers';

const BIN = join(ROOT, 'packages', 'cli', 'bin', 'rlmesh.js');
const missing = missingParts();
/** up's NATS line: the URL with the password hidden, and the file that holds it. */
const UP_NATS = /NATS nats:\/\/rlmesh:\*\*\*@127\.0\.0\.1:(\d+) \(started here; .* is in (\S+), readable by you only/;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe.skipIf(missing !== null)('rlmesh up + rlmesh train --mesh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-up-'));
  let up: ChildProcess | undefined;
  afterAll(async () => {
    if (up) await stopChild(up, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('trains PatternEcho on the mesh that up started, whose NATS admits only the login up generated', async () => {
    const base = await freeUpBase(5);
    const env = { ...process.env, NATS_URL: '', RLMESH_LOG_LEVEL: 'error' };
    up = spawn(process.execPath, [BIN, 'up', '--base-port', String(base), '--out-dir', join(dir, 'runs')], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const printed: string[] = [];
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: up!.stdout! }).on('line', (l) => {
        printed.push(l);
        if (l.startsWith('ready:')) resolve();
      });
      up!.once('exit', (code) => reject(new Error(`rlmesh up exited ${code}: ${printed.join('\n')}`)));
    });
    expect(printed.join('\n')).toContain(`learner  127.0.0.1:${base}`);
    const [, natsPort, urlFile] = UP_NATS.exec(printed.join('\n')) ?? [];
    expect(urlFile, printed.join('\n')).toBeDefined();
    // The URL with the password is the user's alone; a plain client on the bus is refused.
    expect(statSync(urlFile).mode & 0o777).toBe(0o600);
    const secretUrl = readFileSync(urlFile, 'utf8').trim();
    const password = /^nats:\/\/rlmesh:([^@]+)@/.exec(secretUrl)![1];
    expect(password.length).toBeGreaterThanOrEqual(24);
    expect(printed.join('\n')).not.toContain(password);
    const anonymous = await NatsBus.connect({ servers: `nats://127.0.0.1:${natsPort}`, logger: quiet }).catch((e) => e);
    expect(anonymous).toBeInstanceOf(NatsConnectError);
    expect((anonymous as NatsConnectError).kind).toBe('login');
    await (await NatsBus.connect({ servers: secretUrl, logger: quiet })).close();

    const train = spawn(
      process.execPath,
      [BIN, 'train', '--mesh', join(ROOT, 'configs', 'wmil-pattern-echo.yaml'), '--learner', `127.0.0.1:${base}`],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    train.stdout!.on('data', (d) => (out += d));
    const code = await new Promise((r) => train.once('exit', r));
    expect(code, out).toBe(0);
    const done = out.split('\n').find((l) => l.startsWith('RUN_STATE_COMPLETED'));
    expect(done, out).toBeDefined();
    const success = Number(/success ([\d.]+)%/.exec(done!)![1]);
    expect(success).toBeGreaterThanOrEqual(90);

    // Every service exports its own series, and none publishes the command line it was started with.
    const metricsOf = (name: string) => {
      const line = printed.find((l) => l.trim().startsWith(`${name} `));
      const url = /metrics (http:\/\/\S+)/.exec(line ?? '')?.[1];
      expect(url, `${name} metrics URL in ${printed.join('\n')}`).toBeDefined();
      return fetch(url!).then((r) => r.text());
    };
    const wanted: Record<string, string[]> = {
      learner: ['rlmesh_learner_updates_total', 'rlmesh_learner_policy_lag_count'],
      policy: ['rlmesh_policy_rows_served_total', 'rlmesh_policy_act_latency_count'],
      'env-0': ['rlmesh_env_steps_total', 'rlmesh_env_chunks_published_total'],
    };
    for (const [name, series] of Object.entries(wanted)) {
      const text = await metricsOf(name);
      for (const s of series) expect(text, `${name} /metrics`).toMatch(new RegExp(`^${s}\\{[^}]*run="[^"]+"`, 'm'));
      expect(text).not.toContain('command_args');
      expect(text).not.toContain('--nats');
    }
  });

  it('up serves TLS from every service with its --tls-* files, restarts a service killed by a signal, and Ctrl-C then stops everything it started', async () => {
    const base = await freeUpBase(5);
    const fixture = (f: string) => join(ROOT, 'packages', 'mesh', 'test', 'fixtures', f);
    const tls = ['--tls-cert', fixture('server.pem'), '--tls-key', fixture('server.key'), '--tls-ca', fixture('ca.pem')];
    const child = spawn(process.execPath, [BIN, 'up', '--base-port', String(base), '--out-dir', join(dir, 'runs-up2'), ...tls], {
      env: { ...process.env, NATS_URL: '', RLMESH_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: string[] = [];
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (l) => {
        out.push(l);
        if (l.startsWith('ready:')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`rlmesh up exited ${code}: ${out.join('\n')}${err}`)));
    });
    const pids = Object.fromEntries(
      out.flatMap((l) => {
        const m = /^\s+(\S+)\s.*pid (\d+)$/.exec(l);
        return m ? [[m[1], Number(m[2])]] : [];
      }),
    );
    expect(Object.keys(pids).sort()).toEqual(['env-0', 'evaluator', 'learner', 'policy', 'sae']);
    const natsPort = Number(UP_NATS.exec(out.join('\n'))![1]);
    process.kill(pids.policy, 'SIGKILL');
    await until(() => (/policy is back \(pid \d+\)/.test(err) ? true : undefined), 60_000, 'the policy service to come back');
    expect(err).toMatch(/rlmesh up: policy was killed by SIGKILL; restarting in 1 s \(restart 1\)/);
    const restartedPid = Number(/policy is back \(pid (\d+)\)/.exec(err)![1]);
    // Each service, the restarted one too, completes an mTLS handshake with a certificate the CA signed.
    const mtls = (port: number) =>
      new Promise<boolean>((resolve) => {
        const opts = {
          ca: readFileSync(fixture('ca.pem')),
          cert: readFileSync(fixture('client.pem')),
          key: readFileSync(fixture('client.key')),
        };
        const socket = tlsConnect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], ...opts }, () => {
          socket.destroy();
          resolve(socket.authorized);
        });
        socket.once('error', () => resolve(false));
      });
    for (let port = base; port < base + 5; port++) expect(await mtls(port), `port ${port}`).toBe(true);
    expect(out.find((l) => l.startsWith('ready:'))).toContain(`--tls-ca ${fixture('ca.pem')}`);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive(restartedPid)).toBe(true);

    child.kill('SIGINT');
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(0);
    for (const pid of [restartedPid, pids.learner, pids['env-0'], pids.evaluator]) expect(alive(pid), `pid ${pid}`).toBe(false);
    // The nats-server up started is gone too: its port no longer accepts connections.
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(natsPort, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it('refuses to start when its metrics port is taken: one line, exit 2', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const child = spawn(process.execPath, [BIN, 'serve', 'env', '--nats', 'nats://127.0.0.1:1', '--metrics-port', String(port)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      const code = await new Promise((r) => child.once('exit', r));
      expect(code).toBe(2);
      expect(err.trim().split('\n')).toEqual([`rlmesh: --metrics-port ${port}: cannot serve /metrics on 127.0.0.1 (EADDRINUSE)`]);
    } finally {
      taken.close();
    }
  });
});
