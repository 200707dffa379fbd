/**
 * `rlmesh analyze circuits`: a missing checkpoint, data without labels, a hook the model lacks and
 * bad options are one line and exit 2; on a tiny GPT-2 it writes circuits.json and circuits.html and
 * prints the headlines.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCardsDatasets, exampleRecord } from '@rlmesh/envs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { tinyGpt2Dir } from '../../../services/evaluator/test/gpt2-fixture';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-analyze-circuits-'));
const data = join(dir, 'cards.jsonl');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

describe('rlmesh analyze circuits', () => {
  beforeAll(async () => {
    await tinyGpt2Dir(join(dir, 'gpt2'));
    const examples = buildCardsDatasets({ seed: 4, nTrain: 0, nVal: 0, nTest: 12 })[0].examples;
    writeFileSync(data, examples.map((e) => `${JSON.stringify(exampleRecord(e))}\n`).join(''));
    writeFileSync(join(dir, 'bare.jsonl'), `${JSON.stringify({ prompt: 'Rule: x', completion: ' 1', answer: '1' })}\n`);
  });

  it('refuses mistakes in one line with exit 2', async () => {
    const base = ['analyze', 'circuits', '--out', join(dir, 'out')];
    const cases: [string[], RegExp][] = [
      [[...base, '--data', data], /--checkpoint is required/],
      [[...base, '--checkpoint', join(dir, 'none'), '--data', data], /--checkpoint .*none: no such checkpoint directory/],
      [[...base, '--checkpoint', join(dir, 'gpt2'), '--data', join(dir, 'bare.jsonl')], /bare\.jsonl:1: "rule" must hold/],
      [
        [...base, '--checkpoint', join(dir, 'gpt2'), '--data', data, '--probe-hooks', 'blocks.3.hook_resid_post'],
        /no hook "blocks\.3\.hook_resid_post"/,
      ],
      [[...base, '--checkpoint', join(dir, 'gpt2'), '--data', data, '--ablation', 'half'], /--ablation must be mean or zero/],
      [[...base, '--checkpoint', join(dir, 'gpt2'), '--data', data, '--threshold', '2'], /--threshold: must be a number between 0 and 1/],
      [[...base, '--checkpoint', join(dir, 'gpt2'), '--data', data, '--layers', '2'], /unknown option --layers/],
    ];
    for (const [argv, want] of cases) {
      const { err } = captureConsole();
      expect(await main(argv)).toBe(2);
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(want);
      expect(err[0]).not.toContain('\n');
      vi.restoreAllMocks();
    }
  });

  it('writes the JSON and the page and prints the headlines', async () => {
    const out = join(dir, 'out');
    const { out: printed } = captureConsole();
    const argv = [
      'analyze',
      'circuits',
      '--checkpoint',
      join(dir, 'gpt2'),
      '--data',
      data,
      '--out',
      out,
      '--examples',
      '12',
      '--pairs',
      '3',
    ];
    expect(await main(argv)).toBe(0);
    expect(existsSync(join(out, 'circuits.html'))).toBe(true);
    const json = JSON.parse(readFileSync(join(out, 'circuits.json'), 'utf8'));
    expect(json.examples).toBe(12);
    expect(printed.join('\n')).toMatch(/clean exact match .* \(teacher-forced, 12 examples\)/);
    expect(printed.join('\n')).toMatch(/important heads/);
  });
});
