/**
 * The SAE ops' gradient rules. Where the rule is the true derivative (JumpReLU's x side, away from the
 * threshold) it is checked against central differences; where it is a deliberate estimator (the
 * straight-through threshold gradient, the unit-norm projection) against the formula it stands for,
 * computed here independently, and with a wrong variant the check must reject.
 */
import { describe, expect, it } from 'vitest';
import * as G from '../src';
import { finiteDifference } from './fd';

const x12 = [-0.9, 0.31, 0.52, 1.3, 0.05, -0.2, 0.74, 0.49, 0.2, 0.61, -1.1, 0.33];

/** Runs sum(op(x, θ) · w) and returns (loss, dx, dθ) in float64. */
async function gradsOf(op: (x: G.Value, t: G.Value) => G.Value, x: number[], theta: number[], w: number[]) {
  const g = new G.Graph('sae-ops');
  const xv = g.input('x', 'float64', [x.length / theta.length, theta.length]);
  const tv = g.input('t', 'float64', [theta.length]);
  const wv = g.constant({ dtype: 'float64', shape: [x.length / theta.length, theta.length], data: Float64Array.from(w) });
  const loss = G.reduceSum(G.mul(op(xv, tv), wv));
  const [dx, dt] = G.gradients(loss, [xv, tv]);
  g.output('loss', loss);
  g.output('dx', dx);
  g.output('dt', dt);
  const s = await G.Session.create(g.toOnnx(), { intraOpThreads: 1 });
  const out = await s.run({
    x: { data: Float64Array.from(x), shape: [x.length / theta.length, theta.length] },
    t: { data: Float64Array.from(theta), shape: [theta.length] },
  });
  await s.release();
  return { loss: out.loss.data[0] as number, dx: Array.from(out.dx.data as Float64Array), dt: Array.from(out.dt.data as Float64Array) };
}

const w12 = x12.map((_, i) => ((i * 5) % 7) / 7 - 0.4);
const theta3 = [0.3, 0.5, 0.6];
const rect = (u: number) => (Math.abs(u) < 0.5 ? 1 : 0);

describe('JumpReLU', () => {
  it('x gradient matches central differences away from the threshold, and θ gets none there', async () => {
    // No x lies within ε/2 of its θ, so the straight-through term is zero and the op is smooth in both.
    const r = await finiteDifference(
      (_g, [x, t]) => G.jumpRelu(x, t, 0.001),
      [
        { shape: [4, 3], data: x12 },
        { shape: [3], data: theta3 },
      ],
    );
    expect(r.maxError, JSON.stringify(r.worst)).toBeLessThan(1e-6);
  });

  it('forward is x·H(x − θ) and θ gets −θ/ε·K((x − θ)/ε)·g summed over rows', async () => {
    const eps = 0.1;
    const { dx, dt, loss } = await gradsOf((x, t) => G.jumpRelu(x, t, eps), x12, theta3, w12);
    const expectDt = [0, 0, 0];
    const expectDx = x12.map((v, i) => (v > theta3[i % 3] ? w12[i] : 0));
    let expectLoss = 0;
    x12.forEach((v, i) => {
      const t = theta3[i % 3];
      expectDt[i % 3] += (-t / eps) * rect((v - t) / eps) * w12[i];
      expectLoss += (v > t ? v : 0) * w12[i];
    });
    expect(loss).toBeCloseTo(expectLoss, 12);
    for (const [i, v] of dx.entries()) expect(v).toBeCloseTo(expectDx[i], 12);
    // Some entries sit inside the window, so this is a real check of the estimator, not 0 == 0.
    expect(expectDt.some((v) => Math.abs(v) > 0.1)).toBe(true);
    for (const [i, v] of dt.entries()) expect(v).toBeCloseTo(expectDt[i], 10);
    // A rule without the θ factor (the Step estimator) would differ here.
    const wrong = expectDt.map((v, i) => v / theta3[i]);
    expect(dt.some((v, i) => Math.abs(v - wrong[i]) > 1e-3)).toBe(true);
  });
});

describe('Heaviside step', () => {
  it('forward is H(x − θ); x gets no gradient and θ gets −K((x − θ)/ε)/ε·g', async () => {
    const eps = 0.1;
    const { dx, dt, loss } = await gradsOf((x, t) => G.heavisideStep(x, t, eps), x12, theta3, w12);
    const expectDt = [0, 0, 0];
    let expectLoss = 0;
    x12.forEach((v, i) => {
      const t = theta3[i % 3];
      expectDt[i % 3] += (-1 / eps) * rect((v - t) / eps) * w12[i];
      expectLoss += (v > t ? 1 : 0) * w12[i];
    });
    expect(loss).toBeCloseTo(expectLoss, 12);
    for (const v of dx) expect(v).toBe(0);
    expect(expectDt.some((v) => Math.abs(v) > 0.1)).toBe(true);
    for (const [i, v] of dt.entries()) expect(v).toBeCloseTo(expectDt[i], 10);
  });
});

describe('unitNormRows', () => {
  it('its gradient at unit rows is the gradient of L(W / |W|rows), checked by central differences', async () => {
    const [rows, d] = [3, 4];
    const raw = Array.from({ length: rows * d }, (_, i) => Math.sin(i * 1.7 + 0.3));
    const W = raw.slice();
    for (let r = 0; r < rows; r++) {
      const n = Math.hypot(...W.slice(r * d, r * d + d));
      for (let j = 0; j < d; j++) W[r * d + j] /= n;
    }
    const C = Array.from({ length: rows * d }, (_, i) => Math.cos(i * 0.9 - 0.2) * 2);
    // L(W) = Σ (W_r/|W_r|)² · C_r: nonlinear, so the projection matters.
    const L = (m: number[]) => {
      let s = 0;
      for (let r = 0; r < rows; r++) {
        const n = Math.hypot(...m.slice(r * d, r * d + d));
        for (let j = 0; j < d; j++) s += (m[r * d + j] / n) ** 2 * C[r * d + j];
      }
      return s;
    };
    const g = new G.Graph('unit-norm');
    const wv = g.input('w', 'float64', [rows, d]);
    const cv = g.constant({ dtype: 'float64', shape: [rows, d], data: Float64Array.from(C) });
    const u = G.unitNormRows(wv);
    const loss = G.reduceSum(G.mul(G.mul(u, u), cv));
    const [dw] = G.gradients(loss, [wv]);
    g.output('dw', dw);
    const s = await G.Session.create(g.toOnnx(), { intraOpThreads: 1 });
    const out = await s.run({ w: { data: Float64Array.from(W), shape: [rows, d] } });
    await s.release();
    const analytic = Array.from(out.dw.data as Float64Array);
    const eps = 1e-6;
    let plainDiffers = false;
    for (let i = 0; i < W.length; i++) {
      const up = W.slice();
      const down = W.slice();
      up[i] += eps;
      down[i] -= eps;
      const numeric = (L(up) - L(down)) / (2 * eps);
      expect(analytic[i]).toBeCloseTo(numeric, 6);
      // The unprojected gradient 2·u·C is not what comes out: the check can tell them apart.
      if (Math.abs(2 * W[i] * C[i] - numeric) > 1e-3) plainDiffers = true;
    }
    expect(plainDiffers).toBe(true);
  });
});
