import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  buildForwardProgram,
  buildInferenceProgram,
  buildTrainProgram,
  crossEntropy,
  Dropout,
  type Forward,
  Graph,
  initParameters,
  MLP,
  Module,
  ParamLayout,
  Rng,
  Session,
  Trainer,
} from '../src';

describe('exported programs', () => {
  it('the inference ONNX, loaded by a fresh InferenceSession, gives the trained model outputs', async () => {
    const model = new MLP([3, 16, 4], 'gelu');
    const program = buildTrainProgram({
      module: model,
      batch: [
        { name: 'x', dtype: 'float32', shape: ['batch', 3] },
        { name: 'y', dtype: 'int64', shape: ['batch'] },
      ],
      optimizer: { kind: 'adam' },
      loss: (b) => ({ loss: crossEntropy(model.forward(b.x), b.y) }),
    });
    const trainer = await Trainer.fromModule(program, model, 4);
    const rng = new Rng(4);
    for (let i = 0; i < 20; i++) {
      await trainer.step(
        {
          x: { data: Float32Array.from({ length: 24 }, () => rng.normal()), shape: [8, 3] },
          y: { data: BigInt64Array.from({ length: 8 }, () => BigInt(rng.int(4))), shape: [8] },
        },
        1e-2,
      );
    }
    const inputs = [{ name: 'x', dtype: 'float32' as const, shape: ['batch', 3] }];
    const probe = Float32Array.from({ length: 15 }, () => rng.normal());
    const onnx = buildInferenceProgram({
      module: model,
      params: trainer.parameters(),
      inputs,
      forward: (i) => ({ logits: model.forward(i.x) }),
    });
    const fresh = await ort.InferenceSession.create(onnx);
    expect(fresh.inputNames).toEqual(['x']);
    const exported = (await fresh.run({ x: new ort.Tensor('float32', probe, [5, 3]) })).logits.data as Float32Array;
    const fwd = buildForwardProgram({ module: model, inputs, forward: (i) => ({ logits: model.forward(i.x) }) });
    const live = await (await Session.create(fwd.onnx)).run({
      params: { data: trainer.flatParams as Float32Array, shape: [fwd.layout.total] },
      x: { data: probe, shape: [5, 3] },
    });
    expect(Array.from(exported)).toEqual(Array.from(live.logits.data as Float32Array));
  });

  it('a forward program over the parameters its outputs use: smaller params, same outputs', async () => {
    // Three heads on one input; `b` is registered between `a` and `c`, so a and c alone are not contiguous.
    class Heads extends Module {
      readonly a = this.child('a', new MLP([3, 8, 2], 'tanh'));
      readonly b = this.child('b', new MLP([3, 8, 1], 'tanh'));
      readonly c = this.child('c', new MLP([3, 4, 2], 'tanh'));
    }
    const model = new Heads();
    const flat = new ParamLayout(model).pack(initParameters(model, new Rng(9)));
    const inputs = [{ name: 'x', dtype: 'float32' as const, shape: ['batch', 3] }];
    const x = { data: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), shape: [4, 3] };
    const run = async (forward: Forward, usedParametersOnly: boolean) => {
      const p = buildForwardProgram({ module: model, inputs, forward, usedParametersOnly });
      const s = await Session.create(p.onnx);
      const out = await s.run({ params: { data: p.pick(flat), shape: [p.layout.total] }, x });
      await s.release();
      return { p, out };
    };
    const all: Forward = (i) => ({ a: model.a.forward(i.x), b: model.b.forward(i.x), c: model.c.forward(i.x) });
    const full = await run(all, false);
    expect(full.p.layout.total).toBe(flat.length);
    expect(full.p.pick(flat)).toBe(flat);
    // Only b: a contiguous block, fed as a view.
    const onlyB = await run((i) => ({ b: model.b.forward(i.x) }), true);
    expect(onlyB.p.layout.entries.map((e) => e.name)).toEqual(['b.0.weight', 'b.0.bias', 'b.2.weight', 'b.2.bias']);
    expect(onlyB.p.pick(flat).buffer).toBe(flat.buffer);
    expect(Array.from(onlyB.out.b.data as Float32Array)).toEqual(Array.from(full.out.b.data as Float32Array));
    // a and c, traced with b too (its output unused): not contiguous, so the feed is a copy.
    const aAndC = await run((i) => {
      model.b.forward(i.x);
      return { a: model.a.forward(i.x), c: model.c.forward(i.x) };
    }, true);
    expect(aAndC.p.layout.total).toBe(flat.length - onlyB.p.layout.total);
    expect(aAndC.p.pick(flat).buffer).not.toBe(flat.buffer);
    expect(Array.from(aAndC.out.a.data as Float32Array)).toEqual(Array.from(full.out.a.data as Float32Array));
    expect(Array.from(aAndC.out.c.data as Float32Array)).toEqual(Array.from(full.out.c.data as Float32Array));
  });

  it('Dropout masks in training and is the identity in eval', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [1000]);
    const d = new Dropout(0.5);
    g.output('train', d.forward(x));
    d.eval();
    g.output('eval', d.forward(x));
    const s = await Session.create(g.toOnnx());
    const out = await s.run({ x: { data: new Float32Array(1000).fill(1), shape: [1000] } });
    const train = Array.from(out.train.data as Float32Array);
    const zeros = train.filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(400);
    expect(zeros).toBeLessThan(600);
    expect(train.every((v) => v === 0 || v === 2)).toBe(true);
    expect(Array.from(out.eval.data as Float32Array).every((v) => v === 1)).toBe(true);
  });
});
