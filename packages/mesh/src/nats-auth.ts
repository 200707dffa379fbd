/**
 * How a client logs in to NATS: every form nats.js v3 and nats-server 2.9 share. A user and
 * password (`nats://user:pass@host:port`) or a token (`nats://token@host:port`) travel in the URL or
 * as options; an NKey seed file, a `.creds` file (user JWT + seed) and TLS files are named by
 * `--nats-nkey`, `--nats-creds` and `--nats-tls-ca / -cert / -key` (or RLMESH_NATS_* variables). A
 * `tls://` URL requires TLS. The secret is taken out of the URLs before nats.js sees them, and every
 * URL this package prints goes through `redactNatsUrl`.
 */
import { readFileSync } from 'node:fs';
import { type ConnectionOptions, credsAuthenticator, nkeyAuthenticator, nkeys } from '@nats-io/nats-core';

export interface NatsAuth {
  user?: string;
  pass?: string;
  token?: string;
  /** File holding an NKey user seed (SU...). */
  nkeyFile?: string;
  /** A `.creds` file: the user JWT and its seed, as `nsc` writes them. */
  credsFile?: string;
  /** PEM CA bundle that signed the server's certificate; with it the connection uses TLS. */
  tlsCa?: string;
  /** PEM certificate and key this client presents (a server that verifies clients asks for them). */
  tlsCert?: string;
  tlsKey?: string;
}

/** The command-line options every process that connects to NATS takes, and their environment fallbacks. */
export const NATS_AUTH_OPTIONS = {
  'nats-creds': ['credsFile', 'RLMESH_NATS_CREDS'],
  'nats-nkey': ['nkeyFile', 'RLMESH_NATS_NKEY'],
  'nats-tls-ca': ['tlsCa', 'RLMESH_NATS_TLS_CA'],
  'nats-tls-cert': ['tlsCert', 'RLMESH_NATS_TLS_CERT'],
  'nats-tls-key': ['tlsKey', 'RLMESH_NATS_TLS_KEY'],
} as const satisfies Record<string, [keyof NatsAuth, string]>;

/** The --nats-* file options, falling back to their RLMESH_NATS_* variables. */
export function natsAuthFrom(options: Record<string, string | undefined>, env: NodeJS.ProcessEnv = process.env): NatsAuth {
  const auth: NatsAuth = {};
  for (const [flag, [field, variable]] of Object.entries(NATS_AUTH_OPTIONS)) {
    const value = options[flag] ?? env[variable];
    if (value) auth[field] = value;
  }
  return auth;
}

/** The same options as command-line arguments, for a parent that starts children which connect (rlmesh up). */
export function natsAuthArgs(auth: NatsAuth): string[] {
  return Object.entries(NATS_AUTH_OPTIONS).flatMap(([flag, [field]]) => (auth[field] ? [`--${flag}`, auth[field] as string] : []));
}

interface ParsedUrl {
  hostPort: string;
  tls: boolean;
  user?: string;
  pass?: string;
}

function parseUrl(raw: string): ParsedUrl {
  const text = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `nats://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`NATS URL: cannot parse ${JSON.stringify(redactNatsUrl(text))}`);
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme !== 'nats' && scheme !== 'tls')
    throw new Error(`NATS URL: the scheme must be nats:// or tls://, got ${scheme}:// in ${redactNatsUrl(text)}`);
  if (!url.hostname) throw new Error(`NATS URL: no host in ${redactNatsUrl(text)}`);
  const out: ParsedUrl = { hostPort: `${url.hostname}:${url.port || 4222}`, tls: scheme === 'tls' };
  if (url.username) out.user = decodeURIComponent(url.username);
  if (url.password) out.pass = decodeURIComponent(url.password);
  return out;
}

/**
 * A URL (or comma-separated URLs) fit to print: the password or token replaced by ***. Everything
 * up to a URL's last @ counts as the secret, so that one holding a '/' or '@' (not percent-encoded,
 * hence no valid URL) is hidden whole too.
 */
export function redactNatsUrl(urls: string): string {
  return urls
    .split(',')
    .map((u) => {
      const scheme = u.indexOf('://');
      const start = scheme >= 0 ? scheme + 3 : 0;
      const at = u.lastIndexOf('@');
      if (at < start) return u;
      const user = u.slice(start, at);
      const colon = user.indexOf(':');
      return `${u.slice(0, start)}${colon >= 0 ? `${user.slice(0, colon)}:***` : '***'}${u.slice(at)}`;
    })
    .join(',');
}

function read(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`--${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * nats.js connection options for `servers` (comma-separated URLs) and `auth`: the URLs' credentials
 * moved into options, files read and checked now, so that a wrong file is named before any connect.
 */
export function natsConnectOptions(servers: string, auth: NatsAuth = {}): ConnectionOptions {
  const urls = servers
    .split(',')
    .filter((s) => s.trim())
    .map(parseUrl);
  if (urls.length === 0) throw new Error('NATS URL: empty');
  const withSecret = urls.filter((u) => u.user !== undefined);
  if (withSecret.some((u) => u.user !== withSecret[0].user || u.pass !== withSecret[0].pass))
    throw new Error('NATS URL: the servers carry different credentials; one client logs in one way');
  const fromUrl = withSecret[0];
  const opts: ConnectionOptions = { servers: urls.map((u) => u.hostPort) };
  // A URL's user without a password is a token, as in every NATS client.
  let user = auth.user;
  let pass = auth.pass;
  let token = auth.token;
  if (fromUrl) {
    if (user !== undefined || token !== undefined) throw new Error('NATS URL: credentials both in the URL and as options; give them once');
    if (fromUrl.pass !== undefined) [user, pass] = [fromUrl.user, fromUrl.pass];
    else token = fromUrl.user;
  }
  const logins = [
    user !== undefined && 'user/password',
    token !== undefined && 'token',
    auth.nkeyFile && 'nats-nkey',
    auth.credsFile && 'nats-creds',
  ];
  const given = logins.filter(Boolean);
  if (given.length > 1)
    throw new Error(`NATS login: give one of user/password, token, --nats-nkey or --nats-creds, got ${given.join(' and ')}`);
  if (user !== undefined) Object.assign(opts, { user, pass });
  if (token !== undefined) opts.token = token;
  if (auth.nkeyFile) {
    const seed = read('nats-nkey', auth.nkeyFile).toString('utf8').trim();
    try {
      if (!seed.startsWith('SU')) throw new Error('not a user seed');
      nkeys.fromSeed(new TextEncoder().encode(seed));
    } catch {
      throw new Error(`--nats-nkey: ${auth.nkeyFile} does not hold an NKey user seed (SU...)`);
    }
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (auth.credsFile) {
    const creds = read('nats-creds', auth.credsFile);
    const text = creds.toString('utf8');
    if (!/BEGIN NATS USER JWT/.test(text) || !/BEGIN USER NKEY SEED/.test(text))
      throw new Error(`--nats-creds: ${auth.credsFile} is not a .creds file (a user JWT and an NKey seed)`);
    opts.authenticator = credsAuthenticator(new Uint8Array(creds));
  }
  if (Boolean(auth.tlsCert) !== Boolean(auth.tlsKey)) throw new Error('--nats-tls-cert and --nats-tls-key: give both or neither');
  if (auth.tlsCa || auth.tlsCert || urls.some((u) => u.tls)) {
    opts.tls = {};
    if (auth.tlsCa) opts.tls.ca = read('nats-tls-ca', auth.tlsCa).toString('utf8');
    if (auth.tlsCert && auth.tlsKey) {
      opts.tls.cert = read('nats-tls-cert', auth.tlsCert).toString('utf8');
      opts.tls.key = read('nats-tls-key', auth.tlsKey).toString('utf8');
    }
  }
  return opts;
}

/** A connection that could not be made, in one line that names the server (secret redacted) and what to check. */
export class NatsConnectError extends Error {
  override readonly name = 'NatsConnectError';
  constructor(
    message: string,
    /** What went wrong: the login, TLS, or the server was not reached at all. */
    readonly kind: 'login' | 'tls' | 'unreachable',
  ) {
    super(message);
  }
}

/**
 * Says why connecting to `servers` failed, in words a user can act on. `tlsWithoutCert`: the client
 * spoke TLS without a certificate of its own, which a server that verifies clients answers by
 * dropping the connection after the handshake, so that the client sees only a timeout.
 */
export function natsConnectError(servers: string, e: unknown, tlsWithoutCert = false): NatsConnectError {
  const at = `NATS at ${redactNatsUrl(servers)}`;
  const err = e as Error;
  const chain: string[] = [];
  for (let c: unknown = e; c instanceof Error && chain.length < 5; c = c.cause) chain.push(`${c.name}: ${c.message}`);
  const text = chain.join(' / ') || String(e);
  if (err?.name === 'AuthorizationError' || err?.name === 'UserAuthenticationExpiredError' || /authorization violation/i.test(text)) {
    const why = err.message.replace(/^'|'$/g, '');
    return new NatsConnectError(
      `${at} refused the login (${why}): check the URL's user:password@ or token@, --nats-creds or --nats-nkey`,
      'login',
    );
  }
  if (/tls|ssl|certificate|self.signed|handshake/i.test(text)) {
    const why = chain.at(-1)?.replace(/^\w*Error: /, '') ?? text;
    return new NatsConnectError(
      `${at}: TLS failed (${why}): check --nats-tls-ca / --nats-tls-cert / --nats-tls-key and the URL's tls://`,
      'tls',
    );
  }
  if (tlsWithoutCert && /timeout/i.test(text))
    return new NatsConnectError(
      `${at} did not answer over TLS: if it verifies client certificates, give --nats-tls-cert and --nats-tls-key`,
      'tls',
    );
  const why = /ECONNREFUSED|connection refused/i.test(text) ? 'nothing listens there' : (chain.at(-1)?.replace(/^\w*Error: /, '') ?? text);
  return new NatsConnectError(`${at} cannot be reached: ${why}`, 'unreachable');
}
