/** The train step in a worker thread takes the same steps as on the calling thread, and reports worker failures. */
import { describe, expect, it } from 'vitest';
import { buildTrainProgram, MLP, mseLoss, Rng, Trainer, WorkerSession } from '../src';

function batch(rng: Rng) {
  const x = new Float32Array(64 * 2).map(() => rng.uniformRange(-1, 1));
  const y = new Float32Array(64).map((_, i) => x[2 * i] * x[2 * i + 1]);
  return { x: { data: x, shape: [64, 2] }, y: { data: y, shape: [64, 1] } };
}

describe('Trainer in a worker thread', () => {
  it('takes bit-identical steps to the same trainer on the calling thread', async () => {
    const mlp = new MLP([2, 32, 1], 'tanh');
    const program = buildTrainProgram({
      module: mlp,
      batch: [
        { name: 'x', dtype: 'float32', shape: ['batch', 2] },
        { name: 'y', dtype: 'float32', shape: ['batch', 1] },
      ],
      optimizer: { kind: 'adam' },
      loss: (b) => ({ loss: mseLoss(mlp.forward(b.x), b.y) }),
    });
    const here = await Trainer.fromModule(program, mlp, 3, { intraOpThreads: 1 });
    const there = await Trainer.fromModule(program, mlp, 3, { intraOpThreads: 1, inWorker: true });
    const rng = new Rng(5);
    for (let i = 0; i < 20; i++) {
      const b = batch(rng);
      const [a, w] = await Promise.all([here.step(b, 1e-2), there.step(b, 1e-2)]);
      expect(w.loss).toBe(a.loss);
    }
    // The worker keeps the parameters between steps: reading them before sync() is refused, not stale.
    expect(() => there.flatParams).toThrow(/before sync\(\)/);
    await there.sync();
    expect(Array.from(there.flatParams)).toEqual(Array.from(here.flatParams));
    expect(there.snapshot().state.exp_avg_sq).toEqual(here.snapshot().state.exp_avg_sq);
    expect(there.stepCount).toBe(20);
    // A restore goes back to the worker before the next step: both continue alike from it.
    const mid = here.snapshot();
    here.restore(mid);
    there.restore(mid);
    const b = batch(rng);
    const [a, w] = await Promise.all([here.step(b, 1e-2), there.step(b, 1e-2)]);
    expect(w.loss).toBe(a.loss);
    await there.sync();
    expect(Array.from(there.flatParams)).toEqual(Array.from(here.flatParams));
    await here.release();
    await there.release();
  });

  it('rejects a malformed model with the runtime error instead of hanging', async () => {
    await expect(WorkerSession.create(new Uint8Array([1, 2, 3]))).rejects.toThrow(/protobuf|parse|model/i);
  });
});
