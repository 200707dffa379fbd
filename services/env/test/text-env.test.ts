/**
 * The text side of the EnvService contract over real gRPC on loopback: a text env is listed as
 * one, Reset returns its prompt, Step takes a completion and returns the verifier's reward
 * components, and bad completions (empty, oversize, invalid UTF-8 bytes, numeric actions) are
 * INVALID_ARGUMENT naming the field while the episode and the service carry on.
 */
import {
  type CallOptions,
  type Client,
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { makeTextEnv } from '@rlmesh/core';
import type { CardExample } from '@rlmesh/envs';
import { createLogger } from '@rlmesh/mesh';
import { EnvServiceClient, type SessionRequest, type SessionResponse, type StepResponse } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvServiceCore, startEnvServer } from '../src';

type Unary<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown;
const call = <Req, Res>(client: Client, method: Unary<Req, Res>, req: Req): Promise<Res> =>
  new Promise((resolve, reject) =>
    method.call(client, req, new Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: ServiceError) => e,
  );
  if (!err) throw new Error('expected the call to fail');
  return err;
}

let server: Awaited<ReturnType<typeof startEnvServer>>;
let env: EnvServiceClient;
let addr: string;

beforeAll(async () => {
  server = await startEnvServer({ port: 0, logger: createLogger('env-text-test', 'error'), core: new EnvServiceCore() });
  addr = `127.0.0.1:${server.port}`;
  env = new EnvServiceClient(addr, credentials.createInsecure());
});

afterAll(async () => {
  env?.close();
  await server?.shutdown({ graceMs: 2000 });
});

/** The problem an in-process CardRules env draws for `seed`: the same as the served one's. */
function localProblem(seed: number, options: Record<string, unknown> = {}): CardExample {
  const local = makeTextEnv('CardRules', options);
  local.reset(seed);
  return local.current as CardExample;
}

const reset = (seed: number, options?: Record<string, unknown>) =>
  call(env, env.reset, { envId: 'CardRules', handle: '', difficulty: 0, seed, options });
const step = (handle: string, completion: string) => call(env, env.step, { handle, action: 0, actionValues: [], completion });

describe('EnvService: text envs over gRPC', () => {
  it('lists CardRules as a text env with its completion limit and reward components', async () => {
    const { envs } = await call(env, env.listEnvs, {});
    const cards = envs.find((e) => e.id === 'CardRules');
    expect(cards).toMatchObject({ text: true, maxCompletionBytes: 4096, rewardComponents: ['correct', 'format'], numLevels: 1 });
    expect(cards?.observationSpace).toBeUndefined();
    expect(JSON.parse(cards?.optionsSchema ?? '{}').split.oneOf).toContain('ood_composition');
    // numeric envs leave the text fields unset
    expect(envs.find((e) => e.id === 'PatternEcho')?.text).toBeUndefined();
  });

  it('returns the prompt on Reset and the verifier reward on Step', async () => {
    const want = localProblem(17, { split: 'ood_values' });
    const r = await reset(17, { split: 'ood_values' });
    expect(r.prompt).toBe(want.prompt);
    expect(r.prompt).toMatch(/^Rule: .*\nCards:\n[\s\S]*\n\nAnswer:$/);
    expect(r.obs).toBeUndefined();
    const s: StepResponse = await step(r.handle, ` ${want.answer}`);
    expect(s).toMatchObject({
      reward: { components: { correct: 1, format: 1 } },
      terminated: true,
      truncated: false,
      success: true,
      prompt: '',
    });
    expect(s.parsedAnswer).toBe(want.answer);
    const ended = await failure(step(r.handle, ` ${want.answer}`));
    expect(ended.code).toBe(status.FAILED_PRECONDITION);
    expect(ended.details).toMatch(/^handle: .*episode ended; call Reset/);
    // the same handle resets to the next problem; a wrong answer scores 0
    const again = await call(env, env.reset, { envId: '', handle: r.handle, difficulty: 0, seed: 18 });
    const next = localProblem(18, { split: 'ood_values' });
    expect(again.prompt).toBe(next.prompt);
    const wrong = /^-?\d+$/.test(next.answer) ? String(Number(next.answer) + 1) : 'MAYBE';
    expect((await step(r.handle, ` ${wrong}\n`)).reward?.components).toEqual({ correct: 0, format: /^\d/.test(wrong) ? 1 : 0 });
    await call(env, env.closeEnv, { handle: r.handle });
  });

  describe('bad input', () => {
    let handle: string;
    beforeAll(async () => {
      handle = (await reset(5, { max_completion_bytes: 64 })).handle;
    });
    const cases: [string, () => Promise<unknown>, status, RegExp][] = [
      ['empty completion', () => step(handle, ''), status.INVALID_ARGUMENT, /^completion: must not be empty$/],
      [
        'oversize completion',
        () => step(handle, ` ${'9'.repeat(64)}`),
        status.INVALID_ARGUMENT,
        /^completion: must be at most 64 UTF-8 bytes, got 65$/,
      ],
      [
        'numeric action values',
        () => call(env, env.step, { handle, action: 0, actionValues: [1], completion: ' 1' }),
        status.INVALID_ARGUMENT,
        /^action_values: must be empty: CardRules is a text env; send completion$/,
      ],
      [
        'a completion for a numeric env',
        async () => {
          const r = await call(env, env.reset, { envId: 'PatternEcho', handle: '', difficulty: 0 });
          return call(env, env.step, { handle: r.handle, action: 0, actionValues: [], completion: ' 1' });
        },
        status.INVALID_ARGUMENT,
        /^completion: must be empty: PatternEcho takes numeric actions$/,
      ],
      [
        'VecReset of a text env',
        () => call(env, env.vecReset, { envId: 'CardRules', handle: '', numEnvs: 2, difficulty: 0 }),
        status.FAILED_PRECONDITION,
        /^env_id: CardRules is a text env; use Reset\/Step or Session$/,
      ],
      ['an unknown split', () => reset(1, { split: 'ood_moon' }), status.INVALID_ARGUMENT, /^options\.split: must be one of id, /],
      ['an oversize limit', () => reset(1, { max_completion_bytes: 0 }), status.INVALID_ARGUMENT, /^options\.max_completion_bytes: /],
    ];
    it.each(cases)('%s', async (_name, f, code, details) => {
      const err = await failure(f());
      expect(status[err.code]).toBe(status[code]);
      expect(err.details).toMatch(details);
    });

    it('invalid UTF-8 bytes in the completion', async () => {
      // A client that writes raw protobuf: handle (field 1) and completion (field 4) with bytes
      // 0xff 0xfe, which no UTF-8 text holds. The generated clients cannot send them.
      const h = Buffer.from(handle, 'utf8');
      const bad = Buffer.from([0x20, 0xff, 0xfe]);
      const raw = Buffer.concat([Buffer.from([0x0a, h.length]), h, Buffer.from([0x22, bad.length]), bad]);
      const identity = (b: Buffer) => b;
      const Raw = makeGenericClientConstructor(
        {
          step: {
            path: '/rlmesh.v1.EnvService/Step',
            requestStream: false,
            responseStream: false,
            requestSerialize: identity,
            requestDeserialize: identity,
            responseSerialize: identity,
            responseDeserialize: identity,
          },
        },
        'RawEnv',
      );
      const client = new Raw(addr, credentials.createInsecure()) as unknown as Client & { step: Unary<Buffer, Buffer> };
      try {
        const err = await failure(call(client, client.step, raw));
        expect(err.code).toBe(status.INVALID_ARGUMENT);
        expect(err.details).toMatch(/^completion: must be valid UTF-8/);
      } finally {
        client.close();
      }
    });

    it('keeps the episode and the service after every refusal', async () => {
      const s = await step(handle, ' 0');
      expect(s.terminated).toBe(true);
      expect(Object.keys(s.reward?.components ?? {}).sort()).toEqual(['correct', 'format']);
    });
  });

  it('runs a text Session: reset, a wrong answer, a right one (max_episode_steps 2)', async () => {
    const want = localProblem(9, { max_episode_steps: 2 });
    const stream = env.session();
    const got: SessionResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: SessionResponse) => got.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const msgs: SessionRequest[] = [
      { request: { $case: 'reset', reset: { envId: 'CardRules', handle: '', difficulty: 0, seed: 9, options: { max_episode_steps: 2 } } } },
      { request: { $case: 'step', step: { handle: '', action: 0, actionValues: [], completion: ' WRONG' } } },
      { request: { $case: 'step', step: { handle: '', action: 0, actionValues: [], completion: ` ${want.answer}` } } },
    ];
    for (const m of msgs) stream.write(m);
    stream.end();
    await done;
    const [r, s1, s2] = got.map((m) => m.response);
    if (r?.$case !== 'reset' || s1?.$case !== 'step' || s2?.$case !== 'step') throw new Error('expected reset, step, step');
    expect(r.reset.prompt).toBe(want.prompt);
    expect(s1.step).toMatchObject({ terminated: false, success: false, prompt: want.prompt, reward: { components: { correct: 0 } } });
    expect(s2.step).toMatchObject({ terminated: true, success: true, prompt: '', reward: { components: { correct: 1, format: 1 } } });
  });
});
