/**
 * Define a model, train it with a compiled train step, export the inference ONNX, load it in a fresh
 * onnxruntime InferenceSession and check that it gives the trained model's outputs.
 *   npx tsx packages/graph/examples/quickstart.ts
 */

import { buildForwardProgram, buildInferenceProgram, buildTrainProgram, MLP, mseLoss, Rng, Session, Trainer } from '@rlmesh/graph';
import * as ort from 'onnxruntime-node';

async function main() {
  // 1. A model: y = MLP(x), 2 -> 32 -> 32 -> 1, tanh, named like nn.Sequential ("0.weight", ...).
  const model = new MLP([2, 32, 32, 1], 'tanh');

  // 2. The train step: forward, loss, reverse-mode gradients and Adam, all in one ONNX program.
  const program = buildTrainProgram({
    module: model,
    batch: [
      { name: 'x', dtype: 'float32', shape: ['batch', 2] },
      { name: 'y', dtype: 'float32', shape: ['batch', 1] },
    ],
    optimizer: { kind: 'adam', maxGradNorm: 1 },
    loss: (b) => ({ loss: mseLoss(model.forward(b.x), b.y) }),
  });
  const trainer = await Trainer.fromModule(program, model, 0);

  // 3. Train on y = x0 * x1 for a few hundred steps.
  const rng = new Rng(0);
  const sample = (n: number) => {
    const x = Float32Array.from({ length: 2 * n }, () => rng.uniformRange(-1, 1));
    const y = Float32Array.from({ length: n }, (_, i) => x[2 * i] * x[2 * i + 1]);
    return { x: { data: x, shape: [n, 2] }, y: { data: y, shape: [n, 1] } };
  };
  let metrics: Record<string, number> = {};
  for (let step = 0; step < 400; step++) {
    metrics = await trainer.step(sample(64), 1e-2);
    if (step % 100 === 0) console.log(`step ${step}  loss ${metrics.loss.toFixed(5)}  grad_norm ${metrics.grad_norm.toFixed(3)}`);
  }
  console.log(`step 400  loss ${metrics.loss.toFixed(5)}`);

  // 4. Export the inference model (weights as initializers) and run it in a fresh InferenceSession.
  const onnx = buildInferenceProgram({
    module: model,
    params: trainer.parameters(),
    inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 2] }],
    forward: (i) => ({ y: model.forward(i.x) }),
  });
  const session = await ort.InferenceSession.create(onnx);
  const probe = Float32Array.of(0.5, -0.5, 0.3, 0.6);
  const { y } = await session.run({ x: new ort.Tensor('float32', probe, [2, 2]) });
  const exported = Array.from(y.data as Float32Array);

  // 5. The same forward with the trainer's live parameter vector gives the same outputs.
  const fwd = buildForwardProgram({
    module: model,
    inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 2] }],
    forward: (i) => ({ y: model.forward(i.x) }),
  });
  const live = await (await Session.create(fwd.onnx)).run({
    params: { data: trainer.flatParams as Float32Array, shape: [fwd.layout.total] },
    x: { data: probe, shape: [2, 2] },
  });
  const trained = Array.from(live.y.data as Float32Array);
  console.log(`exported: f(0.5,-0.5) = ${exported[0].toFixed(4)}, f(0.3,0.6) = ${exported[1].toFixed(4)}   (true -0.2500, 0.1800)`);
  console.log(`trainer:  f(0.5,-0.5) = ${trained[0].toFixed(4)}, f(0.3,0.6) = ${trained[1].toFixed(4)}`);
  if (exported.some((v, i) => Math.abs(v - trained[i]) > 1e-6)) throw new Error('the exported model does not reproduce the trained one');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
