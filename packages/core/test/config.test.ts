import { describe, expect, it } from 'vitest';
import { applyOverrides, ConfigError, type Schema, validate } from '../src/config';

const schema: Schema = {
  run: { kind: 'section', fields: { seed: { kind: 'int', default: 0, min: 0 }, name: { kind: 'string' } } },
  algo: {
    kind: 'section',
    fields: {
      lr: { kind: 'number', default: 1e-3, min: 0, exclusiveMin: true },
      baseline: { kind: 'string', default: 'ema', oneOf: ['ema', 'value'] },
      clip: { kind: 'bool', default: true },
      reward_weights: { kind: 'numberRecord', default: { goal: 1 } },
    },
  },
};

const err = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('config validation', () => {
  it('fills defaults and accepts numeric strings (YAML 1e-3 quirk)', () => {
    const c = validate(schema, { run: { name: 'x' }, algo: { lr: '2e-3' } }) as {
      run: { seed: number };
      algo: { lr: number; baseline: string };
    };
    expect(c.run.seed).toBe(0);
    expect(c.algo.lr).toBe(0.002);
    expect(c.algo.baseline).toBe('ema');
  });

  it('names the key and the rule', () => {
    expect(err(() => validate(schema, { run: { name: 'x' }, algo: { lr: 'fast' } }))).toBe('algo.lr: must be a number > 0, got "fast"');
    expect(err(() => validate(schema, { run: { name: 'x' }, algo: { lr: 0 } }))).toBe('algo.lr: must be a number > 0, got 0');
    expect(err(() => validate(schema, { run: { name: 'x', seed: 1.5 } }))).toBe('run.seed: must be an integer >= 0, got 1.5');
    expect(err(() => validate(schema, { run: {} }))).toBe('run.name: is required');
    expect(err(() => validate(schema, { run: { name: 'x' }, algo: { baseline: 'mean' } }))).toBe(
      'algo.baseline: must be one of ema, value, got "mean"',
    );
    expect(err(() => validate(schema, { run: { name: 'x' }, algo: { lrr: 1 } }))).toMatch(
      /^algo\.lrr: unknown key \(known keys here: lr, baseline, clip, reward_weights\)/,
    );
    expect(err(() => validate(schema, { run: { name: 'x' }, algo: { reward_weights: { goal: 'high' } } }))).toBe(
      'algo.reward_weights.goal: must be a number, got "high"',
    );
    expect(err(() => validate(schema, { run: 'x' }))).toBe('run: must be a mapping, got "x"');
  });

  it('applies dotted command-line overrides before validation', () => {
    const merged = applyOverrides({ run: { name: 'x' } }, { 'algo.lr': '0.01', 'algo.clip': 'false', 'run.name': 'y' });
    const c = validate(schema, merged) as { run: { name: string }; algo: { lr: number; clip: boolean } };
    expect(c.algo.lr).toBe(0.01);
    expect(c.algo.clip).toBe(false);
    expect(c.run.name).toBe('y');
  });
});
