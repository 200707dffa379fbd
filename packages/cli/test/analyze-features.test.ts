/**
 * `rlmesh analyze features`: mistakes are one line and exit 2; on a planted store and SAE it writes
 * the JSON and the page, and prints the feature that fires with the action first.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { saeConfig, saveSaeLens, writeActivationStore } from '@rlmesh/sae';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-analyze-features-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

async function planted(): Promise<void> {
  // Feature j of an identity SAE reads x_j: x_0 = [action == 1], x_1 = the label `total` / 10, x_2 noise.
  const rng = new Rng(1);
  const rows = 600;
  const data = new Float32Array(rows * 3);
  const context = [];
  for (let r = 0; r < rows; r++) {
    const action = rng.int(3);
    const total = rng.int(11);
    data.set([action === 1 ? 1 : 0, total / 10, rng.uniform()], r * 3);
    context.push({ env: 'planted', level: 0, episode: r, step: 0, action, labels: { total } });
  }
  await writeActivationStore(join(dir, 'store'), { data, rows, d: 3 }, { hook: 'h' }, context);
  const eye = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const cfg = saeConfig({ architecture: 'standard', d_in: 3, d_sae: 3, normalize_activations: 'none' });
  const params = new Map([
    ['W_enc', eye],
    ['b_enc', new Float32Array(3)],
    ['W_dec', eye],
    ['b_dec', new Float32Array(3)],
  ]);
  await saveSaeLens(join(dir, 'sae'), { cfg, params, metadata: { hook_name: 'h' } });
}

describe('rlmesh analyze features', () => {
  it('refuses bad arguments in one line with exit 2', async () => {
    await planted();
    const base = ['analyze', 'features', '--sae', join(dir, 'sae'), '--activations', join(dir, 'store'), '--out', join(dir, 'o')];
    const cases: [string[], RegExp][] = [
      [['analyze'], /^rlmesh: analyze needs a sub-command \(features/],
      [['analyze', 'features', '--sae', 'x'], /^rlmesh: analyze features: --activations is required$/],
      [[...base, '--bogus', '1'], /^rlmesh: analyze features: unknown option --bogus/],
      [[...base, '--positions', 'first'], /--positions must be all or last/],
      [[...base, '--examples', '-1'], /--examples: must be an integer/],
      [
        [...base, '--state', 'labels.colour'],
        /^rlmesh: analyze features: analysis: state labels.colour: none of the store's first 600 rows has it$/,
      ],
      [[...base, '--positions', 'last'], /positions last: the store rows are not token positions/],
      [
        ['analyze', 'features', '--sae', join(dir, 'nope'), '--activations', join(dir, 'store'), '--out', dir],
        /^rlmesh: analyze features: --sae .*nope: /,
      ],
      [[...base, '--ood', `x=${join(dir, 'missing')}`], /^rlmesh: analyze features: --ood x: .*does not exist/],
    ];
    for (const [argv, want] of cases) {
      const io = captureConsole();
      expect(await main(argv), argv.join(' ')).toBe(2);
      expect(io.err, argv.join(' ')).toHaveLength(1);
      expect(io.err[0]).toMatch(want);
      vi.restoreAllMocks();
    }
  });

  it('writes features.json and features.html and prints the headlines', async () => {
    await planted();
    const out = join(dir, 'out');
    const io = captureConsole();
    const argv = ['analyze', 'features', '--sae', join(dir, 'sae'), '--activations', join(dir, 'store'), '--out', out];
    expect(await main([...argv, '--ood', `same=${join(dir, 'store')}`, '--compare', join(dir, 'sae')])).toBe(0);
    expect(io.out[1]).toMatch(/^I\(z; a \| s\) bits \(state level: 1 values, action action: 3; H\(A\|S\) 1\.\d+\): f0 0\.9/);
    expect(io.out.some((l) => /^ {2}total: f1 r 1\.000$/.test(l))).toBe(true);
    expect(io.out.some((l) => /^OOD same: 0\/3 features change density by > 2x \(stable fraction 1\.000\)$/.test(l))).toBe(true);
    expect(io.out.some((l) => /one-to-one \(hungarian\) 1\.000/.test(l))).toBe(true);
    const report = JSON.parse(readFileSync(join(out, 'features.json'), 'utf8'));
    expect(report.features).toHaveLength(3);
    expect(report.mutual_information.estimator).toMatch(/Miller-Madow/);
    expect(existsSync(join(out, 'features.html'))).toBe(true);
    expect(readFileSync(join(out, 'features.html'), 'utf8')).toContain('I(z; a | s)');
  });
});
