/**
 * `rlmesh sft` from a Llama directory (init_from): the run keeps the architecture, learns a copy
 * task (the completion repeats the prompt's letter; chance 1/26) to a high exact match, and its
 * checkpoint is a Llama directory that loads back.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCausalLmDirectory } from '../src/models/hf-causal-lm';
import { LlamaForCausalLM } from '../src/models/llama';
import { parseSftConfig } from '../src/sft/config';
import { runSft } from '../src/sft/run';
import { tinyLlamaDir } from './tiny-llama';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-llama-sft-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function copySet(n: number, seed: number): string {
  const rng = new Rng(seed);
  return `${Array.from({ length: n }, () => {
    const c = String.fromCharCode(97 + rng.int(26));
    return JSON.stringify({ prompt: `Letter ${c}:`, completion: ` ${c}` });
  }).join('\n')}\n`;
}

describe('rlmesh sft with a Llama', () => {
  it('fine-tunes a Llama directory and checkpoints a Llama directory', async () => {
    const data = join(dir, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'train.jsonl'), copySet(300, 1));
    writeFileSync(join(data, 'val.jsonl'), copySet(40, 2));
    const cfg = parseSftConfig({
      run: { name: 'llama-sft', seed: 0, out_dir: join(dir, 'runs') },
      init_from: await tinyLlamaDir(dir),
      data: { dir: data, train: 'train.jsonl', eval: 'val.jsonl' },
      train: {
        max_steps: 120,
        micro_batch_size: 16,
        lr: 1e-2,
        warmup_steps: 5,
        log_every: 20,
        eval_every: 0,
        max_new_tokens: 2,
        threads: 1,
      },
    });
    const summary = await runSft(cfg);
    expect(summary.eval.val.exact_match, JSON.stringify(summary.eval.val)).toBeGreaterThanOrEqual(0.9);
    const back = await loadCausalLmDirectory(summary.final_checkpoint);
    expect(back.model).toBeInstanceOf(LlamaForCausalLM);
  });
});
