import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../src';

const rule = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('parseConfigText', () => {
  it('parses YAML and JSON, and an empty text as null', () => {
    expect(parseConfigText('env: { id: CartPole-v1 }\ntrain:\n  total_env_steps: 10\n', 'config')).toEqual({
      env: { id: 'CartPole-v1' },
      train: { total_env_steps: 10 },
    });
    expect(parseConfigText('{"a": [1, {"b": 2}]}', 'config')).toEqual({ a: [1, { b: 2 }] });
    expect(parseConfigText('', 'config')).toBeNull();
  });

  it('names the field and the rule for text it will not parse', () => {
    expect(rule(() => parseConfigText('env: [1, 2', 'suite'))).toMatch(/^suite: is not valid YAML or JSON: /);
    expect(rule(() => parseConfigText(`# ${'x'.repeat(300_000)}`, 'config'))).toMatch(/^config: must be at most 262144 bytes, got 300002$/);
    expect(rule(() => parseConfigText('x', 'config', { maxBytes: 0 }))).toMatch(/at most 0 bytes/);
  });

  it('refuses deep flow nesting before the parser recurses into it', () => {
    expect(rule(() => parseConfigText(`${'['.repeat(20_000)}1`, 'config'))).toBe('config: nests [ ] / { } 20000 deep; at most 64 allowed');
    // Brackets inside strings and comments are text, not nesting.
    expect(parseConfigText(`a: "${'['.repeat(100)}"\nb: '${'{'.repeat(100)}'\n# ${'['.repeat(100)}\n`, 'config')).toEqual({
      a: '['.repeat(100),
      b: '{'.repeat(100),
    });
    expect(parseConfigText(`${'['.repeat(64)}1${']'.repeat(64)}`, 'config')).toBeDefined();
  });

  it('refuses alias expansion past the limit (the "billion laughs" document)', () => {
    const levels = Array.from({ length: 12 }, (_, i) => {
      const prev = i ? `b${i - 1}` : 'a';
      return `b${i}: &b${i} [*${prev}, *${prev}, *${prev}]`;
    });
    const bomb = `a: &a [x, x, x, x, x, x, x, x, x]\n${levels.join('\n')}\n`;
    expect(rule(() => parseConfigText(bomb, 'config'))).toMatch(/^config: is not valid YAML or JSON: .*alias/i);
  });
});
