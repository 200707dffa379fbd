/**
 * The learner's activation sampler: what it publishes is the capture program's hook output on the
 * sampled observations, one batch per hook, tagged with the version and level, and the sample is
 * reproducible per version.
 */
import { Box, Discrete, Rng } from '@rlmesh/core';
import { initParameters, ParamLayout, Session } from '@rlmesh/graph';
import { type BusMessage, decodeActivationBatch, MemoryBus, subjects } from '@rlmesh/mesh';
import { describe, expect, it } from 'vitest';
import { buildCaptureProgram } from '../src/capture';
import { ActivationSampler, captureHooks } from '../src/mesh/activation-sampler';
import { type ModelContext, modelSpec } from '../src/registry';
import '../src/models';

const model = modelSpec('baby').build({ hidden_dim: 16, num_layers: 2, num_heads: 4, ff_dim: 32, dropout: 0 }, {
  observationSpace: new Box(-5, 5, [6]),
  actionSpace: new Discrete(5),
  distribution: { kind: 'categorical', n: 5 },
} as unknown as ModelContext);
const HOOKS = ['blocks.0.hook_resid_post', 'blocks.1.attn.hook_z'];

async function drain(bus: MemoryBus, hook: string, n: number): Promise<BusMessage[]> {
  const got: BusMessage[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const sub = await bus.consume({ subject: subjects.activations('run1', hook), durable: `t-${hook}` }, async (m) => {
    got.push(m);
    m.ack();
    if (got.length === n) done();
  });
  await all;
  await sub.stop();
  return got;
}

describe('ActivationSampler', () => {
  it('publishes the capture program output on a seeded sample of the observations', async () => {
    const bus = new MemoryBus();
    const params = new ParamLayout(model.module).pack(initParameters(model.module, new Rng(1)));
    const rng = new Rng(2);
    const rows = 40;
    const obs = Float32Array.from({ length: rows * 6 }, () => rng.uniformRange(-2, 2));
    const sampler = await ActivationSampler.open(bus, 'run1', model, HOOKS, 12, 7);
    expect(await sampler.capture(params, 3, 1, obs, rows)).toBe(12);
    expect(await sampler.capture(params, 3, 1, obs, rows)).toBe(12);
    await sampler.release();

    // The reference: the capture program on every observation; each published row must be one of them.
    const program = buildCaptureProgram(model, HOOKS);
    const session = await Session.create(program.onnx, { intraOpThreads: 1 });
    const all = await session.run({ params: { data: params, shape: [params.length] }, obs: { data: obs, shape: [rows, 6] } });
    await session.release();
    for (const hook of HOOKS) {
      const [a, b] = (await drain(bus, hook, 2)).map((m) => decodeActivationBatch(m.data, m.headers));
      // hidden_dim 16; hook_z's [batch, heads, d_head] flattens to 4 x 4 = 16 as well.
      const width = 16;
      expect(a).toMatchObject({ run: 'run1', hook, version: 3, level: 1, rows: 12, d: width });
      // The same version samples the same observations.
      expect(b.data).toEqual(a.data);
      const ref = all[hook].data as Float32Array;
      const picked = new Set<number>();
      for (let r = 0; r < a.rows; r++) {
        const row = a.data.subarray(r * width, (r + 1) * width);
        const match = Array.from({ length: rows }, (_, i) => i).find((i) =>
          ref.subarray(i * width, (i + 1) * width).every((v, j) => Math.abs(v - row[j]) < 1e-5),
        );
        expect(match, `${hook} row ${r}`).toBeDefined();
        picked.add(match as number);
      }
      expect(picked.size).toBe(12);
    }
  });

  it('refuses hooks the model lacks, naming the key', async () => {
    await expect(ActivationSampler.open(new MemoryBus(), 'run1', model, ['blocks.7.hook_resid_post'], 8, 0)).rejects.toThrow(
      /^mesh\.capture_hooks: .*blocks\.7\.hook_resid_post/,
    );
    await expect(ActivationSampler.open(new MemoryBus(), 'run1', model, ['a b'], 8, 0)).rejects.toThrow(/"a b" is not a hook name/);
    expect(captureHooks(' hook_embed, ,blocks.1.hook_resid_post ')).toEqual(['hook_embed', 'blocks.1.hook_resid_post']);
  });
});
