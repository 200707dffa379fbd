import { Rng } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import type { ActivationStore } from '../src/activation-store';
import { analyseFeatures } from '../src/analysis/features';
import { binaryEntropyBits, MutualInformationCounter } from '../src/analysis/information';
import { hungarian, matchFeatures } from '../src/analysis/matching';
import { compareStability, FeatureStats } from '../src/analysis/stability';
import { saeConfig } from '../src/config';
import type { SaeWeights } from '../src/saelens';

/** Four states; in state s the action is k = 2 with probability q[s], otherwise uniform over the others. */
const Q = [0.1, 0.5, 0.25, 0.8];
function plantedRows(rng: Rng, n: number) {
  const out: { s: number; a: number }[] = [];
  for (let i = 0; i < n; i++) {
    const s = rng.int(4);
    const others = [0, 1, 3];
    out.push({ s, a: rng.uniform() < Q[s] ? 2 : others[rng.int(3)] });
  }
  return out;
}
/** I(z; a | s) of z = [a == 2]: sum_s p(s) H_b(q_s), with p(s) = 1/4. */
const ANALYTIC = Q.reduce((t, q) => t + binaryEntropyBits(q) / 4, 0);

describe('I(z; a | s)', () => {
  it('ranks the planted feature first at its analytic value; a state-only feature carries none given s', () => {
    const rng = new Rng(3);
    const rows = plantedRows(rng, 40_000);
    const cond = new MutualInformationCounter(4);
    const marginal = new MutualInformationCounter(4);
    for (const { s, a } of rows) {
      // 0: fires exactly when a = 2; 1: fires in state 3 only; 2: independent noise; 3: a = 2 with 20% flips.
      const codes = [a === 2 ? 1 : 0, s === 3 ? 1 : 0, rng.uniform() < 0.3 ? 1 : 0, (a === 2) !== rng.uniform() < 0.2 ? 1 : 0];
      cond.addDense(String(s), String(a), codes);
      marginal.addDense('', String(a), codes);
    }
    const { mi } = cond.result();
    expect(Array.from(mi.keys()).sort((x, y) => mi[y] - mi[x])[0]).toBe(0);
    expect(mi[0]).toBeCloseTo(ANALYTIC, 2);
    expect(mi[3]).toBeGreaterThan(0.05);
    expect(mi[3]).toBeLessThan(mi[0]);
    expect(Math.abs(mi[1])).toBeLessThan(0.003);
    expect(Math.abs(mi[2])).toBeLessThan(0.003);
    // Without conditioning, the state-only feature looks informative about the action: s confounds it.
    expect(marginal.result().mi[1]).toBeGreaterThan(0.05);
    // The ceiling: H(A | S) bounds every feature, and the planted one is below it.
    expect(cond.result().hActionGivenState).toBeGreaterThan(mi[0]);
  });

  it('Miller-Madow removes most of the plug-in bias of independent features on few rows', () => {
    const rng = new Rng(5);
    const d = 200;
    const counter = new MutualInformationCounter(d);
    for (const { s, a } of plantedRows(rng, 300))
      counter.addDense(
        String(s),
        String(a),
        Array.from({ length: d }, () => (rng.uniform() < 0.5 ? 1 : 0)),
      );
    const { mi, miPlugin } = counter.result();
    const mean = (v: Float64Array) => v.reduce((t, x) => t + x, 0) / v.length;
    expect(mean(miPlugin)).toBeGreaterThan(0.015);
    expect(Math.abs(mean(mi))).toBeLessThan(mean(miPlugin) / 4);
  });

  it('refuses a key with too many cells, naming the remedy', () => {
    const counter = new MutualInformationCounter(1000, 10_000);
    expect(() => {
      for (let i = 0; i < 20; i++) counter.add(String(i), '0', []);
    }).toThrow(/coarser state or action key/);
  });
});

describe('feature matching', () => {
  it('the Hungarian assignment equals brute force on small matrices', () => {
    const rng = new Rng(9);
    for (let t = 0; t < 20; t++) {
      const n = 4;
      const cost = Float64Array.from({ length: n * n }, () => rng.uniform());
      const got = hungarian(cost, n, n);
      const total = (p: ArrayLike<number>) => Array.from(p).reduce((s, j, i) => s + cost[i * n + j], 0);
      let best = Number.POSITIVE_INFINITY;
      const perm = (rest: number[], acc: number[]) => {
        if (rest.length === 0) best = Math.min(best, total(acc));
        for (const j of rest)
          perm(
            rest.filter((x) => x !== j),
            [...acc, j],
          );
      };
      perm([0, 1, 2, 3], []);
      expect(total(got)).toBeCloseTo(best, 12);
    }
  });

  it('finds the permutation of a row-permuted copy of a decoder', async () => {
    const rng = new Rng(11);
    const [n, d] = [96, 16];
    const a = Float32Array.from({ length: n * d }, () => rng.normal());
    const perm = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    // b's row perm[i] is a's row i, scaled (norms do not matter, directions do).
    const b = new Float32Array(n * d);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) b[perm[i] * d + k] = 3 * a[i * d + k];
    const m = await matchFeatures(a, n, b, n, d);
    expect(m.one_to_one?.method).toBe('hungarian');
    expect(m.one_to_one?.match).toEqual(perm);
    expect(m.best.match).toEqual(perm);
    expect(m.one_to_one?.above_0_9).toBe(1);
    // Against an unrelated decoder almost nothing matches above 0.9.
    const c = Float32Array.from({ length: n * d }, () => rng.normal());
    expect((await matchFeatures(a, n, c, n, d)).one_to_one?.above_0_9).toBeLessThan(0.05);
  });
});

describe('ID vs OOD stability', () => {
  it('identical sets are fully stable; a 3x density change is counted', () => {
    const rng = new Rng(2);
    const id = new FeatureStats(3);
    const same = new FeatureStats(3);
    const shifted = new FeatureStats(3);
    for (let r = 0; r < 2000; r++) {
      const fire = [rng.uniform() < 0.3, rng.uniform() < 0.1, rng.uniform() < 0.5];
      const idx = fire.flatMap((f, j) => (f ? [j] : []));
      id.add(
        idx,
        idx.map(() => 1),
      );
      same.add(
        idx,
        idx.map(() => 1),
      );
    }
    for (let r = 0; r < 2000; r++) {
      const idx = [rng.uniform() < 0.3, rng.uniform() < 0.3, rng.uniform() < 0.5].flatMap((f, j) => (f ? [j] : []));
      shifted.add(
        idx,
        idx.map(() => 2),
      );
    }
    const s = compareStability('same', id, same);
    expect(s.stable_fraction).toBe(1);
    expect(s.most_changed.every((f) => f.ratio === 1)).toBe(true);
    const t = compareStability('shifted', id, shifted);
    expect(t.changed).toBe(1);
    expect(t.most_changed[0].feature).toBe(1);
    expect(t.most_changed[0].ratio).toBeGreaterThan(2);
    expect(t.most_changed[0].mean_ood).toBe(2);
  });
});

/** An SAE whose feature j is relu(x_j): identity encoder and decoder. */
function identitySae(d: number): SaeWeights {
  const eye = new Float32Array(d * d);
  for (let i = 0; i < d; i++) eye[i * d + i] = 1;
  const cfg = saeConfig({ architecture: 'standard', d_in: d, d_sae: d, normalize_activations: 'none' });
  return {
    cfg,
    params: new Map([
      ['W_enc', eye],
      ['b_enc', new Float32Array(d)],
      ['W_dec', eye.slice()],
      ['b_dec', new Float32Array(d)],
    ]),
    metadata: { hook_name: 'h' },
  };
}

/** Episode rows: state one-hot of 4, action as in plantedRows, total in 0..20, label BIG when total > 10. */
function episodeStore(rng: Rng, n: number, noiseRate: number): ActivationStore {
  const d = 4;
  const data = new Float32Array(n * d);
  const obs = new Float32Array(n * 4);
  const context: Record<string, unknown>[] = [];
  for (const [r, { s, a }] of plantedRows(rng, n).entries()) {
    const total = rng.int(21);
    data.set([a === 2 ? 1 : 0, total / 10, rng.uniform() < noiseRate ? 1 : 0, total > 10 ? 1 : 0], r * d);
    obs[r * 4 + s] = 1;
    context.push({ env: 'planted', episode: r, step: 0, action: a, labels: { total, label: total > 10 ? 'BIG' : 'SMALL' } });
  }
  return { data, rows: n, d, metadata: { hook: 'h' }, context, observations: { data: obs, d: 4 } };
}

describe('analyseFeatures', () => {
  it('on a planted store: MI, label correlations, examples, stability and matching', async () => {
    const rng = new Rng(4);
    const store = episodeStore(rng, 8000, 0.1);
    const sae = identitySae(4);
    const permuted = identitySae(4);
    // Decoder rows in the order 2, 0, 3, 1.
    const order = [2, 0, 3, 1];
    const wDec = new Float32Array(16);
    for (const [i, j] of order.entries()) wDec[i * 4 + j] = 1;
    permuted.params.set('W_dec', wDec);
    const report = await analyseFeatures({
      sae,
      store,
      ood: [
        { name: 'same', store },
        { name: 'noisier', store: episodeStore(new Rng(8), 4000, 0.4) },
      ],
      compare: { name: 'permuted', sae: permuted },
      state: 'obs',
      examples: 3,
    });
    const mi = report.mutual_information;
    expect(mi.state).toBe('obs');
    expect(mi.action).toBe('action');
    expect(mi.states).toBe(4);
    expect(mi.top[0].feature).toBe(0);
    expect(mi.top[0].mi_bits).toBeCloseTo(ANALYTIC, 1);
    const byLabel = new Map(report.correlations.map((c) => [c.label, c]));
    expect(byLabel.get('total')?.top[0]).toMatchObject({ feature: 1 });
    expect(byLabel.get('total')?.top[0].r).toBeCloseTo(1, 6);
    expect(byLabel.get('label=BIG')?.top[0]).toMatchObject({ feature: 3 });
    expect(byLabel.get('label=BIG')?.top[0].r).toBeCloseTo(1, 6);
    expect(byLabel.get('action=2')?.top[0]).toMatchObject({ feature: 0 });
    // Feature 1's top examples carry the largest totals, with their context and observation.
    const ex = report.features[1].examples;
    expect(ex).toHaveLength(3);
    expect(ex.every((e) => (e.context.labels as { total: number }).total === 20)).toBe(true);
    expect(ex[0].observation).toHaveLength(4);
    expect(report.stability[0]).toMatchObject({ name: 'same', stable_fraction: 1, changed: 0 });
    expect(report.stability[1].most_changed[0]).toMatchObject({ feature: 2 });
    expect(report.stability[1].changed).toBe(1);
    expect(report.matching?.one_to_one?.match).toEqual([1, 3, 0, 2]);
    expect(report.matching?.one_to_one?.above_0_9).toBe(1);
  });

  it('text rows: next token as the action, windows around the token, last positions only', async () => {
    // Two lines of token ids; feature 0 fires on token 7, feature 1 at the last position.
    const lines = [
      [1, 7, 3, 7, 5],
      [2, 7, 4],
    ];
    const S = 5;
    const rows: { x: number[]; obs: number[]; ctx: Record<string, unknown> }[] = [];
    for (const [li, ids] of lines.entries())
      for (const [p, t] of ids.entries())
        rows.push({
          x: [t === 7 ? 1 : 0, p === ids.length - 1 ? 1 : 0],
          obs: [...ids, ...new Array(S - ids.length).fill(0)],
          ctx: { source: 'nowhere.jsonl', line: li + 1, position: p, token: t, last: p === ids.length - 1, labels: { total: li } },
        });
    const store: ActivationStore = {
      data: Float32Array.from(rows.flatMap((r) => r.x)),
      rows: rows.length,
      d: 2,
      metadata: { hook: 'h' },
      context: rows.map((r) => r.ctx),
      observations: { data: Float32Array.from(rows.flatMap((r) => r.obs)), d: S },
    };
    const decode = (ids: number[]) => ids.map((i) => `t${i} `).join('');
    const report = await analyseFeatures({ sae: identitySae(2), store, decode, window: 1 });
    expect(report.mutual_information).toMatchObject({ state: 'none', action: 'next_token', rows: 6 });
    const top = report.features[0].examples[0];
    expect(top.window).toEqual({ before: 't1 ', token: 't7 ', after: 't3 ' });
    expect(top.text).toBe('t1 t7 t3 t7 t5 ');
    const last = await analyseFeatures({ sae: identitySae(2), store, positions: 'last', action: 'token' });
    expect(last.store.rows_used).toBe(2);
    expect(last.features[1].frequency).toBe(1);
    await expect(analyseFeatures({ sae: identitySae(2), store, state: 'record.family' })).rejects.toThrow(/state record.family: none of/);
    await expect(analyseFeatures({ sae: identitySae(3), store })).rejects.toThrow(/d_in 3/);
  });
});
