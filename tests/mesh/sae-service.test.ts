/**
 * SaeService's contract over real gRPC on loopback: `rlmesh serve sae` as its own process, trained
 * from an activation store under its root, then Get, List, Encode and Explain; bad requests (wrong
 * d_in, empty activations, NaN, an unknown SAE, a store outside the root) answered with their status
 * and field, and the process still serving afterwards. Health and reflection answer as for every
 * service.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { Rng } from '@rlmesh/core';
import { type NatsServer, startNatsServer } from '@rlmesh/mesh';
import {
  type EncodeRequest,
  type EncodeResponse,
  type ExplainRequest,
  type ExplainResponse,
  encodeTensor,
  type ListSaesRequest,
  type ListSaesResponse,
  type Sae,
  SaeServiceClient,
  type TrainSaeResponse,
} from '@rlmesh/proto';
import { plantedDictionary, sampleActivations, writeActivationStore } from '@rlmesh/sae';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnService } from '../../packages/cli/src/up';
import { missingParts, stopChild } from './helpers';

const missing = missingParts();
const D_IN = 16;

describe.skipIf(missing !== null)('SaeService over gRPC (rlmesh serve sae)', () => {
  let nats: NatsServer;
  let root: string;
  let child: ChildProcess;
  let client: SaeServiceClient;
  let raw: Client;
  let acts: Float32Array;

  beforeAll(async () => {
    nats = await startNatsServer();
    root = mkdtempSync(join(tmpdir(), 'rlmesh-sae-svc-'));
    const rng = new Rng(5);
    const sample = sampleActivations(plantedDictionary(rng, D_IN, 12, 1), rng, 2000, { p: 2 / 12 });
    acts = sample.data;
    const context = Array.from({ length: sample.rows }, (_, r) => ({ labels: { half: r < 1000 ? 'first' : 'second' } }));
    await writeActivationStore(join(root, 'stores', 'planted'), { ...sample, d: D_IN }, { hook: 'synthetic' }, context);
    const s = await spawnService('sae', ['sae', '--port', '0', '--nats', nats.url, '--sae-root', root], {
      ...process.env,
      RLMESH_LOG_LEVEL: 'error',
    });
    child = s.child;
    client = new SaeServiceClient(`127.0.0.1:${s.ready.port}`, credentials.createInsecure());
    raw = new Client(`127.0.0.1:${s.ready.port}`, credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    client?.close();
    raw?.close();
    if (child) await stopChild(child);
    await nats?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const call = <Req, Res>(method: (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req) =>
    new Promise<Res>((resolve, reject) => method.call(client, req, (err, res) => (err ? reject(err) : resolve(res))));
  const refused = async (p: Promise<unknown>, code: status, details: RegExp) => {
    const err = (await p.then(
      () => null,
      (e) => e,
    )) as ServiceError | null;
    expect(err, 'expected an error status').not.toBeNull();
    expect(err?.code).toBe(code);
    expect(err?.details).toMatch(details);
  };
  const train = (req: Parameters<SaeServiceClient['train']>[0]) =>
    new Promise<TrainSaeResponse[]>((resolve, reject) => {
      const out: TrainSaeResponse[] = [];
      const stream = client.train(req);
      stream.on('data', (m: TrainSaeResponse) => out.push(m));
      stream.on('error', reject);
      stream.on('end', () => resolve(out));
    });
  const rows = (n: number, data = acts.slice(0, n * D_IN)) => encodeTensor(data, [n, D_IN]);

  it('trains from a stored set with streamed progress, then gets, lists, encodes and explains', async () => {
    const messages = await train({
      activations: 'stores/planted',
      configJson: JSON.stringify({ architecture: 'topk', d_sae: 32, k: 3, lr: 3e-3 }),
      steps: 200,
      batchSize: 256,
      id: 'planted',
    });
    const last = messages.at(-1)?.event;
    expect(last?.$case).toBe('sae');
    const sae = (last as { sae: Sae }).sae;
    expect(messages.filter((m) => m.event?.$case === 'progress').at(-1)?.event).toMatchObject({ progress: { step: 200, steps: 200 } });
    expect(sae).toMatchObject({ id: 'planted', dIn: D_IN, dSae: 32, architecture: 'topk', hook: 'synthetic', analysed: true });
    expect(sae.metrics?.l0).toBeLessThanOrEqual(3);
    expect(sae.metrics?.explainedVariance).toBeGreaterThan(0.5);
    expect(sae.metrics?.density.reduce((a, b) => a + b.count, 0)).toBe(32);
    expect(sae.metrics?.density[0].lo).toBe(Number.NEGATIVE_INFINITY);
    expect(JSON.parse(sae.configJson)).toMatchObject({ architecture: 'topk', d_in: D_IN, d_sae: 32, k: 3 });
    expect(await call(client.getSae, { id: 'planted' })).toEqual(sae);
    expect((await call<ListSaesRequest, ListSaesResponse>(client.listSaes, {})).saes.map((s: Sae) => s.id)).toEqual(['planted']);

    const enc = await call<EncodeRequest, EncodeResponse>(client.encode, { saeId: 'planted', activations: rows(3), topK: 2 });
    expect(enc.rows).toHaveLength(3);
    for (const r of enc.rows) {
      expect(r.indices.length).toBeLessThanOrEqual(2);
      expect(r.values).toEqual([...r.values].sort((a, b) => b - a));
    }
    expect(enc.relativeError).toHaveLength(3);
    const ex = await call<ExplainRequest, ExplainResponse>(client.explain, { saeId: 'planted', activations: rows(1), topK: 2 });
    expect(ex.rows[0].features.length).toBeGreaterThan(0);
    for (const f of ex.rows[0].features) {
      expect(f.label).toMatch(/^half=(first|second)$/);
      expect(f.topExamples.length).toBeGreaterThan(0);
      expect(JSON.parse(f.topExamples[0].contextJson)).toHaveProperty('labels');
    }
  }, 120_000);

  it('answers bad requests with their status and field, and keeps serving', async () => {
    await refused(
      call(client.encode, { saeId: 'planted', activations: encodeTensor(new Float32Array(8), [1, 8]), topK: 2 }),
      status.INVALID_ARGUMENT,
      /^activations: d_in must be 16/,
    );
    await refused(
      call(client.encode, { saeId: 'planted', activations: encodeTensor(new Float32Array(0), [0, D_IN]), topK: 2 }),
      status.INVALID_ARGUMENT,
      /^activations: is empty/,
    );
    await refused(call(client.encode, { saeId: 'planted', topK: 2 }), status.INVALID_ARGUMENT, /^activations/);
    const nan = acts.slice(0, 2 * D_IN);
    nan[D_IN + 3] = Number.NaN;
    await refused(
      call(client.explain, { saeId: 'planted', activations: rows(2, nan), topK: 2 }),
      status.INVALID_ARGUMENT,
      /^activations: row 1 holds NaN at column 3/,
    );
    await refused(call(client.encode, { saeId: 'nope', activations: rows(1), topK: 2 }), status.NOT_FOUND, /^sae_id: no SAE "nope"/);
    await refused(call(client.getSae, { id: 'nope' }), status.NOT_FOUND, /^id: no SAE/);
    await refused(
      train({ activations: '', configJson: '{}', steps: 1, batchSize: 8, id: '' }),
      status.INVALID_ARGUMENT,
      /^activations: is required/,
    );
    await refused(
      train({ activations: '../..', configJson: '{}', steps: 1, batchSize: 8, id: '' }),
      status.INVALID_ARGUMENT,
      /^activations: .*outside the service root/,
    );
    await refused(
      train({ activations: 'stores/planted', configJson: '{"d_in": 8, "d_sae": 8}', steps: 1, batchSize: 8, id: '' }),
      status.INVALID_ARGUMENT,
      /^config_json\.d_in: must match the activations' width 16/,
    );
    await refused(
      train({ activations: 'stores/planted', configJson: '{}', steps: 1, batchSize: 8, id: 'planted' }),
      status.ALREADY_EXISTS,
      /^id: /,
    );
    expect(child.exitCode).toBeNull();
    expect(
      (await call<EncodeRequest, EncodeResponse>(client.encode, { saeId: 'planted', activations: rows(1), topK: 2 })).rows,
    ).toHaveLength(1);
  }, 60_000);

  it('answers health checks and serves its descriptors by reflection', async () => {
    const health = await new Promise<Buffer>((resolve, reject) =>
      raw.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        new Metadata(),
        {},
        (e, r) => (e ? reject(e) : resolve(r as Buffer)),
      ),
    );
    expect([...health]).toEqual([8, 1]); // status: SERVING
    // ServerReflectionRequest { file_containing_symbol (field 4): "rlmesh.v1.SaeService" }
    const symbol = Buffer.from('rlmesh.v1.SaeService');
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const stream = raw.makeBidiStreamRequest(
        '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      stream.on('data', (b: Buffer) => {
        resolve(b);
        stream.end();
      });
      stream.on('error', reject);
      stream.write(Buffer.concat([Buffer.of(0x22, symbol.length), symbol]));
    });
    expect(reply.toString('latin1')).toContain('rlmesh/v1/sae.proto');
  });
});
