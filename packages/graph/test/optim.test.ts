import { describe, expect, it } from 'vitest';
import { buildTrainProgram, Module, mul, type OptimizerConfig, reduceSum, scheduledLr, sub, Trainer } from '../src';

/** One parameter vector w; loss = 0.5 * sum((w - target)^2), so grad = w - target. */
class Vec extends Module {
  constructor(readonly n: number) {
    super();
    this.register('w', [n], () => new Float32Array(n));
  }
  w() {
    return this.param('w');
  }
}

const target = [1.5, -2, 0.25, 4];
const start = [0.1, 0.2, -0.3, 0.4];

async function run(cfg: OptimizerConfig, lrs: number[]) {
  const m = new Vec(4);
  const program = buildTrainProgram({
    module: m,
    batch: [],
    dtype: 'float64',
    optimizer: cfg,
    loss: (_b, g) => {
      const d = sub(m.w(), g.constant({ dtype: 'float64', shape: [4], data: Float64Array.from(target) }));
      return { loss: mul(reduceSum(mul(d, d)), 0.5) };
    },
  });
  const t = await Trainer.create(program, Float64Array.from(start));
  const norms: number[] = [];
  for (const lr of lrs) norms.push((await t.step({}, lr)).grad_norm);
  return { params: Array.from(t.flatParams), norms };
}

/** Hand-written torch.optim references on the same quadratic. */
function reference(cfg: OptimizerConfig, lrs: number[]) {
  const p = [...start];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  lrs.forEach((lr, k) => {
    const t = k + 1;
    let g = p.map((x, i) => x - target[i]);
    const norm = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
    if (cfg.maxGradNorm !== undefined) {
      const c = Math.min(1, cfg.maxGradNorm / (norm + 1e-6));
      g = g.map((x) => x * c);
    }
    if (cfg.kind === 'sgd') {
      const mu = cfg.momentum ?? 0;
      const wd = cfg.weightDecay ?? 0;
      for (let i = 0; i < p.length; i++) {
        let d = g[i] + wd * p[i];
        if (mu > 0) {
          m[i] = t === 1 ? d : mu * m[i] + d;
          d = cfg.nesterov ? d + mu * m[i] : m[i];
        }
        p[i] -= lr * d;
      }
    } else {
      const b1 = cfg.beta1 ?? 0.9;
      const b2 = cfg.beta2 ?? 0.999;
      const eps = cfg.eps ?? 1e-8;
      const wd = cfg.weightDecay ?? (cfg.kind === 'adamw' ? 0.01 : 0);
      for (let i = 0; i < p.length; i++) {
        let gi = g[i];
        if (cfg.kind === 'adamw') p[i] *= 1 - lr * wd;
        else gi += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const bc1 = 1 - b1 ** t;
        const bc2 = 1 - b2 ** t;
        p[i] -= (lr / bc1) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps));
      }
    }
  });
  return p;
}

const lrs = [0.1, 0.05, 0.2, 0.1, 0.02, 0.3];
const cases: Array<[string, OptimizerConfig]> = [
  ['sgd', { kind: 'sgd' }],
  ['sgd momentum + weight decay', { kind: 'sgd', momentum: 0.9, weightDecay: 0.1 }],
  ['sgd nesterov', { kind: 'sgd', momentum: 0.8, nesterov: true }],
  ['adam', { kind: 'adam' }],
  ['adam L2', { kind: 'adam', beta1: 0.8, beta2: 0.95, weightDecay: 0.05 }],
  ['adamw', { kind: 'adamw', weightDecay: 0.1 }],
  ['adamw clipped', { kind: 'adamw', weightDecay: 0.1, maxGradNorm: 0.5 }],
];

describe('optimisers match hand-computed torch.optim references over several steps', () => {
  for (const [name, cfg] of cases) {
    it(name, async () => {
      const got = await run(cfg, lrs);
      const want = reference(cfg, lrs);
      got.params.forEach((x, i) => {
        expect(x).toBeCloseTo(want[i], 12);
      });
    });
  }

  it('reports the pre-clip gradient norm', async () => {
    const got = await run({ kind: 'sgd', maxGradNorm: 0.01 }, [0.1]);
    const g0 = start.map((x, i) => x - target[i]);
    expect(got.norms[0]).toBeCloseTo(Math.hypot(...g0), 12);
  });
});

describe('learning-rate schedules', () => {
  it('constant, warm-up and cosine', () => {
    expect(scheduledLr({ kind: 'constant', lr: 0.3 }, 100)).toBe(0.3);
    expect(scheduledLr({ kind: 'linear_warmup', lr: 1, warmupSteps: 4 }, 0)).toBe(0.25);
    expect(scheduledLr({ kind: 'linear_warmup', lr: 1, warmupSteps: 4 }, 3)).toBe(1);
    expect(scheduledLr({ kind: 'linear_warmup', lr: 1, warmupSteps: 4 }, 10)).toBe(1);
    const cos = { kind: 'cosine', lr: 1, totalSteps: 10, minLr: 0.1 } as const;
    expect(scheduledLr(cos, 0)).toBeCloseTo(1, 12);
    expect(scheduledLr(cos, 5)).toBeCloseTo(0.55, 12);
    expect(scheduledLr(cos, 10)).toBeCloseTo(0.1, 12);
  });
});
