/**
 * LoRA on the tiny Llama with the seed's settings but rank 1 (alpha / r = 2, dropout 0.05, the seven
 * projections q/k/v/o/gate/up/down): the train step trains under 5% of the parameters, its Adam
 * state covers only the adapters, the base goes in unchanged as the frozen input, the loss falls;
 * the merged weights serve the adapted model's logits; the adapters save under PEFT's names.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyLora,
  buildTrainProgram,
  crossEntropy,
  Graph,
  gradients,
  initParameters,
  isLoraParam,
  type LoraConfig,
  loadSafetensors,
  mergeLora,
  Rng,
  Session,
  savePeftAdapter,
  Trainer,
  type Value,
} from '@rlmesh/graph';
import { describe, expect, it } from 'vitest';
import { buildLogitsProgram } from '../src/models/causal-lm';
import { type LlamaConfig, LlamaForCausalLM } from '../src/models/llama';
import { randomLlamaParams, TINY_LLAMA } from './tiny-llama';

const CFG: LlamaConfig = { ...TINY_LLAMA, vocab_size: 64, intermediate_size: 128, attention_bias: false };
const LORA: LoraConfig = {
  r: 1,
  alpha: 2,
  dropout: 0.05,
  targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};

function batch(B: number, T: number, seed: number) {
  const rng = new Rng(seed);
  // A learnable pattern: each token is the previous one plus 3 (mod vocab).
  const ids = new BigInt64Array(B * T);
  const labels = new BigInt64Array(B * T);
  for (let b = 0; b < B; b++) {
    let t0 = Math.floor(rng.uniform() * CFG.vocab_size);
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = BigInt(t0);
      t0 = (t0 + 3) % CFG.vocab_size;
      labels[b * T + t] = BigInt(t0);
    }
  }
  return { input_ids: { data: ids, shape: [B, T] }, labels: { data: labels, shape: [B, T] } };
}

describe('llama + LoRA', () => {
  it('a train step with the base frozen trains < 5% of the parameters, and its Adam state only the adapters', async () => {
    const model = new LlamaForCausalLM(CFG);
    const baseCount = model.parameterCount();
    const adapted = applyLora(model, LORA);
    expect(adapted).toHaveLength(14);
    expect(adapted[0]).toBe('model.layers.0.self_attn.q_proj');
    const program = buildTrainProgram({
      module: model,
      batch: [
        { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
        { name: 'labels', dtype: 'int64', shape: ['batch', 'sequence'] },
      ],
      optimizer: { kind: 'adamw', weightDecay: 0 },
      frozen: (n) => !isLoraParam(n),
      loss: (b) => ({ loss: crossEntropy(model.forward({ ids: b.input_ids }).logits, b.labels) }),
    });
    const trainable = program.layout.total;
    expect(program.frozenLayout?.total).toBe(baseCount);
    expect(trainable / (trainable + baseCount)).toBeLessThan(0.05);
    expect(program.layout.entries.every((e) => isLoraParam(e.name))).toBe(true);

    const init = initParameters(model, new Rng(2));
    const trainer = await Trainer.create(program, init);
    const state = trainer.snapshot().state;
    expect(Object.keys(state).sort()).toEqual(['exp_avg', 'exp_avg_sq']);
    for (const v of Object.values(state)) expect(v.length).toBe(trainable);
    const feeds = batch(8, 12, 1);
    const first = await trainer.step(feeds, 1e-2);
    let last = first;
    for (let i = 0; i < 25; i++) last = await trainer.step(feeds, 1e-2);
    expect(last.loss).toBeLessThan(first.loss - 0.1);
    await trainer.release();
  });

  it("merged weights W + (alpha/r) B A give the adapted model's logits; the adapters save under PEFT's names", async () => {
    const adaptedModel = new LlamaForCausalLM(CFG);
    const base = randomLlamaParams(new LlamaForCausalLM(CFG), 4);
    const adapted = applyLora(adaptedModel, { ...LORA, dropout: 0 });
    const params = new Map(base);
    const rng = new Rng(5);
    for (const p of adaptedModel.namedParameters())
      if (isLoraParam(p.name))
        params.set(
          p.name,
          Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => 0.3 * rng.normal()),
        );
    const merged = mergeLora(params, LORA, adapted);
    expect([...merged.keys()]).toEqual([...base.keys()]);
    const ids = BigInt64Array.from([5, 9, 2, 33, 17, 60, 1, 8], BigInt);
    const logits = async (m: LlamaForCausalLM, ps: Map<string, Float32Array>) => {
      const s = await Session.create(buildLogitsProgram(m, ps), { intraOpThreads: 1 });
      const out = await s.run({
        input_ids: { data: ids, shape: [1, 8] },
        attention_mask: { data: new BigInt64Array(8).fill(1n), shape: [1, 8] },
      });
      await s.release();
      return out.logits.data as Float32Array;
    };
    const a = await logits(adaptedModel, params);
    const b = await logits(new LlamaForCausalLM(CFG), merged);
    const c = await logits(new LlamaForCausalLM(CFG), base);
    let diff = 0;
    let moved = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - b[i]));
      moved = Math.max(moved, Math.abs(a[i] - c[i]));
    }
    expect(diff).toBeLessThan(1e-4);
    expect(moved).toBeGreaterThan(0.1);

    const dir = mkdtempSync(join(tmpdir(), 'rlmesh-llama-lora-'));
    try {
      await savePeftAdapter(dir, LORA, 'rlmesh/tiny-llama', params);
      const { tensors } = await loadSafetensors(join(dir, 'adapter_model.safetensors'));
      expect(Object.keys(tensors)).toHaveLength(28);
      expect(tensors['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'].shape).toEqual([1, 32]);
      expect(tensors['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight'].shape).toEqual([32, 1]);
      expect(tensors['base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'].shape).toEqual([16, 1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gradients of every adapter of the whole model match float64 central differences (base frozen)', async () => {
    const cfg: LlamaConfig = { ...TINY_LLAMA, vocab_size: 13, hidden_size: 16, intermediate_size: 12, head_dim: 4, num_hidden_layers: 1 };
    const model = new LlamaForCausalLM(cfg);
    applyLora(model, { ...LORA, r: 2, targetModules: [...(LORA.targetModules as string[]), 'lm_head'] });
    const specs = model.namedParameters();
    const g = new Graph('lora_fd');
    const inputs = specs.map((p, i) => g.input(`p${i}`, 'float64', p.shape));
    const byName = new Map(specs.map((p, i) => [p.name, inputs[i]]));
    model.train(false).bind({ dtype: 'float64', get: (n) => byName.get(n) as Value });
    const i64 = (xs: number[]) => g.constant({ dtype: 'int64', shape: [2, 4], data: BigInt64Array.from(xs, BigInt) });
    const out = model.forward({ ids: i64([4, 2, 9, 9, 7, 3, 11, 5]), attentionMask: i64([0, 1, 1, 1, 1, 1, 1, 1]) });
    const loss = crossEntropy(out.logits, i64([2, 9, 9, 1, 3, 11, 5, 6]));
    const adapters = specs.map((p, i) => [p, i] as const).filter(([p]) => isLoraParam(p.name));
    const grads = gradients(
      loss,
      adapters.map(([, i]) => inputs[i]),
    );
    g.output('loss', loss);
    for (const [k, d] of grads.entries()) g.output(`d${k}`, d);
    const session = await Session.create(g.toOnnx(), { intraOpThreads: 1 });
    const rng = new Rng(9);
    const data = specs.map((p) => {
      const gain = /norm\.weight$/.test(p.name) ? 1 : 0;
      return Float64Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => gain + 0.4 * rng.normal());
    });
    const feeds = () => Object.fromEntries(data.map((d, i) => [`p${i}`, { data: d, shape: specs[i].shape }]));
    const analytic = await session.run(feeds());
    const lossAt = async () => (await session.run(feeds(), ['loss'])).loss.data[0] as number;
    let worst = { name: '', error: 0 };
    for (const [k, [p, i]] of adapters.entries()) {
      const d = data[i];
      const grad = analytic[`d${k}`].data as Float64Array;
      for (const j of [0, d.length - 1]) {
        const orig = d[j];
        d[j] = orig + 1e-6;
        const up = await lossAt();
        d[j] = orig - 1e-6;
        const down = await lossAt();
        d[j] = orig;
        const error = Math.abs(grad[j] - (up - down) / 2e-6) / (1 + Math.abs((up - down) / 2e-6));
        if (error > worst.error) worst = { name: `${p.name}[${j}]`, error };
      }
    }
    await session.release();
    expect(adapters).toHaveLength(16);
    expect(worst.error, worst.name).toBeLessThan(1e-6);
  });
});
