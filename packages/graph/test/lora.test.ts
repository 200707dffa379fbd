/**
 * LoRA: the adapted Linear's forward against y = x W^T + b + (alpha/r) x A^T B^T computed here in
 * plain loops, its gradients (input, base weight and bias, A, B) against float64 central
 * differences, PEFT's initialisation, a train step that trains only the adapters, the merge, and
 * PEFT's directory layout.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as G from '../src';
import { finiteDifference } from './fd';

const CFG: G.LoraConfig = { r: 2, alpha: 6, dropout: 0, targetModules: ['q', 'v'] };

/** Two Linears named like attention projections, q adapted and k not. */
class Block extends G.Module {
  readonly q: G.Linear;
  readonly k: G.Linear;
  readonly v: G.Linear;
  constructor() {
    super();
    this.q = this.child('q', new G.Linear(5, 4));
    this.k = this.child('k', new G.Linear(5, 4));
    this.v = this.child('v', new G.Linear(5, 3, false));
  }
  forward(x: G.Value): G.Value {
    return G.concat([this.q.forward(x), this.k.forward(x), this.v.forward(x)], -1);
  }
}

function values(n: number, seed: number, scale = 1): Float32Array {
  const rng = new G.Rng(seed);
  return Float32Array.from({ length: n }, () => scale * (rng.uniform() * 2 - 1));
}

describe('lora: the adapter', () => {
  it('attaches PEFT-named adapters to the targets only, A kaiming-uniform, B zero', () => {
    const m = new Block();
    expect(G.applyLora(m, CFG)).toEqual(['q', 'v']);
    expect(m.namedParameters().map((p) => `${p.name}:${p.shape}`)).toEqual([
      'q.weight:4,5',
      'q.bias:4',
      'q.lora_A.weight:2,5',
      'q.lora_B.weight:4,2',
      'k.weight:4,5',
      'k.bias:4',
      'v.weight:3,5',
      'v.lora_A.weight:2,5',
      'v.lora_B.weight:3,2',
    ]);
    const init = G.initParameters(m, new G.Rng(1));
    const a = init.get('q.lora_A.weight') as Float32Array;
    // kaiming_uniform_(a=sqrt(5)) on [r, in] is U(-1/sqrt(in), 1/sqrt(in)).
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(5));
    expect(new Set(a).size).toBe(a.length);
    expect([...(init.get('q.lora_B.weight') as Float32Array)].every((v) => v === 0)).toBe(true);
    expect(() => G.applyLora(m, CFG)).toThrow(/q already has an adapter/);
    expect(() => G.applyLora(new Block(), { ...CFG, targetModules: ['o_proj'] })).toThrow(
      /matches no Linear layer; this model's are named q, k, v/,
    );
    expect(() => G.applyLora(new Block(), { ...CFG, r: 0 })).toThrow(/lora\.r: must be an integer >= 1/);
    expect(G.applyLora(new Block(), { ...CFG, targetModules: '[qk]' })).toEqual(['q', 'k']);
  });

  it('computes x W^T + b + (alpha/r) x A^T B^T, and the merged weights W + (alpha/r) B A give the same output', async () => {
    const m = new Block();
    G.applyLora(m, CFG);
    const params = new Map(
      m.namedParameters().map((p, i) => [
        p.name,
        values(
          p.shape.reduce((x, y) => x * y, 1),
          10 + i,
        ),
      ]),
    );
    const x = values(3 * 5, 99);
    const run = async (module: G.Module, ps: Map<string, Float32Array>) => {
      const s = await G.Session.create(
        G.buildInferenceProgram({
          module,
          params: ps,
          inputs: [{ name: 'x', dtype: 'float32', shape: [3, 5] }],
          forward: (i) => ({ y: (module as Block).forward(i.x) }),
        }),
      );
      const out = (await s.run({ x: { data: x, shape: [3, 5] } })).y.data as Float32Array;
      await s.release();
      return out;
    };
    const got = await run(m, params);
    const p = (n: string) => params.get(n) as Float32Array;
    const scale = CFG.alpha / CFG.r;
    const want = (row: number, w: Float32Array, b: Float32Array | null, A: Float32Array | null, B: Float32Array | null, out: number) =>
      Array.from({ length: out }, (_, o) => {
        let y = b ? b[o] : 0;
        for (let i = 0; i < 5; i++) y += x[row * 5 + i] * w[o * 5 + i];
        if (A && B)
          for (let k = 0; k < CFG.r; k++) {
            let ax = 0;
            for (let i = 0; i < 5; i++) ax += A[k * 5 + i] * x[row * 5 + i];
            y += scale * B[o * CFG.r + k] * ax;
          }
        return y;
      });
    for (let row = 0; row < 3; row++) {
      const expected = [
        ...want(row, p('q.weight'), p('q.bias'), p('q.lora_A.weight'), p('q.lora_B.weight'), 4),
        ...want(row, p('k.weight'), p('k.bias'), null, null, 4),
        ...want(row, p('v.weight'), null, p('v.lora_A.weight'), p('v.lora_B.weight'), 3),
      ];
      for (let j = 0; j < 11; j++) expect(Math.abs(got[row * 11 + j] - expected[j])).toBeLessThan(1e-5);
    }
    const merged = G.mergeLora(params, CFG, ['q', 'v']);
    expect([...merged.keys()]).toEqual(['q.weight', 'q.bias', 'k.weight', 'k.bias', 'v.weight']);
    const w = merged.get('v.weight') as Float32Array;
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 5; i++) {
        const ba = p('v.lora_B.weight')[o * 2] * p('v.lora_A.weight')[i] + p('v.lora_B.weight')[o * 2 + 1] * p('v.lora_A.weight')[5 + i];
        expect(w[o * 5 + i]).toBeCloseTo(p('v.weight')[o * 5 + i] + scale * ba, 6);
      }
    const plain = await run(new Block(), merged);
    for (let j = 0; j < got.length; j++) expect(Math.abs(plain[j] - got[j])).toBeLessThan(1e-5);
  });

  it('gradients of input, base weight, bias, A and B match float64 central differences', async () => {
    const m = new Block();
    G.applyLora(m, { ...CFG, targetModules: ['q'] });
    const specs = m.namedParameters();
    const r = await finiteDifference(
      (_g, xs) => {
        const byName = new Map(specs.map((p, i) => [p.name, xs[1 + i]]));
        m.bind({ dtype: 'float64', get: (n) => byName.get(n) as G.Value });
        return m.q.forward(xs[0]);
      },
      [{ shape: [3, 5] }, ...specs.map((p) => ({ shape: p.shape }))],
    );
    expect(r.maxError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
  });
});

describe('lora: a train step with the base frozen', () => {
  it('trains only the adapters: params and Adam state are the adapters, the base is the frozen input', async () => {
    const m = new Block();
    G.applyLora(m, CFG);
    const program = G.buildTrainProgram({
      module: m,
      batch: [
        { name: 'x', dtype: 'float32', shape: ['batch', 5] },
        { name: 'y', dtype: 'float32', shape: ['batch', 11] },
      ],
      optimizer: { kind: 'adam' },
      frozen: (n) => !G.isLoraParam(n),
      loss: (b) => ({ loss: G.mseLoss(m.forward(b.x), b.y) }),
    });
    expect(program.layout.entries.map((e) => e.name)).toEqual(['q.lora_A.weight', 'q.lora_B.weight', 'v.lora_A.weight', 'v.lora_B.weight']);
    expect(program.frozenLayout?.entries.map((e) => e.name)).toEqual(['q.weight', 'q.bias', 'k.weight', 'k.bias', 'v.weight']);
    const init = G.initParameters(m, new G.Rng(3));
    const trainer = await G.Trainer.create(program, init);
    const x = values(8 * 5, 4);
    const y = values(8 * 11, 5);
    const first = await trainer.step({ x: { data: x, shape: [8, 5] }, y: { data: y, shape: [8, 11] } }, 0.05);
    let last = first;
    for (let i = 0; i < 30; i++) last = await trainer.step({ x: { data: x, shape: [8, 5] }, y: { data: y, shape: [8, 11] } }, 0.05);
    expect(last.loss).toBeLessThan(first.loss);
    expect(trainer.flatParams.length).toBe(2 * 5 + 4 * 2 + 2 * 5 + 3 * 2);
    const state = trainer.snapshot().state;
    expect(Object.values(state).map((v) => v.length)).toEqual([34, 34]);
    expect([...(trainer.parameters().get('q.lora_B.weight') as Float32Array)].some((v) => v !== 0)).toBe(true);
    await trainer.release();
  });
});

describe('lora: PEFT directories', () => {
  const root = mkdtempSync(join(tmpdir(), 'rlmesh-lora-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("writes PEFT's adapter_config.json and tensor names, and reads them back", async () => {
    const m = new Block();
    G.applyLora(m, CFG);
    const params = new Map(
      m.namedParameters().map((p, i) => [
        p.name,
        values(
          p.shape.reduce((x, y) => x * y, 1),
          i,
        ),
      ]),
    );
    await G.savePeftAdapter(root, CFG, 'org/base-model', params);
    const json = JSON.parse(readFileSync(join(root, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({
      r: 2,
      lora_alpha: 6,
      lora_dropout: 0,
      target_modules: ['q', 'v'],
      base_model_name_or_path: 'org/base-model',
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      bias: 'none',
      use_rslora: false,
    });
    const { tensors } = await G.loadSafetensors(join(root, 'adapter_model.safetensors'));
    expect(
      Object.entries(tensors)
        .map(([n, t]) => `${n}:${t.shape}`)
        .sort(),
    ).toEqual([
      'base_model.model.q.lora_A.weight:2,5',
      'base_model.model.q.lora_B.weight:4,2',
      'base_model.model.v.lora_A.weight:2,5',
      'base_model.model.v.lora_B.weight:3,2',
    ]);
    const back = await G.loadPeftAdapter(root);
    expect(back.config).toEqual(CFG);
    expect(back.baseModel).toBe('org/base-model');
    expect([...back.params.keys()].sort()).toEqual(['q.lora_A.weight', 'q.lora_B.weight', 'v.lora_A.weight', 'v.lora_B.weight']);
    expect([...(back.params.get('v.lora_B.weight') as Float32Array)]).toEqual([...(params.get('v.lora_B.weight') as Float32Array)]);

    writeFileSync(join(root, 'adapter_config.json'), JSON.stringify({ ...json, use_rslora: true }));
    await expect(G.loadPeftAdapter(root)).rejects.toThrow(/adapter_config\.json: use_rslora: only false is supported/);
    writeFileSync(join(root, 'adapter_config.json'), JSON.stringify({ ...json, lora_alpha: -1 }));
    await expect(G.loadPeftAdapter(root)).rejects.toThrow(/adapter_config\.json: lora_alpha: must be a number > 0/);
    writeFileSync(join(root, 'adapter_config.json'), JSON.stringify({ ...json, r: 3 }));
    await expect(G.loadPeftAdapter(root)).rejects.toThrow(/lora_A\.weight has shape \[2,5\], r = 3 implies \[3, in\]/);
  });
});
