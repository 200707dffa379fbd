/**
 * Bad input to the Affine envs over real gRPC on loopback, as a policy's actor sends it: an unknown
 * env or option is refused naming the field; a completion longer than the env accepts, or empty, is
 * INVALID_ARGUMENT naming `completion` while the episode carries on; a malformed tool call in a
 * world (`craft[`, `pickup(`, `click[`) is an in-episode observation with the `invalid` penalty, the
 * same one the in-process env gives; a malformed answer to a reasoning task (a half assignment, a
 * broken program, one that loops) scores 0. None of them ends the service.
 */
import { credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { makeTextEnv } from '@rlmesh/core';
import { createLogger } from '@rlmesh/mesh';
import { EnvServiceClient, type ResetResponse, type StepResponse } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvServiceCore, startEnvServer } from '../src';

let server: Awaited<ReturnType<typeof startEnvServer>>;
let env: EnvServiceClient;

beforeAll(async () => {
  server = await startEnvServer({ port: 0, logger: createLogger('env-affine-test', 'error'), core: new EnvServiceCore() });
  env = new EnvServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
});

afterAll(async () => {
  env?.close();
  await server?.shutdown({ graceMs: 2000 });
});

const reset = (envId: string, seed: number, options?: Record<string, unknown>) =>
  new Promise<ResetResponse>((resolve, reject) =>
    env.reset({ envId, handle: '', difficulty: 0, seed, options }, new Metadata(), { deadline: Date.now() + 20_000 }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
const step = (handle: string, completion: string) =>
  new Promise<StepResponse>((resolve, reject) =>
    env.step({ handle, action: 0, actionValues: [], completion }, new Metadata(), { deadline: Date.now() + 20_000 }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: ServiceError) => e,
  );
  if (!err) throw new Error('expected the call to fail');
  return err;
}

describe('Affine envs over gRPC: bad input', () => {
  it('refuses an unknown env, an unknown option and a bad option value, naming the field', async () => {
    const unknown = await failure(reset('AffineSATT', 1));
    expect(status[unknown.code]).toBe(status[status.INVALID_ARGUMENT]);
    expect(unknown.details).toMatch(/^env_id: unknown env "AffineSATT"/);
    expect(unknown.details).toContain('AffineSAT');
    const option = await failure(reset('GridGoals', 1, { max_steps: 5 }));
    expect(status[option.code]).toBe(status[status.INVALID_ARGUMENT]);
    expect(option.details).toMatch(/^options\.max_steps: unknown key/);
    const value = await failure(reset('AffineSAT', 1, { k_min: 7 }));
    expect(status[value.code]).toBe(status[status.INVALID_ARGUMENT]);
    expect(value.details).toMatch(/^options\.k_min: /);
  });

  it.each(['AffineSAT', 'AffineABD', 'AffineDED', 'TextCraft', 'GridGoals', 'ShopSearch'])(
    '%s: a completion longer than max_completion_bytes, or empty, is INVALID_ARGUMENT and the episode carries on',
    async (id) => {
      const { handle, prompt } = await reset(id, 4, { max_completion_bytes: 32 });
      expect(prompt).toBe(makeTextEnv(id, {}).reset(4));
      const long = await failure(step(handle, ` ${'x'.repeat(40)}`));
      expect(status[long.code]).toBe(status[status.INVALID_ARGUMENT]);
      expect(long.details).toBe('completion: must be at most 32 UTF-8 bytes, got 41');
      const empty = await failure(step(handle, ''));
      expect(status[empty.code]).toBe(status[status.INVALID_ARGUMENT]);
      expect(empty.details).toBe('completion: must not be empty');
      // The refused steps left the episode where it was: the next completion is its first action.
      const s = await step(handle, ' inventory');
      expect(s.reward?.components).toBeDefined();
    },
    30_000,
  );

  it.each([
    ['TextCraft', ' craft['],
    ['TextCraft', ' fly[home]'],
    ['TextCraft', ' get[99999 oak log]'],
    ['GridGoals', ' pickup('],
    ['GridGoals', ' jump'],
    ['ShopSearch', ' click['],
    ['ShopSearch', ' search[]'],
  ])('%s: the malformed tool call %j is an Invalid action observation, the same as in process', async (id, action) => {
    const local = makeTextEnv(id, {});
    local.reset(3);
    const want = local.step(action);
    const { handle } = await reset(id, 3);
    const s = await step(handle, action);
    // The reply is the conversation so far, which ends with the world's observation.
    expect(s.prompt).toBe(want.prompt);
    expect(want.observation).toMatch(/^\nObservation: Invalid action: /);
    expect(s.prompt?.endsWith(want.observation ?? '?')).toBe(true);
    expect(s).toMatchObject({ terminated: false, truncated: false, success: false, reward: { components: { goal: 0 } } });
    // Reward components travel as float32.
    expect(s.reward?.components?.invalid).toBeCloseTo(-0.05, 6);
    // The episode goes on from the same state.
    expect((await step(handle, action)).prompt).toBe(local.step(action).prompt);
  });

  it.each([
    ['AffineSAT', ' x1='],
    ['AffineABD', ' [1,'],
    ['AffineDED', ' ```javascript\nfunction f( {\n```'],
    ['AffineDED', ' ```javascript\nfunction f() { for (;;) {} }\n```'],
  ])(
    '%s: the malformed answer %j scores 0 and ends the episode',
    async (id, answer) => {
      const { handle } = await reset(id, 3, { max_episode_steps: 1 });
      const s = await step(handle, answer);
      expect(s).toMatchObject({ terminated: true, success: false });
      expect(s.reward?.components?.correct).toBe(0);
    },
    30_000,
  );

  it('is still up after all of it', async () => {
    const { prompt } = await reset('AffineSAT', 5);
    expect(prompt).toMatch(/Answer:$/);
  });
});
