/**
 * Hostile input against the running mesh: every RPC of the env, policy and learner services gets
 * FUZZ_PER_RPC (default 1000) malformed requests (tests/mesh/fuzz-requests.ts) while a real run
 * trains. Wanted: no INTERNAL or UNKNOWN status, every call answered before its deadline, every
 * process alive with health SERVING afterwards, resident memory growth under RSS_BOUND_MB, and the
 * run still training.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { Rng } from '@rlmesh/core';
import { type NatsServer, startNatsServer } from '@rlmesh/mesh';
import {
  EvaluateRequest,
  EvaluateResponse,
  ResetRequest,
  ResetResponse,
  Run,
  StartRunRequest,
  VecResetRequest,
  VecResetResponse,
} from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnService } from '../../packages/cli/src/up';
import { ENV_RPCS, EVALUATE, EVALUATOR_RPCS, type Gen, type Known, LEARNER_RPCS, POLICY_RPCS, SESSION, WATCH_RUN } from './fuzz-requests';
import { missingParts, ROOT, stopChild } from './helpers';

const PER_RPC = Number(process.env.FUZZ_PER_RPC ?? 1000);
const DEADLINE_MS = 10_000;
const IN_FLIGHT = 8;
const RSS_BOUND_MB = 300;
const ALLOWED = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
  status.RESOURCE_EXHAUSTED,
  status.OUT_OF_RANGE,
]);
const missing = missingParts();
const identity = (b: Buffer) => b;

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

interface Outcome {
  code: status;
  details: string;
  ms: number;
}

function unary(client: Client, path: string, body: Buffer): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise((resolve) =>
    client.makeUnaryRequest(path, identity, identity, body, new Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err) =>
      resolve({ code: err ? (err as ServiceError).code : status.OK, details: err?.details ?? '', ms: Date.now() - t0 }),
    ),
  );
}

/** The first response or the status of a server stream, then cancel it. */
function serverStream(client: Client, path: string, body: Buffer): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(path, identity, identity, body, new Metadata(), { deadline: Date.now() + DEADLINE_MS });
    let done = false;
    const finish = (o: Outcome) => {
      if (!done) resolve(o);
      done = true;
    };
    call.on('data', () => {
      finish({ code: status.OK, details: '', ms: Date.now() - t0 });
      call.cancel();
    });
    call.on('error', (e: ServiceError) => finish({ code: e.code, details: e.details, ms: Date.now() - t0 }));
    call.on('end', () => finish({ code: status.OK, details: '', ms: Date.now() - t0 }));
  });
}

/** One message on a bidi stream: its response or the stream's status. */
function bidiOnce(client: Client, path: string, body: Buffer): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(path, identity, identity, new Metadata(), { deadline: Date.now() + DEADLINE_MS });
    let done = false;
    const finish = (o: Outcome) => {
      if (!done) resolve(o);
      done = true;
    };
    call.on('data', () => {
      finish({ code: status.OK, details: '', ms: Date.now() - t0 });
      call.end();
    });
    call.on('error', (e: ServiceError) => finish({ code: e.code, details: e.details, ms: Date.now() - t0 }));
    call.on('end', () => finish({ code: status.OK, details: '', ms: Date.now() - t0 }));
    call.write(body);
  });
}

async function hammer(label: string, gen: Gen, known: Known, seed: number, send: (body: Buffer) => Promise<Outcome>) {
  const rng = new Rng(seed);
  const bodies = Array.from({ length: PER_RPC }, () => gen(rng, known));
  const bad: string[] = [];
  const codes: Record<string, number> = {};
  const t0 = Date.now();
  let next = 0;
  let slowest = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < bodies.length) {
        const i = next++;
        const o = await send(bodies[i]);
        codes[status[o.code]] = (codes[status[o.code]] ?? 0) + 1;
        slowest = Math.max(slowest, o.ms);
        if (process.env.FUZZ_DEBUG === label && (o.code === status.OK || o.ms > 1000 || o.code === status.RESOURCE_EXHAUSTED))
          console.log(label, status[o.code], o.ms, 'ms', JSON.stringify(bodies[i].toString('latin1').slice(0, 600)), o.details);
        if (!ALLOWED.has(o.code)) bad.push(`${label} #${i} (seed ${seed}): ${status[o.code]} ${o.details.slice(0, 300)}`);
        if (o.details.length > 2048) bad.push(`${label} #${i}: status details of ${o.details.length} chars echo too much`);
      }
    }),
  );
  return { bad, codes: { ...codes, total_s: (Date.now() - t0) / 1000 }, slowest };
}

const SUITE = [
  'name: fuzz',
  'mode: greedy',
  'entries:',
  '  - { name: echo, env: { id: PatternEcho, options: { max_episode_steps: 1 } }, episodes: 4, seed: 7, split: ID }',
].join('\n');

/** Evaluates the run's latest version on SUITE and returns the stored evaluation's id. */
function evaluateOnce(client: Client, runId: string): Promise<string> {
  const body = Buffer.from(EvaluateRequest.encode(EvaluateRequest.fromPartial({ suite: SUITE, policy: { runId } })).finish());
  return new Promise((resolve, reject) => {
    const call = client.makeServerStreamRequest('/rlmesh.v1.EvaluatorService/Evaluate', identity, identity, body, new Metadata(), {
      deadline: Date.now() + 60_000,
    });
    let id = '';
    call.on('data', (b: Buffer) => {
      const m = EvaluateResponse.decode(b);
      if (m.event?.$case === 'result') id = m.event.result.id;
    });
    call.on('error', reject);
    call.on('end', () => (id ? resolve(id) : reject(new Error('Evaluate ended without a result'))));
  });
}

describe.skipIf(missing !== null)('fuzz: malformed requests to every RPC of every service', () => {
  let nats: NatsServer;
  let dir: string;
  const children: Record<string, ChildProcess> = {};
  const ports: Record<string, number> = {};
  const clients: Record<string, Client> = {};

  beforeAll(async () => {
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-fuzz-'));
    const env = { ...process.env, RLMESH_LOG_LEVEL: 'error' };
    const common = ['--port', '0', '--nats', nats.url];
    const l = await spawnService('learner', ['learner', ...common, '--out-dir', join(dir, 'runs')], env);
    const p = await spawnService('policy', ['policy', ...common, '--seed', '1'], env);
    const e = await spawnService('env', ['env', ...common, '--policy', `127.0.0.1:${p.ready.port}`, '--replica-id', 'env-0'], env);
    const v = await spawnService('evaluator', ['evaluator', ...common, '--checkpoint-root', join(dir, 'runs')], env);
    for (const [name, s] of Object.entries({ learner: l, policy: p, env: e, evaluator: v })) {
      children[name] = s.child;
      ports[name] = s.ready.port;
      clients[name] = new Client(`127.0.0.1:${s.ready.port}`, credentials.createInsecure(), {
        'grpc.max_send_message_length': 64 * 1024 * 1024,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      });
    }
  });

  afterAll(async () => {
    for (const c of Object.values(clients)) c.close();
    await Promise.all(Object.values(children).map((c) => stopChild(c)));
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`answers ${PER_RPC} malformed requests per RPC without INTERNAL, hangs, crashes or unbounded memory`, async () => {
    const validConfig = readFileSync(join(ROOT, 'configs', 'wmil-pattern-echo.yaml'), 'utf8');
    const runId = 'fuzz-run';
    const longRun = `${validConfig.replace(/total_env_steps: \d+/, 'total_env_steps: 100000000')}`;
    expect(longRun).not.toBe(validConfig);
    const started = await unary(
      clients.learner,
      '/rlmesh.v1.LearnerService/StartRun',
      Buffer.from(StartRunRequest.encode({ config: longRun, runId }).finish()),
    );
    expect(started.code, started.details).toBe(status.OK);
    const ok = async <T>(client: Client, path: string, body: Buffer, decode: (b: Buffer) => T) =>
      new Promise<T>((resolve, reject) =>
        client.makeUnaryRequest(path, identity, identity, body, new Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, res) =>
          err ? reject(err) : resolve(decode(res as Buffer)),
        ),
      );
    const reset = await ok(
      clients.env,
      '/rlmesh.v1.EnvService/Reset',
      Buffer.from(ResetRequest.encode(ResetRequest.fromPartial({ envId: 'PatternEcho' })).finish()),
      (b) => ResetResponse.decode(b),
    );
    const vec = await ok(
      clients.env,
      '/rlmesh.v1.EnvService/VecReset',
      Buffer.from(VecResetRequest.encode(VecResetRequest.fromPartial({ envId: 'PatternEcho', numEnvs: 2 })).finish()),
      (b) => VecResetResponse.decode(b),
    );
    const known: Known = {
      envIds: ['PatternEcho', 'SequenceNext', 'Conditional', 'CartPole-v1', 'Pendulum-v1'],
      runId,
      obsDim: Number(reset.obs?.shape[0] ?? 8),
      handles: [reset.handle, vec.handle],
      validConfig,
      validSuite: SUITE,
      evaluationIds: [],
    };
    // One real evaluation of the run's current version, so that lookups by id can succeed.
    known.evaluationIds.push(await evaluateOnce(clients.evaluator, runId));
    const rssBefore = Object.fromEntries(Object.entries(children).map(([n, c]) => [n, rssMb(c.pid!)]));
    const getRun = () =>
      ok(
        clients.learner,
        '/rlmesh.v1.LearnerService/GetRun',
        Buffer.from(runId.length ? [10, runId.length, ...Buffer.from(runId)] : []),
        (b) => Run.decode(b),
      );
    const updatesBefore = Number((await getRun()).updates);

    const report: Record<string, unknown> = {};
    const bad: string[] = [];
    let seed = 1;
    const run = async (label: string, r: Awaited<ReturnType<typeof hammer>>) => {
      report[label] = { ...r.codes, slowest_ms: r.slowest };
      bad.push(...r.bad);
    };
    for (const [name, gen] of Object.entries(ENV_RPCS))
      await run(
        `EnvService/${name}`,
        await hammer(name, gen, known, seed++, (b) => unary(clients.env, `/rlmesh.v1.EnvService/${name}`, b)),
      );
    await run(
      'EnvService/Session',
      await hammer('Session', SESSION, known, seed++, (b) => bidiOnce(clients.env, '/rlmesh.v1.EnvService/Session', b)),
    );
    for (const [name, gen] of Object.entries(POLICY_RPCS))
      await run(
        `PolicyService/${name}`,
        await hammer(name, gen, known, seed++, (b) => unary(clients.policy, `/rlmesh.v1.PolicyService/${name}`, b)),
      );
    for (const [name, gen] of Object.entries(LEARNER_RPCS))
      await run(
        `LearnerService/${name}`,
        await hammer(name, gen, known, seed++, (b) => unary(clients.learner, `/rlmesh.v1.LearnerService/${name}`, b)),
      );
    await run(
      'EvaluatorService/Evaluate',
      await hammer('Evaluate', EVALUATE, known, seed++, (b) => serverStream(clients.evaluator, '/rlmesh.v1.EvaluatorService/Evaluate', b)),
    );
    for (const [name, gen] of Object.entries(EVALUATOR_RPCS))
      await run(
        `EvaluatorService/${name}`,
        await hammer(name, gen, known, seed++, (b) => unary(clients.evaluator, `/rlmesh.v1.EvaluatorService/${name}`, b)),
      );
    await run(
      'LearnerService/WatchRun',
      await hammer('WatchRun', WATCH_RUN, known, seed++, (b) => serverStream(clients.learner, '/rlmesh.v1.LearnerService/WatchRun', b)),
    );
    console.log(`fuzz outcomes (${PER_RPC} per RPC):\n${JSON.stringify(report, null, 1)}`);

    const rssAfter = Object.fromEntries(Object.entries(children).map(([n, c]) => [n, rssMb(c.pid!)]));
    console.log('RSS MB before/after', rssBefore, rssAfter);
    expect(bad.slice(0, 20)).toEqual([]);
    for (const [name, child] of Object.entries(children)) {
      expect(child.exitCode, `${name} exited`).toBeNull();
      const health = await ok(clients[name], '/grpc.health.v1.Health/Check', Buffer.alloc(0), (b) => b);
      expect([...health], `${name} health`).toEqual([8, 1]);
      expect(rssAfter[name] - rssBefore[name], `${name} RSS growth (MB)`).toBeLessThan(RSS_BOUND_MB);
    }
    // The real run kept training through all of it.
    const after = await getRun();
    expect(Number(after.updates)).toBeGreaterThan(updatesBefore);
  }, 600_000);
});
