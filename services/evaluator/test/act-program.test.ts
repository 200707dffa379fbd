/**
 * mesh's ActProgram, and the local-inference actor (services/env LocalPolicy) that now runs on it:
 * both must give what a plain forward pass plus core's seeded sampling gives, so an actor running a
 * policy locally, the evaluator and the policy service agree action for action.
 */
import { actRng, Rng, sampleActions } from '@rlmesh/core';
import { LocalPolicy } from '@rlmesh/env';
import { initParameters, Session } from '@rlmesh/graph';
import { buildActProgram, buildModel, envShape, parseRunConfig } from '@rlmesh/learner';
import { ActProgram, MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { describe, expect, it } from 'vitest';

function policyOf(env: string, model: Record<string, unknown>) {
  const cfg = parseRunConfig({ env: { id: env }, model });
  const shape = envShape(cfg);
  const m = buildModel(cfg, shape);
  const act = buildActProgram(m);
  const params = act.layout.pack(initParameters(m.module, new Rng(7)));
  const rows = 5;
  const obs = Float32Array.from({ length: rows * m.obsDim }, (_, i) => Math.sin(i * 0.37));
  return { cfg, shape, model: m, act, params, rows, obs };
}

/** What every inference path computes: one forward pass, then core's sampler with actRng(seed). */
async function reference(p: ReturnType<typeof policyOf>, greedy: boolean, seed: number) {
  const session = await Session.create(p.act.onnx);
  const out = await session.run({
    params: { data: p.params, shape: [p.params.length] },
    obs: { data: p.obs, shape: [p.rows, p.model.obsDim] },
  });
  await session.release();
  const outputs = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  return { outputs, ...sampleActions(p.shape.distribution, outputs, 0, p.rows, greedy, actRng(seed)) };
}

const CASES: [string, string, Record<string, unknown>][] = [
  ['categorical', 'CartPole-v1', { id: 'mlp_actor_critic', hidden_dim: 16 }],
  ['gaussian', 'Pendulum-v1', { id: 'mlp_actor_critic', hidden_dim: 16 }],
];

describe('ActProgram', () => {
  it.each(CASES)('%s: outputs and sampled / greedy actions equal a plain forward pass plus core sampling', async (_kind, env, model) => {
    const p = policyOf(env, model);
    const program = await ActProgram.create(p.act.onnx, p.shape.distribution);
    const outputs = await program.outputs(p.params, p.obs, p.rows);
    for (const greedy of [false, true]) {
      const ref = await reference(p, greedy, 99);
      expect(outputs).toEqual(ref.outputs);
      const got = await program.act(p.params, p.obs, p.rows, { greedy, seed: 99 });
      expect(Array.from(got.actions)).toEqual(Array.from(ref.actions));
      expect(Array.from(got.logProbs)).toEqual(Array.from(ref.logProbs));
      expect(Array.from(got.values ?? [])).toEqual(Array.from(ref.outputs.value));
    }
    // Another seed draws other actions (5 rows: a collision of every row is vanishingly unlikely).
    const a = await program.act(p.params, p.obs, p.rows, { greedy: false, seed: 1 });
    const b = await program.act(p.params, p.obs, p.rows, { greedy: false, seed: 2 });
    expect(Array.from(a.logProbs)).not.toEqual(Array.from(b.logProbs));
    await program.release();
  });

  it('refuses a program without the outputs its distribution needs, and bad row counts', async () => {
    const p = policyOf('CartPole-v1', { id: 'mlp_actor_critic', hidden_dim: 16 });
    await expect(ActProgram.create(p.act.onnx, { kind: 'gaussian', dim: 1 })).rejects.toThrow(/lacks output mean, output log_std/);
    const program = await ActProgram.create(p.act.onnx, p.shape.distribution);
    await expect(program.outputs(p.params, p.obs, 3)).rejects.toThrow(/not a multiple of 3 rows/);
    await program.release();
  });
});

/** The PolicySpec a learner would publish for `p`. */
const specOf = (p: ReturnType<typeof policyOf>) => ({
  observationSpace: spaceToProto(p.shape.observationSpace),
  actionSpace: spaceToProto(p.shape.actionSpace),
  model: p.model.name,
  numParameters: p.params.length,
});

describe('LocalPolicy on ActProgram', () => {
  it('acts on the published version as a forward pass plus core sampling does', async () => {
    const p = policyOf('CartPole-v1', { id: 'mlp_actor_critic', hidden_dim: 16 });
    const bus = new MemoryBus();
    const spec = specOf(p);
    await publishPolicy(bus, 'r1', { version: 1, params: p.params, program: p.act.onnx, spec, distribution: 'categorical' });
    const local = new LocalPolicy(bus, 'r1');
    const out = await local.act(p.obs, p.rows, 42, 1);
    const ref = await reference(p, false, 42);
    expect(out.version).toBe(1);
    expect(Array.from(out.actions)).toEqual(Array.from(ref.actions));
    expect(Array.from(out.logProbs)).toEqual(Array.from(ref.logProbs));
    expect(Array.from(out.values ?? [])).toEqual(Array.from(ref.outputs.value));
    // A new version moves it to the new parameters.
    const next = p.params.map((x) => x * 0.5);
    await publishPolicy(bus, 'r1', { version: 2, params: next, spec, distribution: 'categorical' });
    await local.refresh();
    const out2 = await local.act(p.obs, p.rows, 42, 2);
    const ref2 = await reference({ ...p, params: next }, false, 42);
    expect(out2.version).toBe(2);
    expect(Array.from(out2.values ?? [])).toEqual(Array.from(ref2.outputs.value));
    expect(Array.from(out2.values ?? [])).not.toEqual(Array.from(out.values ?? []));
    await local.close();
  });

  it("runs the run's sampling program when the pointer names one: the same actions and log-probs, no values", async () => {
    const p = policyOf('CartPole-v1', { id: 'mlp_actor_critic', hidden_dim: 16 });
    const sample = buildActProgram(p.model, { value: false, usedParametersOnly: false });
    expect(sample.layout.total).toBe(p.params.length);
    const bus = new MemoryBus();
    const spec = specOf(p);
    const first = await publishPolicy(bus, 'r1', {
      version: 1,
      params: p.params,
      program: p.act.onnx,
      sampleProgram: sample.onnx,
      spec,
      distribution: 'categorical',
    });
    expect(first.sampleProgram).toBe('r1/policy-sample.onnx');
    const later = await publishPolicy(bus, 'r1', {
      version: 2,
      params: p.params,
      sampleProgram: 'stored',
      spec,
      distribution: 'categorical',
    });
    expect(later.sampleProgram).toBe('r1/policy-sample.onnx');
    const local = new LocalPolicy(bus, 'r1');
    const out = await local.act(p.obs, p.rows, 42, 2);
    const ref = await reference(p, false, 42);
    expect(Array.from(out.actions)).toEqual(Array.from(ref.actions));
    expect(Array.from(out.logProbs)).toEqual(Array.from(ref.logProbs));
    expect(out.values).toBeUndefined();
    await local.close();
    // The sampling program has no value output, so it is not an act program.
    await expect(ActProgram.create(sample.onnx, p.shape.distribution)).rejects.toThrow(/lacks output value/);
  });
});
