/**
 * NATS logins against real nats-server processes: a server with a user and password, a token, NKey
 * users, an operator with a JWT account (a `.creds` login), and TLS with client certificates. Each
 * refuses the clients it must (anonymous, a wrong secret, an unknown key, no or the wrong TLS) with
 * one line that says so and never holds the secret, and admits the right one as a working bus. A
 * service started with a refused login exits 2 with that one line.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import { type NatsAuth, NatsBus, NatsConnectError, type NatsServer, type NatsServerOptions, startNatsServer } from '@rlmesh/mesh';
import { afterAll, describe, expect, it } from 'vitest';
import { freeUpBase, missingParts, ROOT, until } from './helpers';

const BIN = join(ROOT, 'packages', 'cli', 'bin', 'rlmesh.js');
const FIXTURES = join(ROOT, 'packages', 'mesh', 'test', 'fixtures');
const fixture = (f: string) => join(FIXTURES, f);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const missing = missingParts();

/** Connects, proves the bus works with a KV round trip, closes; or the error the connect threw. */
async function login(servers: string, auth?: NatsAuth): Promise<'ok' | NatsConnectError> {
  try {
    const bus = await NatsBus.connect({ servers, auth, logger: quiet, name: 'nats-auth-test' });
    await bus.kv.put('auth-test', new TextEncoder().encode('x'));
    expect(new TextDecoder().decode((await bus.kv.get('auth-test'))!)).toBe('x');
    await bus.close();
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(NatsConnectError);
    return e as NatsConnectError;
  }
}

function refused(result: 'ok' | NatsConnectError, kind: NatsConnectError['kind'], secret?: string): string {
  expect(result).not.toBe('ok');
  const e = result as NatsConnectError;
  expect(e.kind, e.message).toBe(kind);
  expect(e.message).not.toContain('\n');
  if (secret) expect(e.message).not.toContain(secret);
  return e.message;
}

/** `rlmesh serve env` against `url`: its exit code and stderr, and its stdout as it grows. */
function serveEnv(url: string): { exited: Promise<{ code: number | null; err: string }>; out: () => string } {
  const child = spawn(process.execPath, [BIN, 'serve', 'env', '--port', '0'], {
    env: { ...process.env, NATS_URL: url, RLMESH_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.on('data', (d) => (out += d));
  return { exited: new Promise((resolve) => child.once('exit', (code) => resolve({ code, err }))), out: () => out };
}

/** A signed NATS JWT (header.claims.signature, ed25519 by the issuer's key), as nsc writes them. */
function jwt(issuer: nkeys.KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const b64 = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
  const claims = { iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats: { ...nats, version: 2 } };
  const jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url');
  const head = `${b64(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64(JSON.stringify({ jti, ...claims }))}`;
  return `${head}.${b64(issuer.sign(new TextEncoder().encode(head)))}`;
}

/** An operator, one account allowed JetStream, and a user of it: the server's config and the user's .creds text. */
function operatorSetup(): { config: string; creds: string; otherCreds: string } {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const js = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
  const accountJwt = jwt(operator, account.getPublicKey(), 'rlmesh', { type: 'account', limits: { ...unlimited, ...js } });
  const credsOf = (issuer: nkeys.KeyPair) => {
    const user = nkeys.createUser();
    const token = jwt(issuer, user.getPublicKey(), 'svc', { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
    const seed = new TextDecoder().decode(user.getSeed());
    return `-----BEGIN NATS USER JWT-----\n${token}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
  };
  // JetStream in operator mode needs a system account.
  const system = nkeys.createAccount();
  const systemJwt = jwt(operator, system.getPublicKey(), 'SYS', { type: 'account', limits: unlimited });
  const config = [
    `operator: ${JSON.stringify(jwt(operator, operator.getPublicKey(), 'op', { type: 'operator' }))}`,
    `system_account: ${system.getPublicKey()}`,
    'resolver: MEMORY',
    `resolver_preload: { ${account.getPublicKey()}: ${JSON.stringify(accountJwt)}, ${system.getPublicKey()}: ${JSON.stringify(systemJwt)} }`,
  ].join('\n');
  // A user signed by an account the server does not know.
  return { config, creds: credsOf(account), otherCreds: credsOf(nkeys.createAccount()) };
}

describe.skipIf(missing !== null)('NATS authentication', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-nats-auth-'));
  const servers: NatsServer[] = [];
  const start = async (opts: NatsServerOptions) => {
    const s = await startNatsServer(opts);
    servers.push(s);
    return s;
  };
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('user and password: anonymous and a wrong password are refused in one line, the right one works, in the URL or as options', async () => {
    const s = await start({ auth: { user: 'svc', password: 's3cret-pw' } });
    const hostPort = s.url.slice('nats://'.length);
    expect(refused(await login(s.url), 'login')).toBe(
      `NATS at ${s.url} refused the login (Authorization Violation): check the URL's user:password@ or token@, --nats-creds or --nats-nkey`,
    );
    expect(refused(await login(`nats://svc:wrong-pw@${hostPort}`), 'login', 'wrong-pw')).toContain(`nats://svc:***@${hostPort} refused`);
    expect(await login(`nats://svc:s3cret-pw@${hostPort}`)).toBe('ok');
    expect(await login(s.url, { user: 'svc', pass: 's3cret-pw' })).toBe('ok');

    // A service given the wrong password says so in one line and exits 2, without echoing it.
    const { code, err } = await serveEnv(`nats://svc:wrong-pw@${hostPort}`).exited;
    expect(code).toBe(2);
    expect(err.trim()).toBe(
      `rlmesh: NATS at nats://svc:***@${hostPort} refused the login (Authorization Violation): check the URL's user:password@ or token@, --nats-creds or --nats-nkey`,
    );
  });

  it('a running service whose login NATS refuses after a restart (credentials changed) exits 2 with one line', async () => {
    const port = await freeUpBase(1);
    const first = await startNatsServer({ port, auth: { user: 'svc', password: 'old-pw' } });
    const service = serveEnv(`nats://svc:old-pw@127.0.0.1:${port}`);
    try {
      await until(() => (service.out().includes('READY') ? true : undefined), 30_000, 'the env service to be ready');
    } finally {
      await first.stop();
    }
    await start({ port, auth: { user: 'svc', password: 'new-pw' } });
    const { code, err } = await service.exited;
    expect(code).toBe(2);
    expect(err.trim()).toBe(
      `rlmesh: NATS at nats://svc:***@127.0.0.1:${port} refused the login (Authorization Violation): check the URL's user:password@ or token@, --nats-creds or --nats-nkey`,
    );
  });

  it('token: refused without it or with another, admitted with it', async () => {
    const s = await start({ auth: { token: 'tok-1234567890' } });
    const hostPort = s.url.slice('nats://'.length);
    refused(await login(s.url), 'login');
    refused(await login(`nats://tok-wrong@${hostPort}`), 'login', 'tok-wrong');
    expect(await login(`nats://tok-1234567890@${hostPort}`)).toBe('ok');
    expect(await login(s.url, { token: 'tok-1234567890' })).toBe('ok');
  });

  it('NKey: the user whose public key the server lists gets in with its seed file; another key does not', async () => {
    const user = nkeys.createUser();
    const stranger = nkeys.createUser();
    const s = await start({ auth: { nkeys: [user.getPublicKey()] } });
    const seedFile = file('user.nk', `${new TextDecoder().decode(user.getSeed())}\n`);
    const strangerFile = file('stranger.nk', new TextDecoder().decode(stranger.getSeed()));
    refused(await login(s.url), 'login');
    refused(await login(s.url, { nkeyFile: strangerFile }), 'login');
    expect(await login(s.url, { nkeyFile: seedFile })).toBe('ok');
  });

  it('.creds: a user JWT of the operator-signed account gets in; one of an unknown account does not', async () => {
    const { config, creds, otherCreds } = operatorSetup();
    const s = await start({ config });
    refused(await login(s.url), 'login');
    refused(await login(s.url, { credsFile: file('other.creds', otherCreds) }), 'login');
    expect(await login(s.url, { credsFile: file('user.creds', creds) })).toBe('ok');
  });

  it('TLS with client certificates: no CA, or TLS asked of a plaintext server, fails as TLS; CA and certificate get in', async () => {
    const s = await start({ tls: { cert: fixture('server.pem'), key: fixture('server.key'), ca: fixture('ca.pem') } });
    expect(s.url).toMatch(/^tls:\/\//);
    expect(refused(await login(s.url), 'tls')).toMatch(/TLS failed \(.*certificate.*\): check --nats-tls-ca/);
    const mtls = { tlsCa: fixture('ca.pem'), tlsCert: fixture('client.pem'), tlsKey: fixture('client.key') };
    expect(await login(s.url, mtls)).toBe('ok');
    // The same host and port as nats://: the server's INFO asks for TLS and the client upgrades.
    expect(await login(s.url.replace('tls://', 'nats://'), mtls)).toBe('ok');

    const plain = await start({});
    expect(refused(await login(plain.url.replace('nats://', 'tls://'), { tlsCa: fixture('ca.pem') }), 'tls')).toContain('TLS failed');
  });
});
