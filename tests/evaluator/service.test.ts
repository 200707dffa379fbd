/**
 * EvaluatorCore without a network: policies published on a MemoryBus and a checkpoint file, whose
 * success rates are known in advance (fixture.ts), evaluated, stored, listed and compared; bad
 * requests are MeshErrors naming the field.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { createLogger, MemoryBus, MeshError } from '@rlmesh/mesh';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluationToProto } from '../../services/evaluator/src/grpc';
import { type EvaluationProgress, EvaluatorCore } from '../../services/evaluator/src/service';
import { BusEvaluationStore } from '../../services/evaluator/src/store';
import { echoModel, echoSuite, half, identity, SYMBOLS, shift } from './fixture';

async function failure(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MeshError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a MeshError');
}

describe('EvaluatorCore', () => {
  const bus = new MemoryBus();
  const core = new EvaluatorCore({ store: new BusEvaluationStore(bus), bus, logger: createLogger('evaluator', 'error') });
  const echo = echoModel();
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-eval-core-'));
  beforeAll(async () => {
    await echo.publish(bus, 'echo-run', 1, shift());
    await echo.publish(bus, 'echo-run', 2, half());
    await echo.publish(bus, 'echo-run', 3, identity());
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('evaluates published versions by number and latest: success rates as constructed, progress to the total, stored', async () => {
    const progress: EvaluationProgress[] = [];
    const wrong = await core.evaluate({
      suite: echoSuite(),
      policy: { run_id: 'echo-run', version: 1 },
      onProgress: (p) => progress.push(p),
    });
    const mixed = await core.evaluate({ suite: echoSuite(), policy: { run_id: 'echo-run', version: 2 } });
    const right = await core.evaluate({ suite: echoSuite(), policy: { run_id: 'echo-run' } });
    expect(wrong.environments[0].success_rate).toBe(0);
    expect(right.environments[0].success_rate).toBe(1);
    expect(right.policy).toMatchObject({ run_id: 'echo-run', version: 3 });
    // Half the symbols right: the rate is near 1/2 on 40 seeded episodes, and exactly reproducible.
    expect(mixed.environments[0].success_rate).toBeGreaterThan(0.2);
    expect(mixed.environments[0].success_rate).toBeLessThan(0.8);
    const again = await core.evaluate({ suite: echoSuite(), policy: { run_id: 'echo-run', version: 2 } });
    expect(again.environments[0].successes).toBe(mixed.environments[0].successes);
    expect(progress.at(-1)).toMatchObject({ entry: 'echo', episodes_done: 40, episodes_total: 40 });
    expect(progress.map((p) => p.episodes_done)).toEqual([...progress.map((p) => p.episodes_done)].sort((a, b) => a - b));
    expect(await core.get(right.id)).toEqual(right);
    expect((await core.list({ run_id: 'echo-run' })).map((s) => s.id)).toEqual([wrong.id, mixed.id, right.id, again.id]);

    const c = await core.compare([wrong.id, mixed.id, right.id]);
    expect(c.dominance).toEqual([
      [false, false, false],
      [true, false, false],
      [true, true, false],
    ]);
    expect(c.frontier).toEqual([right.id]);
  });

  it('evaluates a model.safetensors file as the same policy', async () => {
    const path = join(dir, 'model.safetensors');
    await echo.save(path, identity());
    const r = await core.evaluate({ suite: echoSuite(), policy: { checkpoint: path, label: 'from file' } });
    expect(r.environments[0].success_rate).toBe(1);
    expect(r.policy).toMatchObject({ checkpoint: path, label: 'from file' });
  });

  it('refuses bad requests with the field named', async () => {
    const cases: [() => Promise<unknown>, number, RegExp][] = [
      [
        () => core.evaluate({ suite: echoSuite({ env: 'NoSuchEnv' }), policy: { run_id: 'echo-run' } }),
        status.INVALID_ARGUMENT,
        /^suite\.entries\[0\]\.env\.id: /,
      ],
      [
        () => core.evaluate({ suite: echoSuite({ episodes: 0 }), policy: { run_id: 'echo-run' } }),
        status.INVALID_ARGUMENT,
        /^suite\.entries\[0\]\.episodes: /,
      ],
      [
        () => core.evaluate({ suite: 'name: [unclosed', policy: { run_id: 'echo-run' } }),
        status.INVALID_ARGUMENT,
        /^suite: is not valid YAML/,
      ],
      [() => core.evaluate({ suite: '', policy: { run_id: 'echo-run' } }), status.INVALID_ARGUMENT, /^suite: is required/],
      [
        () => core.evaluate({ suite: echoSuite({ symbols: SYMBOLS * 2 }), policy: { run_id: 'echo-run' } }),
        status.INVALID_ARGUMENT,
        /^policy\.run_id: the policy observes 4 values, suite entry "echo" \(PatternEcho\) gives 8/,
      ],
      [() => core.evaluate({ suite: echoSuite(), policy: { run_id: 'nobody' } }), status.NOT_FOUND, /^policy\.run_id: no policy published/],
      [() => core.evaluate({ suite: echoSuite(), policy: { run_id: 'echo-run', version: 9 } }), status.NOT_FOUND, /^policy\.version: /],
      [
        () => core.evaluate({ suite: echoSuite(), policy: { run_id: 'echo-run', channel: 'promoted' } }),
        status.NOT_FOUND,
        /^policy\.channel: /,
      ],
      [() => core.evaluate({ suite: echoSuite(), policy: { run_id: 'bad id!' } }), status.INVALID_ARGUMENT, /^policy\.run_id: must match/],
      [() => core.evaluate({ suite: echoSuite(), policy: {} }), status.INVALID_ARGUMENT, /^policy: name a run/],
      [
        () => core.evaluate({ suite: echoSuite(), policy: { checkpoint: join(dir, 'absent.safetensors') } }),
        status.NOT_FOUND,
        /^policy\.checkpoint: no file/,
      ],
      [() => core.get('ev-none'), status.NOT_FOUND, /^id: no evaluation/],
      [() => core.compare(['ev-none']), status.INVALID_ARGUMENT, /^ids: name at least two/],
    ];
    for (const [p, code, message] of cases) {
      const f = await failure(p());
      expect({ code: f.code, message: f.message }).toEqual({ code, message: expect.stringMatching(message) });
    }
  });

  it('refuses a checkpoint of another model for the suite, naming policy.checkpoint', async () => {
    const path = join(dir, 'model-8.safetensors');
    await echoModel(8).save(path, identity(8));
    const f = await failure(core.evaluate({ suite: echoSuite(), policy: { checkpoint: path } }));
    expect(f.code).toBe(status.INVALID_ARGUMENT);
    expect(f.message).toMatch(/^policy\.checkpoint: the policy cannot act in suite entry "echo" \(PatternEcho\)/);
  });
});

describe('evaluationToProto', () => {
  it('carries every field of the result (snake_case keys as camelCase, options as JSON, aggregate as all + by_split)', async () => {
    const bus = new MemoryBus();
    const core = new EvaluatorCore({ store: new BusEvaluationStore(bus), bus, logger: createLogger('evaluator', 'error') });
    await echoModel().publish(bus, 'echo-run', 1, half());
    const r = await core.evaluate({ suite: echoSuite(), policy: { run_id: 'echo-run', label: 'half' } });
    const pb = evaluationToProto(r) as unknown as Record<string, unknown>;
    const camel = (k: string) => k.replace(/_(.)/g, (_, c: string) => c.toUpperCase());
    const renamed: Record<string, string> = { options: 'optionsJson' };
    for (const k of Object.keys(r)) if (k !== 'aggregate') expect(pb, k).toHaveProperty(camel(k));
    const env = (pb.environments as Record<string, unknown>[])[0];
    for (const k of Object.keys(r.environments[0])) expect(env, k).toHaveProperty(renamed[k] ?? camel(k));
    expect(JSON.parse(env.optionsJson as string)).toEqual(r.environments[0].options);
    expect(pb.all).toEqual({
      successRate: r.aggregate.all.success_rate,
      returnMean: r.aggregate.all.return_mean,
      weight: r.aggregate.all.weight,
    });
    expect(Object.keys(pb.bySplit as object)).toEqual(Object.keys(r.aggregate.by_split));
    expect(pb.policy).toEqual({ runId: 'echo-run', version: 1, checkpoint: '', label: 'half' });
  });
});
