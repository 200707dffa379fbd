import { describe, expect, it } from 'vitest';
import { beats, beatsBeyond, DEFAULT_MIN_EPISODES, differenceStandardError, dominates, paretoFrontier } from '../src/compare';
import { envResult, evalResult } from './helpers';

describe('beats', () => {
  it('needs A.low above B.high', () => {
    // 80% Jeffreys: 18/20 -> [0.772, 0.955]; 6/20 -> [0.176, 0.447].
    expect(beats(envResult('e', 18, 20), envResult('e', 6, 20))).toBe(true);
    expect(beats(envResult('e', 6, 20), envResult('e', 18, 20))).toBe(false);
    // 12/20 and 9/20 overlap: no verdict either way.
    expect(beats(envResult('e', 12, 20), envResult('e', 9, 20))).toBe(false);
    expect(beats(envResult('e', 9, 20), envResult('e', 12, 20))).toBe(false);
  });

  it('a tie beats nothing, even at the boundaries', () => {
    expect(beats(envResult('e', 20, 20), envResult('e', 20, 20))).toBe(false);
    expect(beats(envResult('e', 0, 20), envResult('e', 0, 20))).toBe(false);
  });

  it('too few episodes on either side: no verdict', () => {
    const perfect = envResult('e', 5, 5);
    const none = envResult('e', 0, 5);
    // The intervals are separated (5/5 -> [0.74, 1], 0/5 -> [0, 0.26]) ...
    expect(perfect.interval.low).toBeGreaterThan(none.interval.high);
    // ... but 5 < DEFAULT_MIN_EPISODES.
    expect(DEFAULT_MIN_EPISODES).toBeGreaterThan(5);
    expect(beats(perfect, none)).toBe(false);
    expect(beats(perfect, none, 5)).toBe(true);
    expect(beats(envResult('e', 40, 40), none, 5)).toBe(true);
    expect(beats(envResult('e', 40, 40), none, 6)).toBe(false);
  });

  it('refuses intervals at different levels', () => {
    const b = envResult('e', 1, 20);
    b.interval = { ...b.interval, level: 0.95 };
    expect(() => beats(envResult('e', 18, 20), b)).toThrow(/levels 0.8 and 0.95/);
  });
});

describe('dominates', () => {
  it('not beaten anywhere and beating somewhere', () => {
    const a = evalResult('a', { x: [18, 20], y: [10, 20] });
    const b = evalResult('b', { x: [6, 20], y: [11, 20] });
    expect(dominates(a, b)).toBe(true);
    expect(dominates(b, a)).toBe(false);
  });

  it('a trade-off is no dominance either way', () => {
    const a = evalResult('a', { x: [18, 20], y: [2, 20] });
    const b = evalResult('b', { x: [2, 20], y: [18, 20] });
    expect(dominates(a, b)).toBe(false);
    expect(dominates(b, a)).toBe(false);
  });

  it('ties everywhere: neither dominates', () => {
    const a = evalResult('a', { x: [10, 20], y: [20, 20] });
    const b = evalResult('b', { x: [10, 20], y: [20, 20] });
    expect(dominates(a, b)).toBe(false);
    expect(dominates(b, a)).toBe(false);
  });

  it('too few episodes: no dominance until minEpisodes allows it', () => {
    const a = evalResult('a', { x: [6, 6] });
    const b = evalResult('b', { x: [0, 6] });
    expect(dominates(a, b)).toBe(false);
    expect(dominates(a, b, { minEpisodes: 6 })).toBe(true);
  });

  it('compares only environments both evaluated the same way', () => {
    const a = evalResult('a', { x: [18, 20] });
    const b = evalResult('b', { z: [0, 20] });
    expect(dominates(a, b)).toBe(false);
    const c = evalResult('c', { x: [0, 20] });
    c.environments[0].options = { level: 3 };
    expect(dominates(a, c)).toBe(false);
    c.environments[0].options = {};
    expect(dominates(a, c)).toBe(true);
  });
});

describe('paretoFrontier', () => {
  it('keeps the non-dominated results in input order, ties included', () => {
    const good = evalResult('good', { x: [18, 20], y: [10, 20] });
    const tradeOff = evalResult('trade-off', { x: [4, 20], y: [19, 20] });
    const worse = evalResult('worse', { x: [6, 20], y: [10, 20] });
    const twin = evalResult('twin', { x: [18, 20], y: [10, 20] });
    const ids = (rs: { id: string }[]) => rs.map((r) => r.id);
    expect(ids(paretoFrontier([worse, good, tradeOff]))).toEqual(['good', 'trade-off']);
    expect(ids(paretoFrontier([good, twin, worse]))).toEqual(['good', 'twin']);
    expect(ids(paretoFrontier([]))).toEqual([]);
    expect(ids(paretoFrontier([worse]))).toEqual(['worse']);
  });

  it('with too few episodes everything is on the frontier', () => {
    const a = evalResult('a', { x: [4, 4] });
    const b = evalResult('b', { x: [0, 4] });
    expect(paretoFrontier([a, b]).map((r) => r.id)).toEqual(['a', 'b']);
    expect(paretoFrontier([a, b], { minEpisodes: 4 }).map((r) => r.id)).toEqual(['a']);
  });
});

describe('epsilon-Pareto', () => {
  it('the standard error of the difference uses Jeffreys posterior means', () => {
    const se = differenceStandardError(envResult('e', 12, 20), envResult('e', 8, 20));
    const pa = 12.5 / 21;
    const pb = 8.5 / 21;
    expect(se).toBeCloseTo(Math.sqrt((pa * (1 - pa)) / 20 + (pb * (1 - pb)) / 20), 12);
    // Still positive at 0/n against 0/n.
    expect(differenceStandardError(envResult('e', 0, 20), envResult('e', 0, 20))).toBeGreaterThan(0);
  });

  it('a difference beyond one standard error counts where the intervals still overlap', () => {
    const a = envResult('e', 14, 20); // 0.70
    const b = envResult('e', 9, 20); // 0.45, SE of the difference ~0.151
    expect(beats(a, b)).toBe(false);
    expect(beatsBeyond(a, b, 'se')).toBe(true);
    expect(beatsBeyond(b, a, 'se')).toBe(false);
    // A fixed tolerance: 0.25 difference against 0.2 and 0.3.
    expect(beatsBeyond(a, b, 0.2)).toBe(true);
    expect(beatsBeyond(a, b, 0.3)).toBe(false);
    expect(() => beatsBeyond(a, b, -1)).toThrow(/epsilon must be/);
  });

  it('ties within the tolerance leave both results on the frontier', () => {
    const a = evalResult('a', { x: [14, 20] });
    const b = evalResult('b', { x: [12, 20] }); // 0.10 below, SE ~0.15
    const c = evalResult('c', { x: [9, 20] });
    expect(paretoFrontier([a, b, c], { epsilon: 'se' }).map((r) => r.id)).toEqual(['a', 'b']);
    expect(paretoFrontier([a, b, c]).map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(paretoFrontier([a, b, c], { epsilon: 0.05 }).map((r) => r.id)).toEqual(['a']);
    expect(paretoFrontier([a, b, c], { epsilon: 'se', minEpisodes: 21 }).map((r) => r.id)).toEqual(['a', 'b', 'c']);
  });
});
