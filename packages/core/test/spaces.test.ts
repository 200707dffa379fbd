import { describe, expect, it } from 'vitest';
import { Box, Discrete, MultiDiscrete, Rng, scalarise, spaceFromJSON } from '../src';

describe('spaces', () => {
  it('contain what they sample and round-trip through JSON', () => {
    const rng = new Rng(0);
    const spaces = [new Discrete(5), new Box(-1, 2, [2, 3]), new MultiDiscrete([2, 3, 4])];
    for (const s of spaces) {
      for (let i = 0; i < 50; i++) expect(s.contains(s.sample(rng) as never)).toBe(true);
      expect(spaceFromJSON(JSON.parse(JSON.stringify(s)))).toEqual(s);
    }
    expect(new Discrete(5).contains(5)).toBe(false);
    expect(new Discrete(5).contains(1.5)).toBe(false);
    expect(new Box(0, 1, [2]).contains([0.5, 1.5])).toBe(false);
    expect(new MultiDiscrete([2, 3]).contains([1, 3])).toBe(false);
    expect(() => new Discrete(0)).toThrow(/positive integer/);
  });

  it('scalarises a reward vector with named weights', () => {
    expect(scalarise({ goal: 1, pred: -0.5 }, { goal: 1, pred: 0.1 })).toBeCloseTo(0.95, 12);
    expect(scalarise({ goal: 1, pred: -0.5 }, { goal: 2 })).toBe(2);
    expect(scalarise({ goal: 1 }, { goal: 1, pred: 5 })).toBe(1);
  });
});
