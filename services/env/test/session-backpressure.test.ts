/**
 * A Session client that sends steps but never reads the replies: the server stops reading its
 * requests once the replies back up, instead of buffering every reply in memory.
 */
import { connect } from 'node:http2';
import { createLogger } from '@rlmesh/mesh';
import { SessionRequest } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { startEnvServer } from '../src/grpc';
import { EnvServiceCore, type EnvSession } from '../src/service';

class CountingCore extends EnvServiceCore {
  handled = 0;
  override session(): EnvSession {
    const inner = super.session();
    return {
      handle: (msg) => {
        this.handled++;
        return inner.handle(msg);
      },
      close: () => inner.close(),
    };
  }
}

describe('Session back-pressure', () => {
  const core = new CountingCore();
  let server: Awaited<ReturnType<typeof startEnvServer>>;
  afterAll(async () => {
    await server?.shutdown();
  });

  it('stops reading requests while replies back up, and serves them all once the client reads', async () => {
    server = await startEnvServer({ port: 0, core, logger: createLogger('env', 'error') });
    // A raw HTTP/2 client, because grpc-js's client reads every reply into its own memory whether or
    // not the caller does: this one leaves them in the transport, as a slow or hostile peer would.
    const session = connect(`http://127.0.0.1:${server.port}`);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/rlmesh.v1.EnvService/Session',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.pause();
    const sent = 2000;
    // Resets of SequenceNext showing 16 past symbols of 1024: each reply carries a 64 KB observation.
    const body = SessionRequest.encode(
      SessionRequest.fromPartial({
        request: { $case: 'reset', reset: { envId: 'SequenceNext', options: { num_symbols: 1024, window: 16 } } },
      }),
    ).finish();
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    for (let i = 0; i < sent; i++) stream.write(frame);
    await new Promise((r) => setTimeout(r, 1500));
    const whileNotReading = core.handled;
    expect(whileNotReading).toBeGreaterThan(0);
    expect(whileNotReading).toBeLessThan(sent / 4);
    // Reading lets every request through.
    stream.on('data', () => undefined);
    stream.resume();
    const t0 = Date.now();
    while (core.handled < sent && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
    expect(core.handled).toBe(sent);
    stream.close();
    session.close();
  });
});
