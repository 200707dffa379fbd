/**
 * The learner's sequence algorithms on `llama` as on `gpt2`: an embedded GRPO run from a tiny Llama
 * directory (tiny-letters' task) raises the mean reward and writes Llama checkpoints; ppo_seq gives
 * the Llama a fresh value head and saves it beside the model.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCausalLmDirectory } from '../src/models/hf-causal-lm';
import { LlamaForCausalLM } from '../src/models/llama';
import type { UpdateRecord } from '../src/registry';
import { parseSequenceRunConfig } from '../src/run/sequence-config';
import { trainSequences } from '../src/run/sequence-run';
import { registerLettersEnv } from './tiny-letters';
import { tinyLlamaDir } from './tiny-llama';

registerLettersEnv('TinyLettersLlama');

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-llama-seq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const init = tinyLlamaDir(dir);

const lines = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as UpdateRecord);

describe('sequence algorithms with model llama', () => {
  it('grpo raises the mean reward and checkpoints a Llama directory', async () => {
    const cfg = parseSequenceRunConfig({
      run: { name: 'llama-grpo', seed: 3, out_dir: join(dir, 'runs') },
      env: { id: 'TinyLettersLlama' },
      init_from: await init,
      algo: {
        name: 'grpo',
        num_generations: 8,
        prompts_per_update: 4,
        micro_batch_size: 16,
        max_completion_length: 2,
        learning_rate: 1e-2,
        beta: 0.02,
        loss_type: 'dapo',
      },
      train: { total_updates: 24, threads: 1 },
    });
    const s = await trainSequences(cfg);
    const rows = lines(s.run_dir);
    const mean = (xs: UpdateRecord[]) => xs.reduce((a, r) => a + r.metrics.reward_mean, 0) / xs.length;
    const [first, last] = [mean(rows.slice(0, 4)), mean(rows.slice(-4))];
    expect(last, `reward ${first} -> ${last}`).toBeGreaterThan(first + 0.3);
    const config = JSON.parse(readFileSync(join(s.final_checkpoint, 'config.json'), 'utf8'));
    expect(config.model_type).toBe('llama');
    const back = await loadCausalLmDirectory(s.final_checkpoint);
    expect(back.model).toBeInstanceOf(LlamaForCausalLM);
  });

  it('ppo_seq trains a fresh value head on the Llama and saves it beside the model', async () => {
    const cfg = parseSequenceRunConfig({
      run: { name: 'llama-ppo', seed: 3, out_dir: join(dir, 'runs') },
      env: { id: 'TinyLettersLlama' },
      init_from: await init,
      algo: { name: 'ppo_seq', batch_size: 16, num_mini_batches: 2, micro_batch_size: 8, response_length: 2, learning_rate: 1e-2 },
      train: { total_updates: 3, threads: 1 },
    });
    const s = await trainSequences(cfg);
    const rows = lines(s.run_dir);
    expect(rows).toHaveLength(3);
    expect(Number.isFinite(rows[2].metrics.value_loss)).toBe(true);
    expect(existsSync(join(s.final_checkpoint, 'value_head.safetensors'))).toBe(true);
    expect(((await loadCausalLmDirectory(s.final_checkpoint)).model as LlamaForCausalLM).config.value_head).toBe(true);
  });
});
