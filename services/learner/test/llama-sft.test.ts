/**
 * `rlmesh sft` from a Llama directory (init_from): the run keeps the architecture, learns a copy
 * task (the completion repeats the prompt's letter; chance 1/26) to a high exact match, and its
 * checkpoint is a Llama directory that loads back. With a `lora` section only the adapters train,
 * the checkpoint holds the merged model and the PEFT adapter, and a resumed run ends where the
 * uninterrupted one does.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    let architecture = '';
    const summary = await runSft(cfg, { onStart: (s) => (architecture = s.architecture) });
    expect(architecture).toBe('Llama');
    expect(summary.eval.val.exact_match, JSON.stringify(summary.eval.val)).toBeGreaterThanOrEqual(0.9);
    const back = await loadCausalLmDirectory(summary.final_checkpoint);
    expect(back.model).toBeInstanceOf(LlamaForCausalLM);
  });

  it('with LoRA trains only the adapters (the loss falls), checkpoints merged model + PEFT adapter, resumes exactly', async () => {
    // The copy task's data again. A low-rank update learns its format but not the 26-way copy in
    // these steps (val loss about ln 26 / 3 on the letter): the test checks the mechanism, not the task.
    const data = join(dir, 'data');
    const cfg = (name: string) =>
      parseSftConfig({
        run: { name, seed: 0, out_dir: join(dir, 'runs') },
        init_from: join(dir, 'init'),
        lora: { r: 8, alpha: 16, target_modules: 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head' },
        data: { dir: data, train: 'train.jsonl', eval: 'val.jsonl' },
        train: {
          max_steps: 120,
          micro_batch_size: 16,
          lr: 2e-2,
          warmup_steps: 5,
          log_every: 20,
          eval_every: 0,
          checkpoint_every: 60,
          max_new_tokens: 2,
          threads: 1,
        },
      });
    const whole = await runSft(cfg('lora-whole'));
    const train = readFileSync(join(whole.run_dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.kind === 'train');
    const [first, last] = [train[0].metrics.loss, train.at(-1).metrics.loss];
    expect(last, `train loss ${first} -> ${last}`).toBeLessThan(first / 2);
    expect(existsSync(join(whole.final_checkpoint, 'adapter', 'adapter_config.json'))).toBe(true);
    const base = await loadCausalLmDirectory(join(dir, 'init'));
    const tuned = await loadCausalLmDirectory(whole.final_checkpoint);
    // Norms are not adapted: the merged model keeps them; the projections moved.
    expect([...(tuned.params.get('model.norm.weight') as Float32Array)]).toEqual([
      ...(base.params.get('model.norm.weight') as Float32Array),
    ]);
    expect(tuned.params.get('model.layers.0.self_attn.q_proj.weight')).not.toEqual(
      base.params.get('model.layers.0.self_attn.q_proj.weight'),
    );
    const resumed = await runSft(cfg('lora-whole'), { resumeFrom: join(dir, 'runs', 'lora-whole', 'checkpoints', 'step_60') });
    expect(resumed.eval.val.loss).toBeCloseTo(whole.eval.val.loss, 5);
  });
});
