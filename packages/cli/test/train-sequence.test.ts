/**
 * `rlmesh train` with a text env: a config on CardRules runs GRPO from a GPT-2 directory to the end
 * (metrics lines, summary, a resumable Hugging Face checkpoint), resumes from that checkpoint, and
 * every bad input is one line and exit 2.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTextEnv, Rng } from '@rlmesh/core';
import '@rlmesh/envs';
import { initParameters } from '@rlmesh/graph';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel, saveGpt2Directory } from '@rlmesh/learner';
import { saveTokenizer, trainBpe } from '@rlmesh/text';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-grpo-cli-'));

afterEach(() => {
  vi.restoreAllMocks();
});

/** An untrained tiny GPT-2 with a BPE tokenizer trained on CardRules prompts, as a Hugging Face directory. */
async function initDir(): Promise<string> {
  const env = makeTextEnv('CardRules', { split: 'id' });
  const prompts = Array.from({ length: 200 }, (_, i) => env.reset(i));
  const tok = trainBpe([...prompts, ' 12', ' BIG', ' SMALL', ' EVEN', ' ODD'], { vocab_size: 400 });
  const config: Gpt2Config = {
    ...GPT2_124M,
    vocab_size: tok.vocabSize,
    n_positions: 160,
    n_embd: 16,
    n_layer: 1,
    n_head: 2,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
    pad_token_id: tok.padId ?? -1,
  };
  const out = join(dir, 'init');
  await saveGpt2Directory(out, config, initParameters(new Gpt2LMHeadModel(config), new Rng(0)));
  saveTokenizer(tok, out, { modelMaxLength: 160 });
  return out;
}

async function configFile(): Promise<string> {
  const file = join(dir, 'grpo.yaml');
  const cfg = {
    run: { name: 'g', seed: 1, out_dir: join(dir, 'runs') },
    env: { id: 'CardRules', options: { split: 'id' } },
    init_from: await initDir(),
    algo: { name: 'grpo', num_generations: 2, prompts_per_update: 2, micro_batch_size: 4, max_completion_length: 3, learning_rate: 1e-3 },
    train: { total_updates: 2, threads: 1 },
  };
  // YAML is a superset of JSON.
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}
const config = configFile();

describe('rlmesh train on a text env', () => {
  it('trains GRPO from a GPT-2 directory, then resumes from its checkpoint', async () => {
    const file = await config;
    const c = captureConsole();
    expect(await main(['train', file])).toBe(0);
    expect(c.out.join('\n')).toMatch(/grpo on CardRules .* 2 prompts x 2 completions per update, 2 updates/);
    const run = join(dir, 'runs', 'g');
    const ckpt = join(run, 'checkpoints', 'update_2');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'rl_state.json'])
      expect(existsSync(join(ckpt, f)), f).toBe(true);
    const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8'));
    expect(summary.updates).toBe(2);
    expect(summary.env_steps).toBe(8);
    expect(await main(['train', file, '--resume', ckpt, '--train.total_updates', '3'])).toBe(0);
    const lines = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).update)).toEqual([1, 2, 3]);
    expect(Object.keys(JSON.parse(lines[2]).metrics)).toEqual(expect.arrayContaining(['loss', 'kl', 'clip_ratio_region', 'reward_mean']));
  }, 60_000);

  it('refuses bad input in one line with exit 2', async () => {
    const file = await config;
    const cases: [string[], RegExp][] = [
      [['--algo.num_generations', '1'], /config error: algo\.num_generations: must be an integer >= 2/],
      [['--algo.micro_batch_size', '3'], /config error: algo\.micro_batch_size: must divide/],
      [['--algo.loss_type', 'bnpo'], /config error: algo\.loss_type/],
      [['--init_from', join(dir, 'nowhere')], /config error: init_from: .*nowhere/],
      [
        ['--algo.max_completion_length', '150'],
        /config error: algo\.max_completion_length: a prompt of \d+ tokens with 150 new ones exceeds/,
      ],
      [['--in-process-mesh'], /--in-process-mesh: a text env trains embedded \(rlmesh train <config>\) or with --mesh/],
      [['--resume', dir], /is not a checkpoint written by a sequence run/],
    ];
    for (const [args, expected] of cases) {
      const c = captureConsole();
      expect(await main(['train', file, ...args]), args.join(' ')).toBe(2);
      expect(c.err).toHaveLength(1);
      expect(c.err[0]).toMatch(expected);
      vi.restoreAllMocks();
    }
  }, 60_000);
});
