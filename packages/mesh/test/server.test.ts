/**
 * startServer over real gRPC on loopback: thrown errors become status codes (never a crash), a
 * request that cannot be decoded is INVALID_ARGUMENT rather than grpc-js's INTERNAL, health answers,
 * and shutdown turns health NOT_SERVING.
 */
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { type ActRequest, type ActResponse, PolicyServiceService } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invalidArgument, type RunningServer, startServer } from '../src';

describe('startServer', () => {
  let server: RunningServer;
  let client: Client;
  const call = (bytes: Buffer) =>
    new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        '/rlmesh.v1.PolicyService/Act',
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        (err: ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res!)),
      ),
    );
  const encode = (req: Partial<ActRequest>) =>
    Buffer.from(PolicyServiceService.act.requestSerialize({ runId: '', greedy: false, minVersion: 0, seed: 0, ...req }));
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: ServiceError) => e,
    );

  beforeAll(async () => {
    server = await startServer({
      service: 'test',
      port: 0,
      logger: { debug() {}, info() {}, warn() {}, error() {} },
      services: [
        {
          name: 'rlmesh.v1.PolicyService',
          definition: PolicyServiceService,
          handlers: {
            act: async (req: ActRequest): Promise<ActResponse> => {
              if (req.runId === 'bad') throw invalidArgument('run_id', 'is bad');
              if (req.runId === 'bug') throw new Error('a bug');
              return { policyVersion: 7 };
            },
            getPolicy: async () => ({ runId: '', version: 0 }),
            // Streams are not under test here: a Generate call ends at once.
            generate: async (call: { end(): void }) => call.end(),
          },
        },
      ],
    });
    client = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.shutdown();
  });

  it('answers a handler error with its status and message, and a bug with INTERNAL, and keeps serving', async () => {
    expect((await failure(call(encode({ runId: 'bad' }))))?.code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(call(encode({ runId: 'bad' }))))?.details).toBe('run_id: is bad');
    expect((await failure(call(encode({ runId: 'bug' }))))?.code).toBe(status.INTERNAL);
    const ok = PolicyServiceService.act.responseDeserialize(await call(encode({ runId: 'good' })));
    expect(ok.policyVersion).toBe(7);
  });

  it('answers an undecodable request with INVALID_ARGUMENT', async () => {
    // field 4 (min_version, uint64) = 2^60: valid protobuf, beyond what a JS number holds exactly
    const tooBig = Buffer.from([0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    const err = await failure(call(tooBig));
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/^request: cannot be decoded/);
    const truncated = Buffer.from([0x12, 0x05, 0x01]); // field 2 claims 5 bytes, 1 follows
    expect((await failure(call(truncated)))?.code).toBe(status.INVALID_ARGUMENT);
  });

  it('reports SERVING until shutdown starts, then NOT_SERVING', async () => {
    const statusOf = () =>
      new Promise<number>((resolve, reject) =>
        client.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (err: ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res!.length ? res![1] : 0)),
        ),
      );
    expect(await statusOf()).toBe(1); // SERVING
    const stopping = server.shutdown({ drainMs: 300 });
    expect(await statusOf()).toBe(2); // NOT_SERVING, while draining
    await stopping;
  });
});
