/**
 * Activation recomputation: gradients through recomputed segments equal those of the plain graph
 * (float64, to rounding) and central differences; the copy is really in the program (onnxruntime
 * does not merge it away); a segment with dropout is refused.
 */
import { describe, expect, it } from 'vitest';
import * as G from '../src';
import { finiteDifference } from './fd';

/** Three tanh layers of width 6, each one segment when `checkpointed`. */
function chain(checkpointed: boolean) {
  const layers = [0, 1, 2].map(() => new G.Linear(6, 6));
  const specs = layers.flatMap((l, i) => l.namedParameters(`${i}.`));
  return {
    specs,
    build: (xs: G.Value[]) => {
      const byName = new Map(specs.map((p, i) => [p.name, xs[1 + i]]));
      layers.forEach((l, i) => {
        l.bind({ dtype: 'float64', get: (n) => byName.get(n) as G.Value }, `${i}.`);
      });
      let h = xs[0];
      for (const l of layers) h = checkpointed ? G.recompute((x) => G.tanh(l.forward(x)), h) : G.tanh(l.forward(h));
      return h;
    },
  };
}

describe('recompute', () => {
  it("gives the plain graph's gradients, and central differences agree", async () => {
    const inputs = [{ shape: [3, 6] }, ...chain(false).specs.map((p) => ({ shape: p.shape }))];
    const plain = chain(false);
    const ckpt = chain(true);
    const a = await finiteDifference((_g, xs) => plain.build(xs), inputs, 4);
    const b = await finiteDifference((_g, xs) => ckpt.build(xs), inputs, 4);
    expect(b.maxError, JSON.stringify(b.worst)).toBeLessThan(1e-7);
    expect(Math.abs(a.worst.analytic - b.worst.analytic)).toBeLessThan(1e-9);
  });

  it('keeps the copy in the program: more nodes than the plain step', () => {
    const count = (checkpointed: boolean) => {
      const c = chain(checkpointed);
      const g = new G.Graph('count');
      const xs = [g.input('x', 'float64', [3, 6]), ...c.specs.map((p, i) => g.input(`p${i}`, 'float64', p.shape))];
      const loss = G.reduceSum(c.build(xs));
      for (const [i, d] of G.gradients(loss, xs).entries()) g.output(`d${i}`, d);
      return g.toOnnx().length;
    };
    expect(count(true)).toBeGreaterThan(count(false));
  });

  it('refuses a segment that draws random numbers', () => {
    const g = new G.Graph('drop');
    const x = g.input('x', 'float32', [2, 3]);
    const drop = new G.Dropout(0.5).train(true);
    expect(() => G.recompute((v) => drop.forward(v), x)).toThrow(/recompute: the segment draws random numbers \(RandomUniformLike/);
  });
});
