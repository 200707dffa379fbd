import { Rng } from '@rlmesh/core';
import { initParameters, Trainer } from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';
import { reinforce } from '../src/algorithms/reinforce';
import { BabyModel } from '../src/models/baby';
import { parseRunConfig } from '../src/run/config';
import { buildModel, envShape } from '../src/run/learner-run';

describe('BabyModel', () => {
  it("has the source's 116,625 parameters under PyTorch's names for its module tree", () => {
    const m = new BabyModel();
    expect(m.parameterCount()).toBe(116_625);
    const names = m.namedParameters().map((p) => p.name);
    expect(names.slice(0, 4)).toEqual([
      'encoder.encoder.0.weight',
      'encoder.encoder.0.bias',
      'encoder.encoder.2.weight',
      'encoder.encoder.2.bias',
    ]);
    expect(names).toContain('transformer.transformer.layers.1.self_attn.in_proj_weight');
    expect(names).toContain('transformer.transformer.layers.0.norm2.bias');
    expect(names.slice(-11)).toEqual([
      'action_head.fc.weight',
      'action_head.fc.bias',
      'world_model.action_embed.weight',
      'world_model.predictor.0.weight',
      'world_model.predictor.0.bias',
      'world_model.predictor.2.weight',
      'world_model.predictor.2.bias',
      'value_head.fc.0.weight',
      'value_head.fc.0.bias',
      'value_head.fc.2.weight',
      'value_head.fc.2.bias',
    ]);
    const shapes = Object.fromEntries(m.namedParameters().map((p) => [p.name, p.shape]));
    expect(shapes['world_model.predictor.0.weight']).toEqual([64, 128]);
    expect(shapes['transformer.transformer.layers.0.self_attn.in_proj_weight']).toEqual([192, 64]);
  });
});

describe('REINFORCE train step', () => {
  for (const baseline of ['ema', 'value'] as const) {
    it(`lowers the loss on a fixed batch (${baseline} baseline)`, async () => {
      // PatternEcho with 8 symbols: obs 8, Discrete(8); the baby model at its defaults
      const cfg = parseRunConfig({
        env: { id: 'PatternEcho' },
        model: { id: 'baby' },
        algo: { name: 'reinforce', baseline, off_policy_correction: false },
      });
      const model = buildModel(cfg, envShape(cfg));
      expect(model.module.parameterCount()).toBe(116_625);
      const { name: _name, ...algoCfg } = cfg.algo;
      const program = reinforce.program(model, algoCfg as never, ['goal']);
      const trainer = await Trainer.create(program, initParameters(model.module, new Rng(0)));
      const rng = new Rng(1);
      const B = 64;
      const obs = new Float32Array(B * 8);
      const next = new Float32Array(B * 8);
      const actions = new BigInt64Array(B);
      const ret = new Float32Array(B);
      for (let i = 0; i < B; i++) {
        const target = rng.int(8);
        obs[i * 8 + target] = 1;
        next[i * 8 + rng.int(8)] = 1;
        const a = rng.int(8);
        actions[i] = BigInt(a);
        ret[i] = a === target ? 1 : 0;
      }
      const batch = {
        obs: { data: obs, shape: [B, 8] },
        actions: { data: actions, shape: [B] },
        next_obs: { data: next, shape: [B, 8] },
        'return.goal': { data: ret, shape: [B] },
        baseline: { data: Float32Array.of(0.1), shape: [] },
      };
      // the policy part of the loss depends on the baseline; world-model loss is a fixed-target MSE
      const first = await trainer.step(batch, 1e-3);
      let last = first;
      for (let i = 0; i < 30; i++) last = await trainer.step(batch, 1e-3);
      expect(last['loss/world_model']).toBeLessThan(first['loss/world_model']);
      expect(last.loss).toBeLessThan(first.loss);
      for (const k of [
        'loss/policy',
        'loss/world_model',
        'entropy',
        'baseline',
        'reward/goal',
        'reward/pred',
        'reward/total',
        'grad_norm',
      ]) {
        expect(Number.isFinite(last[k])).toBe(true);
      }
      if (baseline === 'value') expect(Number.isFinite(last['loss/value'])).toBe(true);
      // EMA: b' = 0.99 * 0.1 + 0.01 * mean(reward)
      if (baseline === 'ema') expect(first.baseline).toBeCloseTo(0.99 * 0.1 + 0.01 * first['reward/total'], 6);
    });
  }
});
