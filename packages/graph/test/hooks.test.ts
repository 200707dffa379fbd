import { describe, expect, it } from 'vitest';
import { Graph, type Value } from '../src/graph';
import { hookPoint, hookScope, recordHooks } from '../src/hooks';
import { mul } from '../src/ops/elementwise';

describe('hook points', () => {
  const trace = (g: Graph) => {
    const x = g.input('x', 'float32', ['batch', 3]);
    const h = hookScope('blocks.0', () => hookPoint('hook_resid_post', mul(x, 2)));
    return mul(hookPoint('hook_out', h), 3);
  };

  it('add nothing to a trace that does not record, and name what a recording collects by scope', () => {
    const plain = new Graph('t');
    plain.output('y', trace(plain));
    const recorded = new Graph('t');
    const rec = recordHooks(() => trace(recorded));
    recorded.output('y', rec.result);
    expect(recorded.toOnnx()).toEqual(plain.toOnnx());
    expect([...rec.hooks.keys()]).toEqual(['blocks.0.hook_resid_post', 'hook_out']);
  });

  it('replace a hooked value for the rest of the trace, and refuse names never marked or marked twice', () => {
    const g = new Graph('t');
    let replacement: Value | null = null;
    const rec = recordHooks(
      () => trace(g),
      new Map([
        [
          'blocks.0.hook_resid_post',
          (v: Value) => {
            replacement = mul(v, 0);
            return replacement;
          },
        ],
      ]),
    );
    // What the model goes on with is the replacement; the recording keeps the original.
    expect(replacement).not.toBeNull();
    expect(rec.hooks.get('hook_out')?.value).toBe(replacement);
    expect(rec.hooks.get('blocks.0.hook_resid_post')?.value).not.toBe(replacement);
    expect(() => recordHooks(() => trace(new Graph('t')), new Map([['blocks.9.hook_z', (v) => v]]))).toThrow(
      /unknown hook "blocks\.9\.hook_z"/,
    );
    expect(() => recordHooks(() => trace(new Graph('t')) && trace(new Graph('u')))).toThrow(/marked twice/);
  });
});
