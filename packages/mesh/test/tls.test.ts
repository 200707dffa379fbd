/**
 * TLS and mutual TLS on a real server over loopback: with a CA the server admits only clients that
 * present a certificate the CA signed; without one it serves any client that trusts it; plaintext
 * clients are refused either way. Bad TLS settings fail with a message naming the option.
 */
import { join } from 'node:path';
import { type ChannelCredentials, Client, type ServiceError, status } from '@grpc/grpc-js';
import { PolicyServiceService } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { channelCredentials, type RunningServer, serverCredentials, startServer } from '../src';

const fixture = (f: string) => join(__dirname, 'fixtures', f);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function serve(tls: Parameters<typeof serverCredentials>[0]): Promise<RunningServer> {
  return startServer({
    service: 'test',
    port: 0,
    logger: quiet,
    credentials: serverCredentials(tls),
    services: [
      {
        name: 'rlmesh.v1.PolicyService',
        definition: PolicyServiceService,
        handlers: {
          act: async () => ({ policyVersion: 3 }),
          getPolicy: async () => ({ runId: '', version: 0 }),
          generate: async (call: { end(): void }) => call.end(),
        },
      },
    ],
  });
}

function act(port: number, creds: ChannelCredentials): Promise<number> {
  const client = new Client(`127.0.0.1:${port}`, creds);
  const req = Buffer.from(PolicyServiceService.act.requestSerialize({ runId: 'r', greedy: false, minVersion: 0, seed: 0 }));
  return new Promise<number>((resolve, reject) =>
    client.makeUnaryRequest(
      '/rlmesh.v1.PolicyService/Act',
      (b: Buffer) => b,
      (b: Buffer) => b,
      req,
      { deadline: Date.now() + 3000 },
      (err: ServiceError | null, res?: Buffer) => {
        client.close();
        if (err) reject(err);
        else resolve(PolicyServiceService.act.responseDeserialize(res!).policyVersion);
      },
    ),
  );
}

const code = (p: Promise<unknown>) =>
  p.then(
    () => status.OK,
    (e: ServiceError) => e.code,
  );

describe('TLS', () => {
  const servers: RunningServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.shutdown()));
  });

  it('mTLS: a client with a CA-signed certificate gets in; one without, or in plaintext, does not', async () => {
    const server = await serve({ cert: fixture('server.pem'), key: fixture('server.key'), ca: fixture('ca.pem') });
    servers.push(server);
    const withCert = channelCredentials({ ca: fixture('ca.pem'), cert: fixture('client.pem'), key: fixture('client.key') });
    expect(await act(server.port, withCert)).toBe(3);
    expect(await code(act(server.port, channelCredentials({ ca: fixture('ca.pem') })))).toBe(status.UNAVAILABLE);
    expect(await code(act(server.port, channelCredentials()))).toBe(status.UNAVAILABLE);
  });

  it('server-only TLS: any client that trusts the CA gets in', async () => {
    const server = await serve({ cert: fixture('server.pem'), key: fixture('server.key') });
    servers.push(server);
    expect(await act(server.port, channelCredentials({ ca: fixture('ca.pem') }))).toBe(3);
    expect(await code(act(server.port, channelCredentials()))).toBe(status.UNAVAILABLE);
  });

  it('names the option when TLS settings are incomplete or unreadable', () => {
    expect(() => serverCredentials({ cert: fixture('server.pem') })).toThrow('tls-cert and tls-key: give both or neither');
    expect(() => serverCredentials({ ca: fixture('ca.pem') })).toThrow(/^tls-ca: /);
    expect(() => channelCredentials({ cert: fixture('client.pem'), key: fixture('client.key') })).toThrow(/^tls-ca: /);
    expect(() => serverCredentials({ cert: '/nope.pem', key: fixture('server.key') })).toThrow('tls-cert: cannot read /nope.pem');
  });
});
