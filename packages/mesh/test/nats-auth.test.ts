/**
 * How NATS URLs and login options become nats.js options, without a server: credentials move out of
 * the URL, files are read and checked up front with the flag named, a printed URL never holds the
 * secret, and a failed connect is classified (login, TLS, unreachable) in one line. The same paths
 * against real servers are in tests/mesh/nats-auth.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorizationError, ConnectionError, nkeys } from '@nats-io/nats-core';
import { afterAll, describe, expect, it } from 'vitest';
import { natsAuthArgs, natsAuthFrom, natsConnectError, natsConnectOptions, natsServerConfig, redactNatsUrl } from '../src';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-nats-auth-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const fixture = (f: string) => join(__dirname, 'fixtures', f);

describe('redactNatsUrl', () => {
  it('hides passwords and tokens, keeps users, hosts and URLs without secrets', () => {
    expect(redactNatsUrl('nats://svc:pa55@host:4222')).toBe('nats://svc:***@host:4222');
    expect(redactNatsUrl('nats://t0ken@host:4222')).toBe('nats://***@host:4222');
    expect(redactNatsUrl('tls://a:b@h1:1,nats://c:d@h2:2')).toBe('tls://a:***@h1:1,nats://c:***@h2:2');
    expect(redactNatsUrl('u:p@h:4222')).toBe('u:***@h:4222');
    expect(redactNatsUrl('nats://127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
    expect(redactNatsUrl('nats://u:pa/ss@w@h:4222')).toBe('nats://u:***@h:4222');
    expect(() => natsConnectOptions('nats://u:pa/ss@h:x')).toThrow('NATS URL: cannot parse "nats://u:***@h:x"');
  });
});

describe('natsConnectOptions', () => {
  it('takes user and password, or a token, out of the URL', () => {
    const o = natsConnectOptions('nats://svc:p%40ss@127.0.0.1:4222,nats://svc:p%40ss@h2');
    expect(o.servers).toEqual(['127.0.0.1:4222', 'h2:4222']);
    expect([o.user, o.pass, o.token]).toEqual(['svc', 'p@ss', undefined]);
    const t = natsConnectOptions('nats://secret-token@127.0.0.1:4222');
    expect([t.user, t.token]).toEqual([undefined, 'secret-token']);
    expect(JSON.stringify(t.servers)).not.toContain('secret');
    expect(natsConnectOptions('127.0.0.1:4222', { token: 'x' }).token).toBe('x');
  });

  it('a tls:// URL or a CA turns TLS on, with the files read now', () => {
    expect(natsConnectOptions('tls://h:4222').tls).toEqual({});
    expect(natsConnectOptions('nats://h:4222').tls).toBeUndefined();
    const o = natsConnectOptions('nats://h:4222', {
      tlsCa: fixture('ca.pem'),
      tlsCert: fixture('client.pem'),
      tlsKey: fixture('client.key'),
    });
    expect(o.tls?.ca).toContain('BEGIN CERTIFICATE');
    expect(o.tls?.cert).toContain('BEGIN CERTIFICATE');
    expect(o.tls?.key).toContain('PRIVATE KEY');
  });

  it('an NKey seed or a .creds file becomes an authenticator that signs the nonce', () => {
    const user = nkeys.createUser();
    const seed = file('u.nk', `${new TextDecoder().decode(user.getSeed())}\n`);
    const auth = natsConnectOptions('nats://h', { nkeyFile: seed }).authenticator as (n?: string) => { nkey: string; sig: string };
    const { nkey, sig } = auth('nonce-1');
    expect(nkey).toBe(user.getPublicKey());
    expect(user.verify(new TextEncoder().encode('nonce-1'), nkeys.decode(sig))).toBe(true);

    const seedText = new TextDecoder().decode(user.getSeed());
    const creds = file(
      'u.creds',
      `-----BEGIN NATS USER JWT-----\neyJ0eXAi.user.jwt\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seedText}\n------END USER NKEY SEED------\n`,
    );
    const fromCreds = natsConnectOptions('nats://h', { credsFile: creds }).authenticator as (n?: string) => { jwt: string; nkey: string };
    expect(fromCreds('nonce-2')).toMatchObject({ jwt: 'eyJ0eXAi.user.jwt', nkey: user.getPublicKey() });
  });

  it('refuses what cannot work, naming the flag or the URL (never its secret)', () => {
    const bad =
      (servers: string, auth = {}) =>
      () =>
        natsConnectOptions(servers, auth);
    expect(bad('http://u:pw1@h:80')).toThrow('NATS URL: the scheme must be nats:// or tls://, got http:// in http://u:***@h:80');
    expect(bad('http://u:pw1@h:80')).not.toThrow(/pw1/);
    expect(bad(' , ')).toThrow('NATS URL: empty');
    expect(bad('nats://a:b@h1,nats://a:c@h2')).toThrow('different credentials');
    expect(bad('nats://a:b@h', { token: 't' })).toThrow('both in the URL and as options');
    expect(bad('nats://h', { token: 't', nkeyFile: '/x' })).toThrow(
      'give one of user/password, token, --nats-nkey or --nats-creds, got token and nats-nkey',
    );
    expect(bad('nats://h', { nkeyFile: '/nope/u.nk' })).toThrow('--nats-nkey: cannot read /nope/u.nk (ENOENT)');
    expect(bad('nats://h', { nkeyFile: file('account.nk', new TextDecoder().decode(nkeys.createAccount().getSeed())) })).toThrow(
      'does not hold an NKey user seed',
    );
    expect(bad('nats://h', { credsFile: file('x.creds', 'hello') })).toThrow('--nats-creds: ');
    expect(bad('nats://h', { tlsCa: fixture('ca.pem'), tlsCert: fixture('client.pem') })).toThrow(
      '--nats-tls-cert and --nats-tls-key: give both or neither',
    );
  });
});

describe('options and environment', () => {
  it('flags win over RLMESH_NATS_* variables, and go back out as the same flags', () => {
    const env = { RLMESH_NATS_CREDS: '/env.creds', RLMESH_NATS_TLS_CA: '/env-ca.pem' };
    const auth = natsAuthFrom({ 'nats-creds': '/flag.creds' }, env);
    expect(auth).toEqual({ credsFile: '/flag.creds', tlsCa: '/env-ca.pem' });
    expect(natsAuthArgs(auth)).toEqual(['--nats-creds', '/flag.creds', '--nats-tls-ca', '/env-ca.pem']);
  });
});

describe('natsServerConfig', () => {
  it('writes authorization and tls blocks, nothing when flags say all', () => {
    expect(natsServerConfig({})).toBeNull();
    expect(natsServerConfig({ auth: { user: 'u', password: 'p"w' } })).toBe('authorization { user: "u", password: "p\\"w" }\n');
    expect(natsServerConfig({ auth: { token: 't' } })).toBe('authorization { token: "t" }\n');
    expect(natsServerConfig({ auth: { nkeys: ['UA', 'UB'] } })).toBe('authorization { users: [ { nkey: "UA" }, { nkey: "UB" } ] }\n');
    expect(natsServerConfig({ tls: { cert: 'c', key: 'k', ca: 'a' } })).toBe(
      'tls { cert_file: "c", key_file: "k", ca_file: "a", verify: true, timeout: 2 }\n',
    );
  });
});

describe('natsConnectError', () => {
  it('says which of login, TLS or reachability failed, in one line without the secret', () => {
    const login = natsConnectError('nats://svc:pw9@h:1', new AuthorizationError("'Authorization Violation'"));
    expect(login.kind).toBe('login');
    expect(login.message).toBe(
      "NATS at nats://svc:***@h:1 refused the login (Authorization Violation): check the URL's user:password@ or token@, --nats-creds or --nats-nkey",
    );
    const down = natsConnectError('nats://h:1', new ConnectionError('connection refused', { cause: new Error('connect ECONNREFUSED') }));
    expect([down.kind, down.message]).toEqual(['unreachable', 'NATS at nats://h:1 cannot be reached: nothing listens there']);
    const tls = natsConnectError('nats://h:1', new Error('unable to verify the first certificate'));
    expect(tls.kind).toBe('tls');
    expect(tls.message).toContain('TLS failed (unable to verify the first certificate)');
    const dropped = natsConnectError('tls://h:1', new Error('timeout'), true);
    expect([dropped.kind, dropped.message]).toEqual([
      'tls',
      'NATS at tls://h:1 did not answer over TLS: if it verifies client certificates, give --nats-tls-cert and --nats-tls-key',
    ]);
    expect(natsConnectError('nats://h:1', new Error('timeout')).kind).toBe('unreachable');
  });
});
