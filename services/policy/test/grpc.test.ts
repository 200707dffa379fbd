/**
 * rlmesh.v1.PolicyService over real gRPC on loopback: Act and GetPolicy round trips, the status codes
 * and messages of bad requests, and a server that keeps serving after them.
 */
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { MemoryBus } from '@rlmesh/mesh';
import {
  ActRequest,
  type ActResponse,
  DType,
  decodeTensor,
  encodeTensor,
  type GetPolicyResponse,
  PolicyServiceClient,
} from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyServer } from '../src/grpc';
import { compile, observations, publish, quietLogger, reference } from './fixture';

const C = compile();
const P1 = C.params(1);
let server: Awaited<ReturnType<typeof startPolicyServer>>;
let client: PolicyServiceClient;

beforeAll(async () => {
  const bus = new MemoryBus();
  await publish(bus, 'run-a', C, 1, P1);
  server = await startPolicyServer({ bus, port: 0, logger: quietLogger, seed: 0 });
  client = new PolicyServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.shutdown();
});

const act = (req: Partial<ActRequest>) =>
  new Promise<ActResponse>((resolve, reject) =>
    client.act(ActRequest.fromPartial({ runId: 'run-a', ...req }), (err, res) => (err ? reject(err) : resolve(res))),
  );
const getPolicy = (runId: string) =>
  new Promise<GetPolicyResponse>((resolve, reject) => client.getPolicy({ runId }, (err, res) => (err ? reject(err) : resolve(res))));
const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: ServiceError) => ({ code: e.code, details: e.details }),
  );

describe('PolicyService over gRPC', () => {
  it('Act returns actions, their log-probs and values for every row, and the version', async () => {
    const rows = 5;
    const obs = observations(rows, C.obsDim);
    const res = await act({ obs: encodeTensor(obs, [rows, C.obsDim]), greedy: true });
    expect(res.policyVersion).toBe(1);
    const actions = decodeTensor('actions', res.actions, { dtype: 'int32', shape: [rows] }).data;
    const logProbs = decodeTensor('log_probs', res.logProbs, { dtype: 'float32', shape: [rows] }).data;
    const values = decodeTensor('values', res.values, { dtype: 'float32', shape: [rows] }).data;
    const ref = await reference(C, P1, obs, rows);
    for (let i = 0; i < rows; i++) {
      const row = Array.from(ref.logProbs.subarray(i * C.numActions, (i + 1) * C.numActions));
      expect(actions[i]).toBe(row.indexOf(Math.max(...row)));
      expect(logProbs[i]).toBeCloseTo(row[actions[i]], 5);
      expect(values[i]).toBeCloseTo(ref.value[i], 5);
    }
  });

  it('concurrent Act calls all succeed with their own row counts', async () => {
    const sizes = [1, 7, 3, 16, 2, 9];
    const results = await Promise.all(sizes.map((n, i) => act({ obs: encodeTensor(observations(n, C.obsDim, i), [n, C.obsDim]) })));
    results.forEach((r, i) => {
      expect(r.actions?.shape).toEqual([sizes[i]]);
      const a = decodeTensor('actions', r.actions, { dtype: 'int32', shape: [sizes[i]] }).data;
      for (const x of a) expect(x >= 0 && x < C.numActions).toBe(true);
    });
  });

  it('Act with a seed samples the same actions on every call', async () => {
    const rows = 64;
    const obs = encodeTensor(observations(rows, C.obsDim, 9), [rows, C.obsDim]);
    const a = await act({ obs, seed: 1234 });
    const b = await act({ obs, seed: 1234 });
    const decode = (r: ActResponse) => Array.from(decodeTensor('actions', r.actions, { dtype: 'int32', shape: [rows] }).data);
    expect(decode(a)).toEqual(decode(b));
  });

  it('GetPolicy returns the version and the spec as spaces', async () => {
    const res = await getPolicy('run-a');
    expect(res.runId).toBe('run-a');
    expect(res.version).toBe(1);
    expect(res.spec?.model).toBe('TinyPolicy');
    expect(res.spec?.numParameters).toBe(C.numParameters);
    expect(res.spec?.observationSpace?.kind).toMatchObject({ $case: 'box', box: { shape: [C.obsDim] } });
    expect(res.spec?.actionSpace?.kind).toEqual({ $case: 'discrete', discrete: { n: C.numActions } });
  });

  it('unknown run: NOT_FOUND naming run_id, for Act and GetPolicy', async () => {
    const obs = encodeTensor(observations(1, C.obsDim), [1, C.obsDim]);
    expect(await failure(act({ runId: 'nobody', obs }))).toEqual({
      code: status.NOT_FOUND,
      details: 'run_id: no policy published for run "nobody"',
    });
    expect((await failure(getPolicy('nobody'))).code).toBe(status.NOT_FOUND);
  });

  it('malformed obs: INVALID_ARGUMENT naming obs (dtype, rank, width, missing, zero rows)', async () => {
    const ints = encodeTensor(new Int32Array(C.obsDim), [1, C.obsDim]);
    expect(await failure(act({ obs: ints }))).toEqual({ code: status.INVALID_ARGUMENT, details: 'obs: must be float32, got int32' });
    const flat = encodeTensor(observations(1, C.obsDim), [C.obsDim]);
    expect(await failure(act({ obs: flat }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: `obs: shape must be [*, *], got [${C.obsDim}]`,
    });
    const narrow = encodeTensor(new Float32Array(6), [2, 3]);
    expect(await failure(act({ obs: narrow }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: `obs: shape must be [*, ${C.obsDim}], got [2, 3]`,
    });
    const short = { dtype: DType.DTYPE_FLOAT32, shape: [2, C.obsDim], data: Buffer.alloc(4) };
    const e = await failure(act({ obs: short }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toMatch(/^obs: shape \[2, 6\] needs 48 bytes/);
    expect(await failure(act({ obs: undefined }))).toEqual({ code: status.INVALID_ARGUMENT, details: 'obs: is required' });
    const none = await failure(act({ obs: encodeTensor(new Float32Array(0), [0, C.obsDim]) }));
    expect(none.code).toBe(status.INVALID_ARGUMENT);
    expect(none.details).toMatch(/^obs: /);
    expect((await failure(act({ runId: 'bad/id', obs: flat }))).code).toBe(status.INVALID_ARGUMENT);
  });

  it('keeps serving after bad requests', async () => {
    const res = await act({ obs: encodeTensor(observations(2, C.obsDim), [2, C.obsDim]) });
    expect(res.policyVersion).toBe(1);
    expect(res.actions?.shape).toEqual([2]);
  });

  it('shutdown closes the core as well', async () => {
    const bus = new MemoryBus();
    await publish(bus, 'run-b', C, 1, P1);
    const s = await startPolicyServer({ bus, logger: quietLogger });
    await s.core.act('run-b', observations(1, C.obsDim), 1, true);
    await s.shutdown();
    await expect(s.core.act('run-b', observations(1, C.obsDim), 1, true)).rejects.toMatchObject({ code: status.UNAVAILABLE });
  });
});
