/**
 * GrpcPolicyClient through a policy service outage, over real gRPC on loopback: a stand-in
 * PolicyService answers Act with fixed actions, goes away and comes back on the same port. The
 * outage is logged once when the first call fails and once when a call succeeds again, the calls in
 * between fail with PolicyUnreachableError, and a refused request is passed on as it is, no outage.
 */
import { Server, ServerCredentials, type ServerUnaryCall, type ServiceError, type sendUnaryData, status } from '@grpc/grpc-js';
import type { Logger } from '@rlmesh/mesh';
import { type ActRequest, type ActResponse, encodeTensor, PolicyServiceService } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { GrpcPolicyClient, PolicyUnreachableError } from '../src';

interface Line {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function capturingLogger(lines: Line[]): Logger {
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      lines.push({ level, msg, fields });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Act answers action 3 for every row of run "ok" and refuses any other run. */
function act(call: ServerUnaryCall<ActRequest, ActResponse>, done: sendUnaryData<ActResponse>): void {
  const rows = Number(call.request.obs?.shape[0]);
  if (call.request.runId !== 'ok') done({ code: status.INVALID_ARGUMENT, details: 'run_id: unknown' } as ServiceError, null);
  else
    done(null, {
      actions: encodeTensor(new Int32Array(rows).fill(3), [rows]),
      logProbs: encodeTensor(new Float32Array(rows), [rows]),
      values: encodeTensor(new Float32Array(rows), [rows]),
      policyVersion: 7,
    });
}

async function serve(port: number): Promise<{ server: Server; port: number }> {
  const server = new Server();
  server.addService(PolicyServiceService, { act } as never);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port: bound };
}

describe('GrpcPolicyClient when the policy service goes away', () => {
  const lines: Line[] = [];
  let server: Server | undefined;
  let client: GrpcPolicyClient | undefined;
  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  it('reports the outage once when it starts and once when the service is back', async () => {
    const first = await serve(0);
    server = first.server;
    const address = `127.0.0.1:${first.port}`;
    client = new GrpcPolicyClient(address, 2000, undefined, capturingLogger(lines));
    const obs = new Float32Array(4 * 2);
    expect(Array.from((await client.act('ok', obs, 4, 1, 0)).actions)).toEqual([3, 3, 3, 3]);
    expect(lines).toEqual([]);

    server.forceShutdown();
    for (let k = 0; k < 3; k++) await expect(client.act('ok', obs, 4, 1, 0)).rejects.toBeInstanceOf(PolicyUnreachableError);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([['warn', 'policy service unreachable; actors wait and retry until it is back']]);
    expect(lines[0].fields).toMatchObject({ address, error: expect.stringMatching(/^UNAVAILABLE: /) });

    server = (await serve(first.port)).server;
    // The channel reconnects within its (capped) backoff; calls fail until then.
    const t0 = Date.now();
    let answered = false;
    while (!answered && Date.now() - t0 < 10_000) {
      answered = await client.act('ok', obs, 4, 1, 0).then(
        () => true,
        (e) => {
          expect(e).toBeInstanceOf(PolicyUnreachableError);
          return new Promise<boolean>((r) => setTimeout(() => r(false), 100));
        },
      );
    }
    expect(answered).toBe(true);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'policy service unreachable; actors wait and retry until it is back'],
      ['info', 'policy service is back; actors resume'],
    ]);
    expect(lines[1].fields).toMatchObject({ address, failed_calls: expect.any(Number) });
    expect(lines[1].fields.failed_calls).toBeGreaterThanOrEqual(3);

    // A request the service refuses is the caller's error, passed on unchanged, and no outage.
    const refused = await client.act('other', obs, 4, 1, 0).catch((e: ServiceError) => e);
    expect(refused).not.toBeInstanceOf(PolicyUnreachableError);
    expect((refused as ServiceError).code).toBe(status.INVALID_ARGUMENT);
    expect(lines).toHaveLength(2);
  });
});
