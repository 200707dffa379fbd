import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  buildForwardProgram,
  buildInferenceProgram,
  buildTrainProgram,
  crossEntropy,
  Dropout,
  Graph,
  MLP,
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
