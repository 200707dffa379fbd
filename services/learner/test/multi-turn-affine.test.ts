/**
 * The Affine agent worlds (TextCraft, GridGoals, ShopSearch) through trainSequences: each is played
 * as conversations by the conversation collector, and one GRPO update and one ppo_seq update train
 * on their turns with finite losses, turns capped by env.max_turns. A tiny GPT-2 (context 1024) with
 * a tokenizer trained on the worlds' own prompts keeps it to seconds; what it learns is not the point.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTextEnv } from '@rlmesh/core';
import { Rng as GraphRng, initParameters } from '@rlmesh/graph';
import { saveTokenizer, trainBpe } from '@rlmesh/text';
import { afterAll, describe, expect, it } from 'vitest';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { saveGpt2Directory } from '../src/models/hf-gpt2';
import type { UpdateRecord } from '../src/registry';
import { parseSequenceRunConfig } from '../src/run/sequence-config';
import { trainSequences } from '../src/run/sequence-run';

const WORLDS = ['TextCraft', 'GridGoals', 'ShopSearch'];
const dir = mkdtempSync(join(tmpdir(), 'rlmesh-mt-affine-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function tinyGpt2(): Promise<string> {
  const corpus = WORLDS.flatMap((id) => Array.from({ length: 4 }, (_, s) => makeTextEnv(id).reset(s)));
  const tok = trainBpe(corpus, { vocab_size: 512 });
  const config: Gpt2Config = {
    ...GPT2_124M,
    vocab_size: tok.vocabSize,
    n_positions: 1024,
    n_embd: 32,
    n_layer: 1,
    n_head: 2,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
    pad_token_id: tok.padId ?? -1,
  };
  const out = join(dir, 'init');
  await saveGpt2Directory(out, config, initParameters(new Gpt2LMHeadModel(config), new GraphRng(2)));
  saveTokenizer(tok, out, { modelMaxLength: 1024 });
  return out;
}
const init = tinyGpt2();

const ALGOS: Record<string, Record<string, unknown>> = {
  grpo: { name: 'grpo', num_generations: 2, prompts_per_update: 2, micro_batch_size: 4, max_completion_length: 6, learning_rate: 1e-3 },
  ppo_seq: {
    name: 'ppo_seq',
    batch_size: 2,
    num_mini_batches: 2,
    micro_batch_size: 1,
    num_ppo_epochs: 1,
    response_length: 6,
    learning_rate: 1e-3,
  },
};

describe('multi-turn RL on the Affine worlds', () => {
  for (const id of WORLDS)
    for (const [name, algo] of Object.entries(ALGOS))
      it(`${id}: one ${name} update trains on every turn of its conversations`, async () => {
        const env = makeTextEnv(id);
        const weights = Object.fromEntries(env.rewardComponents.map((c) => [c, 1]));
        const cfg = parseSequenceRunConfig({
          run: { name: `${id}-${name}`, seed: 1, out_dir: join(dir, 'runs') },
          env: { id, max_turns: 3 },
          init_from: await init,
          algo: { ...algo, reward_weights: weights },
          train: { total_updates: 1, threads: 1 },
        });
        const s = await trainSequences(cfg);
        const [r] = readFileSync(join(s.run_dir, 'metrics.jsonl'), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as UpdateRecord);
        for (const k of ['loss', 'policy_loss', 'entropy', 'grad_norm']) expect(Number.isFinite(r.metrics[k]), k).toBe(true);
        // An untrained policy rarely finishes a world: most conversations run to the 3-turn cap.
        expect(r.metrics.episode_turns_mean).toBeGreaterThan(1);
        expect(r.metrics.episode_turns_mean).toBeLessThanOrEqual(3);
        expect(s.env_steps).toBeGreaterThan(s.episodes);
      }, 120_000);
});
