/**
 * `rlmesh sae`: every mistake is one line naming what is wrong, exit 2; a store trained by
 * `sae train` prints its held-out metrics.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { plantedDictionary, sampleActivations, writeActivationStore } from '@rlmesh/sae';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-sae-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

describe('rlmesh sae', () => {
  it('refuses bad arguments in one line with exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['sae'], /^rlmesh: sae needs one of hooks, capture, train, loss-recovered/],
      [['sae', 'capture', '--hook', 'hook_embed', '--out', dir], /^rlmesh: sae capture: --checkpoint is required$/],
      [['sae', 'capture', '--checkpoint', 'x', '--hook', 'h', '--out', dir], /^rlmesh: sae capture: give --episodes N >= 1/],
      [['sae', 'capture', '--checkpoint', 'x', '--hook', 'h', '--out', dir, '--data', 'd', '--episodes', '3'], /exclude each other/],
      [
        ['sae', 'capture', '--checkpoint', join(dir, 'none.safetensors'), '--hook', 'h', '--out', dir, '--episodes', '1'],
        /^rlmesh: sae capture: cannot read .*none\.safetensors/,
      ],
      [
        ['sae', 'train', '--activations', 'nowhere', '--root', dir],
        /^rlmesh: sae train: activations: "nowhere" does not exist under the service root$/,
      ],
      [['sae', 'train', '--activations', 'a', '--bogus', '1'], /^rlmesh: sae train: unknown option --bogus/],
      [['sae', 'hooks', '--checkpoint', join(dir, 'none.safetensors')], /^rlmesh: sae hooks: cannot read/],
    ];
    for (const [argv, want] of cases) {
      const io = captureConsole();
      expect(await main(argv), argv.join(' ')).toBe(2);
      expect(io.err, argv.join(' ')).toHaveLength(1);
      expect(io.err[0]).toMatch(want);
      vi.restoreAllMocks();
    }
  });

  it('trains an SAE on a store and prints its held-out metrics', async () => {
    const rng = new Rng(1);
    const acts = sampleActivations(plantedDictionary(rng, 8, 6, 1), rng, 400, { p: 0.3 });
    await writeActivationStore(join(dir, 'store'), { ...acts, d: 8 }, { hook: 'synthetic' }, null);
    const io = captureConsole();
    const argv = ['sae', 'train', '--activations', 'store', '--root', dir, '--id', 'tiny', '--steps', '20', '--batch-size', '32'];
    expect(await main([...argv, '--config.architecture', 'topk', '--config.k', '2', '--config.d_sae', '16'])).toBe(0);
    expect(io.out[0]).toMatch(/^sae tiny: topk, d_in 8, d_sae 16/);
    expect(io.out[1]).toMatch(/held-out rows 40: l0 \d/);
  });
});
