import { describe, expect, it } from 'vitest';
import { curveGroups, type MetricRow, samplesOf } from '../src';

const row = (update: number, metrics: Record<string, number>): MetricRow => ({
  update,
  env_steps: 64 * update,
  episodes: 64 * update,
  level: 0,
  success: 0.5,
  success_mean: 0.4,
  return_mean: 0.3,
  policy_lag: 0,
  metrics,
  level_changed: false,
});

describe('curveGroups', () => {
  it('puts every logged quantity on a chart, terms of one quantity together, counters on none', () => {
    const groups = curveGroups([row(1, { loss: 1, 'loss/policy': 0.5, 'reward/goal': 1, 'reward/pred': 0, entropy: 2, grad_norm: 1 })]);
    expect(groups.map((g) => [g.title, g.series.map((s) => s.key)])).toEqual([
      ['return_mean', ['return_mean']],
      ['success', ['success', 'success_mean']],
      ['level', ['level']],
      ['policy_lag', ['policy_lag']],
      ['loss', ['metrics.loss', 'metrics.loss/policy']],
      ['reward', ['metrics.reward/goal', 'metrics.reward/pred']],
      ['entropy', ['metrics.entropy']],
      ['grad_norm', ['metrics.grad_norm']],
    ]);
  });

  it('includes a metric that only later rows log, and samples carry only what each row logs', () => {
    const rows = [row(1, { loss: 1 }), row(2, { loss: 0.5, approx_kl: 0.01 })];
    const layout = curveGroups(rows);
    expect(layout.at(-1)?.series.map((s) => s.key)).toEqual(['metrics.approx_kl']);
    const samples = samplesOf(rows, layout);
    expect(samples.map((s) => s.x)).toEqual([64, 128]);
    expect('metrics.approx_kl' in samples[0].v).toBe(false);
    expect(samples[1].v['metrics.approx_kl']).toBe(0.01);
    expect(samples[1].v.return_mean).toBe(0.3);
  });
});
