/**
 * The EvaluatorService contract over real gRPC: a private nats-server and `rlmesh serve evaluator`
 * as a child process; the test publishes policies on the bus as the learner does (fixture.ts), then
 * calls Evaluate (progress messages, then the stored result), GetEvaluation, ListEvaluations and
 * Compare, and sends bad requests that must come back as INVALID_ARGUMENT or NOT_FOUND naming the
 * field, after which the service still answers health checks.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, credentials, loadPackageDefinition, makeGenericClientConstructor, type ServiceError, status } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { type Bus, NatsBus, type NatsServer, startNatsServer } from '@rlmesh/mesh';
import {
  type CompareRequest,
  type CompareResponse,
  type EvaluateRequest,
  type EvaluateResponse,
  type Evaluation,
  EvaluatorServiceClient,
  type ListEvaluationsResponse,
  PolicyChannel,
} from '@rlmesh/proto';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnService } from '../../packages/cli/src/up';
import { CARDS_SUITE, tinyGpt2Dir } from '../../services/evaluator/test/gpt2-fixture';
import { missingParts, stopChild } from '../mesh/helpers';
import { echoModel, echoSuite, half, identity, SYMBOLS, shift } from './fixture';

const missing = missingParts();

describe.skipIf(missing !== null)('EvaluatorService over gRPC (rlmesh serve evaluator)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let child: ChildProcess;
  let client: EvaluatorServiceClient;
  let addr: string;
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-eval-grpc-'));
  const echo = echoModel();

  beforeAll(async () => {
    nats = await startNatsServer();
    bus = await NatsBus.connect({ servers: nats.url });
    await echo.publish(bus, 'echo-run', 1, shift());
    await echo.publish(bus, 'echo-run', 2, half());
    await echo.publish(bus, 'echo-run', 3, identity());
    const s = await spawnService('evaluator', ['evaluator', '--port', '0', '--nats', nats.url, '--checkpoint-root', dir], {
      ...process.env,
      RLMESH_LOG_LEVEL: 'warn',
    });
    child = s.child;
    addr = `127.0.0.1:${s.ready.port}`;
    client = new EvaluatorServiceClient(addr, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    if (child) await stopChild(child);
    await bus?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every message of an Evaluate stream, or the status it failed with. */
  const evaluate = (req: Partial<EvaluateRequest>) =>
    new Promise<{ messages: EvaluateResponse[]; error?: ServiceError }>((resolve) => {
      const messages: EvaluateResponse[] = [];
      const stream = client.evaluate({ suite: '', ...req });
      stream.on('data', (m: EvaluateResponse) => messages.push(m));
      stream.on('error', (error: ServiceError) => resolve({ messages, error }));
      stream.on('end', () => resolve({ messages }));
    });
  const run = (version: number, label = '') => ({
    runId: 'echo-run',
    version,
    channel: PolicyChannel.POLICY_CHANNEL_UNSPECIFIED,
    checkpoint: '',
    label,
  });
  const resultOf = async (req: Partial<EvaluateRequest>): Promise<Evaluation> => {
    const { messages, error } = await evaluate(req);
    if (error) throw error;
    const last = messages.at(-1)?.event;
    if (last?.$case !== 'result') throw new Error('the stream did not end with a result');
    return last.result;
  };
  const unary = <Q, R>(method: (req: Q, cb: (e: ServiceError | null, r: R) => void) => void, req: Q) =>
    new Promise<R>((resolve, reject) => method.call(client, req, (e, r) => (e ? reject(e) : resolve(r))));
  const failure = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return { code: (e as ServiceError).code, details: (e as ServiceError).details };
    }
    throw new Error('expected the call to fail');
  };

  let ids: string[] = [];

  it('answers grpc.health.v1 for the service', async () => {
    const Health = makeGenericClientConstructor(healthService, 'grpc.health.v1.Health');
    const health = new Health(addr, credentials.createInsecure()) as unknown as Client & {
      check(req: { service: string }, cb: (e: ServiceError | null, r: { status: string }) => void): void;
    };
    try {
      const check = (service: string) =>
        new Promise<string>((res, rej) => health.check({ service }, (e, r) => (e ? rej(e) : res(r.status))));
      expect(await check('')).toBe('SERVING');
      expect(await check('rlmesh.v1.EvaluatorService')).toBe('SERVING');
    } finally {
      health.close();
    }
  });

  it('answers reflection for the service (what grpcurl and clients in other languages use)', async () => {
    const protoPath = join(require.resolve('@grpc/reflection/package.json'), '..', 'build/proto/grpc/reflection/v1/reflection.proto');
    const pkg = loadPackageDefinition(loadSync(protoPath, { keepCase: true, oneofs: true })) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (a: string, c: ReturnType<typeof credentials.createInsecure>) => Client } } };
    };
    const reflection = new pkg.grpc.reflection.v1.ServerReflection(addr, credentials.createInsecure()) as Client & {
      ServerReflectionInfo(): NodeJS.ReadWriteStream;
    };
    type Answer = {
      list_services_response?: { service: { name: string }[] };
      file_descriptor_response?: { file_descriptor_proto: Buffer[] };
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
      expect((listed.list_services_response?.service ?? []).map((s) => s.name)).toContain('rlmesh.v1.EvaluatorService');
      const files = await ask({ file_containing_symbol: 'rlmesh.v1.EvaluatorService' });
      const text = (files.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => b.toString('latin1')).join('');
      expect(text).toContain('EvaluateRequest');
      expect(text).toContain('PolicyChannel');
    } finally {
      reflection.close();
    }
  });

  it('Evaluate streams progress up to every episode, then the stored result with the constructed success rates', async () => {
    const { messages, error } = await evaluate({ suite: echoSuite(), policy: run(3, 'right') });
    expect(error).toBeUndefined();
    const progress = messages.flatMap((m) => (m.event?.$case === 'progress' ? [m.event.progress] : []));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ entry: 'echo', episodesDone: 40, episodesTotal: 40, entryEpisodesTotal: 40 });
    expect(messages.slice(0, -1).every((m) => m.event?.$case === 'progress')).toBe(true);
    const last = messages.at(-1)?.event;
    expect(last?.$case).toBe('result');
    const right = (last as { result: Evaluation }).result;
    expect(right.policy).toEqual({ runId: 'echo-run', version: 3, checkpoint: '', label: 'right' });
    expect(right.environments[0]).toMatchObject({
      name: 'echo',
      envId: 'PatternEcho',
      episodes: 40,
      successes: 40,
      successRate: 1,
      split: 'ID',
    });
    expect(JSON.parse(right.environments[0].optionsJson)).toMatchObject({ num_symbols: SYMBOLS });
    expect(right.environments[0].interval?.method).toBe('jeffreys');
    expect(right.environments[0].seeds).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));
    expect(right.all?.successRate).toBe(1);
    expect(right.bySplit.ID?.successRate).toBe(1);

    const wrong = await resultOf({ suite: echoSuite(), policy: run(1, 'wrong') });
    const mixed = await resultOf({ suite: echoSuite(), policy: run(2, 'half') });
    expect(wrong.all?.successRate).toBe(0);
    expect(mixed.all?.successRate).toBeGreaterThan(0.2);
    expect(mixed.all?.successRate).toBeLessThan(0.8);
    ids = [wrong.id, mixed.id, right.id];

    expect(await unary(client.getEvaluation, { id: right.id })).toEqual(right);
  });

  it('ListEvaluations filters by run and suite, oldest first; Compare gives dominance and the frontier', async () => {
    const listed = await unary<{ runId: string; suite: string }, ListEvaluationsResponse>(client.listEvaluations, {
      runId: 'echo-run',
      suite: '',
    });
    expect(listed.evaluations.map((e) => e.id)).toEqual([ids[2], ids[0], ids[1]]);
    expect(listed.evaluations[0]).toMatchObject({ suite: 'echo-suite', mode: 'greedy', episodes: 40, all: { successRate: 1 } });
    expect(
      (await unary<{ runId: string; suite: string }, ListEvaluationsResponse>(client.listEvaluations, { runId: '', suite: 'other' }))
        .evaluations,
    ).toEqual([]);

    const c = await unary<CompareRequest, CompareResponse>(client.compare, { ids, minEpisodes: 0, epsilon: 0, epsilonSe: false });
    expect(c.ids).toEqual(ids);
    expect(c.dominance.map((r) => r.dominates)).toEqual([
      [false, false, false],
      [true, false, false],
      [true, true, false],
    ]);
    expect(c.frontier).toEqual([ids[2]]);
    const se = await unary<CompareRequest, CompareResponse>(client.compare, { ids, minEpisodes: 0, epsilon: 0, epsilonSe: true });
    expect(se.frontier).toEqual([ids[2]]);
  });

  it('Evaluate runs a GPT-2 directory on a text suite and refuses a policy of the wrong kind either way', async () => {
    await tinyGpt2Dir(join(dir, 'tiny', 'checkpoints', 'step_0'));
    const echoFile = join(dir, 'model-echo.safetensors');
    await echoModel().save(echoFile, identity());
    const checkpoint = (path: string) => ({
      runId: '',
      version: 0,
      channel: PolicyChannel.POLICY_CHANNEL_UNSPECIFIED,
      checkpoint: path,
      label: '',
    });
    const ok = await evaluate({ suite: CARDS_SUITE, policy: checkpoint('tiny/checkpoints/step_0') });
    expect(ok.error).toBeUndefined();
    const last = ok.messages.at(-1)?.event;
    if (last?.$case !== 'result') throw new Error(`the stream ended with ${last?.$case}`);
    const r = last.result;
    expect(r.policy).toMatchObject({ checkpoint: join(dir, 'tiny', 'checkpoints', 'step_0'), label: 'tiny step_0' });
    expect(r.environments.map((e) => [e.name, e.envId, e.episodes, Object.keys(e.components).sort()])).toEqual([
      ['id', 'CardRules', 8, ['correct', 'format']],
      ['values', 'CardRules', 6, ['correct', 'format']],
    ]);
    expect(r.environments[0].successRate).toBe(r.environments[0].components.correct);
    for (const [req, details] of [
      [
        { suite: CARDS_SUITE, policy: checkpoint('model-echo.safetensors') },
        /^policy\.checkpoint: suite entry "id" \(CardRules\) is a text env: it needs a language model/,
      ],
      [
        { suite: echoSuite(), policy: checkpoint('tiny/checkpoints/step_0') },
        /^policy\.checkpoint: suite entry "echo" \(PatternEcho\) takes actions: a language model/,
      ],
      [{ suite: CARDS_SUITE, policy: checkpoint('tiny') }, /^policy\.checkpoint: cannot be loaded as a policy: .*tiny: no config\.json/],
    ] as [Partial<EvaluateRequest>, RegExp][]) {
      const { messages, error } = await evaluate(req);
      expect({ code: error?.code, details: error?.details, messages: messages.length }).toEqual({
        code: status.INVALID_ARGUMENT,
        details: expect.stringMatching(details),
        messages: 0,
      });
    }
  });

  it('refuses bad input with INVALID_ARGUMENT or NOT_FOUND naming the field, and keeps serving', async () => {
    const badModel = join(dir, 'model-8.safetensors');
    await echoModel(8).save(badModel, identity(8));
    const checkpoint = (path: string) => ({
      runId: '',
      version: 0,
      channel: PolicyChannel.POLICY_CHANNEL_UNSPECIFIED,
      checkpoint: path,
      label: '',
    });
    const streamCases: [Partial<EvaluateRequest>, status, RegExp][] = [
      [{ suite: echoSuite({ env: 'NoSuchEnv' }), policy: run(3) }, status.INVALID_ARGUMENT, /^suite\.entries\[0\]\.env\.id: /],
      [
        { suite: echoSuite({ episodes: 0 }), policy: run(3) },
        status.INVALID_ARGUMENT,
        /^suite\.entries\[0\]\.episodes: must be an integer >= 1/,
      ],
      [
        { suite: echoSuite(), policy: checkpoint(badModel) },
        status.INVALID_ARGUMENT,
        /^policy\.checkpoint: the policy cannot act in suite entry "echo"/,
      ],
      [{ suite: echoSuite({ symbols: 8 }), policy: run(3) }, status.INVALID_ARGUMENT, /^policy\.run_id: the policy observes 4 values/],
      [{ suite: echoSuite(), policy: checkpoint(join(dir, 'absent.safetensors')) }, status.NOT_FOUND, /^policy\.checkpoint: no file/],
      // The service reads checkpoints only from under its checkpoint root, whatever the path says.
      [
        { suite: echoSuite(), policy: checkpoint(join(dir, '..', '..', '..', 'etc', 'hostname')) },
        status.INVALID_ARGUMENT,
        /^policy\.checkpoint: must name a file or directory under the evaluator's checkpoint root/,
      ],
      [
        { suite: echoSuite(), policy: checkpoint('model-8.safetensors') },
        status.INVALID_ARGUMENT,
        /^policy\.checkpoint: the policy cannot act/,
      ],
      [
        { suite: echoSuite(), policy: { ...run(0), runId: 'nobody' } },
        status.NOT_FOUND,
        /^policy\.run_id: no policy published for run "nobody"/,
      ],
      [{ suite: echoSuite(), policy: run(77) }, status.NOT_FOUND, /^policy\.version: /],
      [
        { suite: echoSuite(), policy: { ...run(0), channel: PolicyChannel.POLICY_CHANNEL_PROMOTED } },
        status.NOT_FOUND,
        /^policy\.channel: /,
      ],
      [{ suite: echoSuite(), policy: { ...run(0), channel: 9 as PolicyChannel } }, status.INVALID_ARGUMENT, /^policy\.channel: /],
      [{ suite: echoSuite() }, status.INVALID_ARGUMENT, /^policy: is required/],
      [{ suite: 'entries: [', policy: run(3) }, status.INVALID_ARGUMENT, /^suite: is not valid YAML/],
    ];
    for (const [req, code, details] of streamCases) {
      const { messages, error } = await evaluate(req);
      expect({ code: error?.code, details: error?.details, messages: messages.length }).toEqual({
        code,
        details: expect.stringMatching(details),
        messages: 0,
      });
    }
    expect(await failure(unary(client.getEvaluation, { id: 'ev-none' }))).toEqual({
      code: status.NOT_FOUND,
      details: 'id: no evaluation "ev-none"',
    });
    expect(await failure(unary(client.compare, { ids: [ids[0], 'ev-none'], minEpisodes: 0, epsilon: 0, epsilonSe: false }))).toEqual({
      code: status.NOT_FOUND,
      details: 'ids[1]: no evaluation "ev-none"',
    });
    expect((await failure(unary(client.compare, { ids, minEpisodes: 0, epsilon: 0.1, epsilonSe: true }))).code).toBe(
      status.INVALID_ARGUMENT,
    );
    // Nothing above took the service down.
    expect((await unary<{ id: string }, Evaluation>(client.getEvaluation, { id: ids[0] })).id).toBe(ids[0]);
    expect(child.exitCode).toBeNull();
  });
});
