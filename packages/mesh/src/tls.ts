/**
 * TLS and mutual TLS for every rlmesh gRPC server and client. One identity per process: its own
 * certificate and key, and the CA that signs the mesh's certificates. A server with a CA requires
 * and checks client certificates (mTLS); a client with a CA verifies the server and presents its
 * own certificate when it has one. Without files, plaintext (a private network or a sidecar).
 */
import { readFileSync } from 'node:fs';
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';

export interface TlsFiles {
  /** PEM certificate chain of this process. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /** PEM CA bundle that signs the mesh's certificates. */
  ca?: string;
}

/** --tls-* options, falling back to RLMESH_TLS_CERT / RLMESH_TLS_KEY / RLMESH_TLS_CA. */
export function tlsFilesFrom(options: Record<string, string | undefined>, env: NodeJS.ProcessEnv = process.env): TlsFiles {
  return {
    cert: options['tls-cert'] ?? env.RLMESH_TLS_CERT,
    key: options['tls-key'] ?? env.RLMESH_TLS_KEY,
    ca: options['tls-ca'] ?? env.RLMESH_TLS_CA,
  };
}

function read(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    throw new Error(`${what}: cannot read ${path}`);
  }
}

export function serverCredentials(tls: TlsFiles = {}): ServerCredentials {
  if (!tls.cert && !tls.key) {
    if (tls.ca) throw new Error('tls-ca: a server needs tls-cert and tls-key to use it');
    return ServerCredentials.createInsecure();
  }
  if (!tls.cert || !tls.key) throw new Error('tls-cert and tls-key: give both or neither');
  const ca = tls.ca ? read('tls-ca', tls.ca) : null;
  return ServerCredentials.createSsl(ca, [{ cert_chain: read('tls-cert', tls.cert), private_key: read('tls-key', tls.key) }], ca !== null);
}

export function channelCredentials(tls: TlsFiles = {}): ChannelCredentials {
  if (!tls.ca) {
    if (tls.cert || tls.key) throw new Error('tls-ca: a client needs the CA that signed the server certificate');
    return credentials.createInsecure();
  }
  if (Boolean(tls.cert) !== Boolean(tls.key)) throw new Error('tls-cert and tls-key: give both or neither');
  return credentials.createSsl(
    read('tls-ca', tls.ca),
    tls.key ? read('tls-key', tls.key) : null,
    tls.cert ? read('tls-cert', tls.cert) : null,
  );
}
