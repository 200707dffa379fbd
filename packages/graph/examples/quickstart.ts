/**
 * Define a model, train it with a compiled train step, export the inference ONNX, load it in a fresh
 * onnxruntime InferenceSession and check that it gives the trained model's outputs.
 *   npx tsx packages/graph/examples/quickstart.ts
 */

import { buildInferenceProgram, buildTrainProgram, MLP, mseLoss, Rng, Trainer } from '@rlmesh/graph';
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
  const probe = Float32Array.of(0.5, -0.5, 0.9, 0.8);
  const { y } = await session.run({ x: new ort.Tensor('float32', probe, [2, 2]) });
  const got = Array.from(y.data as Float32Array);
  console.log(`f(0.5,-0.5) = ${got[0].toFixed(3)} (true -0.250)   f(0.9,0.8) = ${got[1].toFixed(3)} (true 0.720)`);
  if (Math.abs(got[0] + 0.25) > 0.05 || Math.abs(got[1] - 0.72) > 0.05)
    throw new Error('the exported model does not reproduce the trained function');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
