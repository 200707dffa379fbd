/**
 * EnvService contract tests over real gRPC on loopback: what a client in another process sees —
 * messages round-trip, bad requests come back as the right status with details naming the field,
 * the service keeps serving after them, the Session stream works, and health and reflection answer.
 */
import { join } from 'node:path';
import {
  type CallOptions,
  type Client,
  credentials,
  loadPackageDefinition,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createLogger } from '@rlmesh/mesh';
import {
  decodeTensor,
  EnvServiceClient,
  encodeTensor,
  type SessionRequest,
  type SessionResponse,
  type Tensor,
  type VecResetResponse,
} from '@rlmesh/proto';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvServiceCore, startEnvServer } from '../src';

// The generated methods are overloaded; inference takes the last overload, this full form.
type Unary<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown;
/** Promisifies one unary method of a client, with a deadline so a hung server fails the test. */
const call = <Req, Res>(client: Client, method: Unary<Req, Res>, req: Req): Promise<Res> =>
  new Promise((resolve, reject) =>
    method.call(client, req, new Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );

const floats = (t: Tensor | undefined) => Array.from(decodeTensor('t', t, { dtype: 'float32', shape: t?.shape ?? [] }).data);
const bytes = (t: Tensor | undefined) => Array.from(decodeTensor('t', t, { dtype: 'uint8', shape: [-1] }).data);

let server: Awaited<ReturnType<typeof startEnvServer>>;
let env: EnvServiceClient;
let addr: string;

beforeAll(async () => {
  server = await startEnvServer({ port: 0, logger: createLogger('env-test', 'error'), core: new EnvServiceCore({ maxEnvsPerCall: 64 }) });
  addr = `127.0.0.1:${server.port}`;
  env = new EnvServiceClient(addr, credentials.createInsecure());
});

afterAll(async () => {
  env?.close();
  await server?.shutdown({ graceMs: 2000 });
});

const listEnvs = () => call(env, env.listEnvs, {});
const vecReset = (numEnvs: number, envId = 'PatternEcho', options?: Record<string, unknown>): Promise<VecResetResponse> =>
  call(env, env.vecReset, { envId, numEnvs, handle: '', difficulty: 0, seed: 9, options });

/** Polls `cond` until it holds: the server handles stream events asynchronously to the client. */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 10)))
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
}

/** The ServiceError a call must fail with. */
async function failure(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: ServiceError) => e,
  );
  if (!err) throw new Error('expected the call to fail');
  return err;
}

describe('EnvService over gRPC', () => {
  it('lists the symbolic and classic-control envs, with per-element Box bounds and options schemas', async () => {
    const { envs } = await listEnvs();
    const ids = envs.map((e) => e.id);
    expect(ids.slice(0, 6)).toEqual(['PatternEcho', 'SequenceNext', 'Conditional', 'CartPole-v1', 'Pendulum-v1', 'CardRules']);
    expect(ids).toEqual(expect.arrayContaining(['AffineSAT', 'AffineABD', 'AffineDED', 'TextCraft', 'GridGoals', 'ShopSearch']));
    expect(envs[0].actionSpace).toEqual({ kind: { $case: 'discrete', discrete: { n: 8 } } });
    expect(envs[1].observationSpace).toEqual({
      kind: { $case: 'box', box: { shape: [24], low: new Array(24).fill(0), high: new Array(24).fill(1) } },
    });
    // +-inf bounds survive the wire (CartPole's cart speed and pole angular speed are unbounded)
    const cart = envs[3].observationSpace?.kind;
    if (cart?.$case !== 'box') throw new Error('expected a Box observation space');
    expect(cart.box.high[1]).toBe(Number.POSITIVE_INFINITY);
    expect(cart.box.low[3]).toBe(Number.NEGATIVE_INFINITY);
    expect(envs[4].actionSpace).toEqual({ kind: { $case: 'box', box: { shape: [1], low: [-2], high: [2] } } });
    for (const e of envs) {
      expect(e.description).not.toBe('');
      expect(JSON.parse(e.optionsSchema)).toHaveProperty('max_episode_steps');
    }
  });

  it('passes Reset options as a Struct and steps Pendulum-v1 with action_values', async () => {
    const r = await call(env, env.reset, {
      envId: 'Pendulum-v1',
      handle: '',
      difficulty: 0,
      seed: 3,
      options: { max_episode_steps: 2, g: 9.81 },
    });
    expect(r.obs?.shape).toEqual([3]);
    const s1 = await call(env, env.step, { handle: r.handle, action: 0, actionValues: [5] });
    expect(s1.truncated).toBe(false);
    const s2 = await call(env, env.step, { handle: r.handle, action: 0, actionValues: [-0.5] });
    expect(s2.truncated).toBe(true);
    const r2 = await call(env, env.reset, { envId: '', handle: r.handle, difficulty: 0, seed: 3 });
    const nan = await failure(call(env, env.step, { handle: r2.handle, action: 0, actionValues: [Number.NaN] }));
    expect(nan.code).toBe(status.INVALID_ARGUMENT);
    expect(nan.details).toMatch(/^action_values: /);
    await call(env, env.closeEnv, { handle: r.handle });
  });

  it('runs VecStep on CartPole-v1 with int32 actions', async () => {
    const r = await vecReset(2, 'CartPole-v1');
    expect(r.obs?.shape).toEqual([2, 4]);
    const s = await call(env, env.vecStep, { handle: r.handle, actions: encodeTensor(Int32Array.from([0, 1]), [2]) });
    expect(s.obs?.shape).toEqual([2, 4]);
    expect(floats(s.rewards.goal)).toEqual([1, 1]);
    await call(env, env.closeEnv, { handle: r.handle });
  });

  it('round-trips VecReset and VecStep, with autoreset and final_obs', async () => {
    const r = await vecReset(4);
    expect(r.handle).toMatch(/^vec-/);
    expect(r.obs?.shape).toEqual([4, 8]);
    const obs = floats(r.obs);
    const targets = [0, 1, 2, 3].map((i) => obs.slice(i * 8, i * 8 + 8).indexOf(1));
    const s = await call(env, env.vecStep, { handle: r.handle, actions: encodeTensor(Int32Array.from(targets), [4]) });
    expect(floats(s.rewards.goal)).toEqual([1, 1, 1, 1]);
    expect(floats(s.rewards.pred)).toEqual([0, 0, 0, 0]);
    expect(bytes(s.truncated)).toEqual([1, 1, 1, 1]);
    expect(bytes(s.success)).toEqual([1, 1, 1, 1]);
    expect(s.finalObs?.shape).toEqual([4, 8]);
    expect(s.obs?.shape).toEqual([4, 8]);
    await call(env, env.closeEnv, { handle: r.handle });
  });

  it('steps a single env with Reset/Step', async () => {
    const r = await call(env, env.reset, { envId: 'Conditional', handle: '', difficulty: 2, seed: 4 });
    expect(r.info?.id).toBe('Conditional');
    const s = await call(env, env.step, { handle: r.handle, action: 0, actionValues: [] });
    expect(s.truncated).toBe(true);
    expect(Object.keys(s.reward?.components ?? {}).sort()).toEqual(['goal', 'pred']);
    const again = await failure(call(env, env.step, { handle: r.handle, action: 0, actionValues: [] }));
    expect(again.code).toBe(status.FAILED_PRECONDITION);
    expect(again.details).toMatch(/episode ended; call Reset/);
  });

  describe('bad requests', () => {
    let handle: string;
    beforeAll(async () => {
      handle = (await vecReset(2)).handle;
    });
    const cases: [string, () => Promise<unknown>, status, RegExp][] = [
      ['unknown env', () => vecReset(2, 'Nope'), status.INVALID_ARGUMENT, /^env_id: unknown env "Nope"/],
      [
        'float32 actions',
        () => call(env, env.vecStep, { handle, actions: encodeTensor(Float32Array.from([0, 0]), [2]) }),
        status.INVALID_ARGUMENT,
        /^actions: must be int32, got float32$/,
      ],
      [
        'actions of the wrong shape',
        () => call(env, env.vecStep, { handle, actions: encodeTensor(Int32Array.from([0, 0, 0]), [3]) }),
        status.INVALID_ARGUMENT,
        /^actions: shape must be \[2\], got \[3\]$/,
      ],
      ['missing actions', () => call(env, env.vecStep, { handle, actions: undefined }), status.INVALID_ARGUMENT, /^actions: is required$/],
      [
        'action out of range',
        () => call(env, env.vecStep, { handle, actions: encodeTensor(Int32Array.from([0, 8]), [2]) }),
        status.INVALID_ARGUMENT,
        /^actions\[1\]: must be an integer in 0\.\.7, got 8$/,
      ],
      ['unknown option', () => vecReset(2, 'PatternEcho', { bogus: 1 }), status.INVALID_ARGUMENT, /^options\.bogus: unknown key/],
      [
        'bad option',
        () => vecReset(2, 'PatternEcho', { num_symbols: 1 }),
        status.INVALID_ARGUMENT,
        /^options\.num_symbols: must be an integer >= 2/,
      ],
      ['oversize num_envs', () => vecReset(65), status.INVALID_ARGUMENT, /^num_envs: must be in 1\.\.64, got 65$/],
      [
        'unknown handle',
        () => call(env, env.step, { handle: 'env-0000', action: 0, actionValues: [] }),
        status.NOT_FOUND,
        /^handle: unknown handle/,
      ],
      [
        'vector handle to Step',
        () => call(env, env.step, { handle, action: 0, actionValues: [] }),
        status.FAILED_PRECONDITION,
        /^handle: /,
      ],
    ];
    it.each(cases)('%s', async (_name, f, code, details) => {
      const err = await failure(f());
      expect(status[err.code]).toBe(status[code]);
      expect(err.details).toMatch(details);
    });

    it('leaves the service up', async () => {
      expect((await listEnvs()).envs.map((e) => e.id)).toContain('PatternEcho');
    });
  });

  it('runs a Session: reset, then 3 steps, and frees the env when the stream ends', async () => {
    const before = server.core.liveEnvs;
    const stream = env.session();
    const responses: SessionResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: SessionResponse) => responses.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const send = (m: SessionRequest) => stream.write(m);
    send({
      request: {
        $case: 'reset',
        reset: { envId: 'PatternEcho', handle: '', difficulty: 0, seed: 1, options: { max_episode_steps: 3 } },
      },
    });
    for (let t = 0; t < 3; t++) send({ request: { $case: 'step', step: { handle: '', action: t, actionValues: [] } } });
    stream.end();
    await ended;
    expect(responses.map((r) => r.response?.$case)).toEqual(['reset', 'step', 'step', 'step']);
    const steps = responses.slice(1).map((r) => (r.response?.$case === 'step' ? r.response.step.truncated : undefined));
    expect(steps).toEqual([false, false, true]);
    await until(() => server.core.liveEnvs === before);
  });

  it('frees a Session env when the client cancels the stream', async () => {
    const before = server.core.liveEnvs;
    const stream = env.session();
    stream.on('error', () => {}); // the CANCELLED status that cancel() produces
    const first = new Promise((resolve) => stream.once('data', resolve));
    stream.write({ request: { $case: 'reset', reset: { envId: 'SequenceNext', handle: '', difficulty: 1 } } });
    await first;
    expect(server.core.liveEnvs).toBe(before + 1);
    stream.cancel();
    await until(() => server.core.liveEnvs === before);
  });

  it('ends a Session whose first message is a step with FAILED_PRECONDITION', async () => {
    const stream = env.session();
    const err = await new Promise<ServiceError>((resolve, reject) => {
      stream.on('error', resolve);
      stream.on('data', () => reject(new Error('expected no response')));
      stream.on('end', () => reject(new Error('expected an error status')));
      stream.write({ request: { $case: 'step', step: { handle: '', action: 0, actionValues: [] } } });
      // Half-close too, so that a server which ignored the bad message ends with OK and fails the test.
      stream.end();
    });
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/first message of a Session must be a reset/);
  });

  it('closes idle handles on a timer', async () => {
    const idle = await startEnvServer({ port: 0, idleMs: 1, logger: createLogger('env-test', 'error') });
    try {
      idle.core.reset({ envId: 'PatternEcho', handle: '', difficulty: 0 });
      expect(idle.core.liveEnvs).toBe(1);
      await until(() => idle.core.liveEnvs === 0, 3000);
    } finally {
      await idle.shutdown({ graceMs: 1000 });
    }
  });

  it('answers grpc.health.v1 Check with SERVING', async () => {
    const Health = makeGenericClientConstructor(healthService, 'grpc.health.v1.Health');
    const health = new Health(addr, credentials.createInsecure()) as unknown as Client & {
      check: Unary<{ service: string }, { status: string }>;
    };
    try {
      expect((await call(health, health.check, { service: '' })).status).toBe('SERVING');
      expect((await call(health, health.check, { service: 'rlmesh.v1.EnvService' })).status).toBe('SERVING');
    } finally {
      health.close();
    }
  });

  it('answers reflection as grpcurl uses it: lists the services and serves their file descriptors', async () => {
    const protoPath = join(require.resolve('@grpc/reflection/package.json'), '..', 'build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = loadPackageDefinition(loadSync(protoPath, { keepCase: true, oneofs: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (addr: string, c: ReturnType<typeof credentials.createInsecure>) => Client } } };
    };
    const reflection = new pkg.grpc.reflection.v1.ServerReflection(addr, credentials.createInsecure()) as Client & {
      ServerReflectionInfo(): NodeJS.ReadWriteStream & { end(): void };
    };
    type Answer = {
      list_services_response?: { service: { name: string }[] };
      file_descriptor_response?: { file_descriptor_proto: Buffer[] };
      error_response?: { error_message: string };
    };
    const ask = (request: object) =>
      new Promise<Answer>((resolve, reject) => {
        const stream = reflection.ServerReflectionInfo();
        stream.on('data', (m: Answer) => {
          resolve(m);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(request as never);
      });
    try {
      const listed = await ask({ list_services: '' });
      const names = (listed.list_services_response?.service ?? []).map((s) => s.name);
      expect(names).toContain('rlmesh.v1.EnvService');
      expect(names).toContain('grpc.health.v1.Health');
      for (const symbol of ['rlmesh.v1.EnvService', 'grpc.health.v1.Health']) {
        const files = await ask({ file_containing_symbol: symbol });
        expect(files.error_response, symbol).toBeUndefined();
        const text = files.file_descriptor_response!.file_descriptor_proto.map((b) => b.toString('latin1')).join('');
        expect(text).toContain(symbol.split('.').at(-1));
      }
    } finally {
      reflection.close();
    }
  });
});
