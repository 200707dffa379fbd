/**
 * The fixture the sequence-algorithm run tests share: a text task (reward 1 when the completion
 * starts with a lower-case letter, about 1 in 10 for an untrained model) registered under the id a
 * test file names, and a fresh tiny GPT-2 with a BPE tokenizer trained on the prompts, saved as a
 * Hugging Face directory.
 */
import { join } from 'node:path';
import { type Rng, registerTextEnv, TextEnv, type TextProblem, type TextTask } from '@rlmesh/core';
import { Rng as GraphRng, initParameters } from '@rlmesh/graph';
import { saveTokenizer, trainBpe } from '@rlmesh/text';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel } from '../src/models/gpt2';
import { saveGpt2Directory } from '../src/models/hf-gpt2';

export const PROMPTS = ['Write a letter:', 'A letter, please:', 'Letter:'];

export function registerLettersEnv(id: string): void {
  const letters: TextTask<TextProblem> = {
    name: id,
    rewardComponents: ['correct'],
    numLevels: 1,
    draw: (rng: Rng) => ({ prompt: PROMPTS[rng.int(PROMPTS.length)] }),
    verify: (_p, completion) => {
      const ok = /^[a-z]/.test(completion);
      return { reward: { correct: ok ? 1 : 0 }, success: ok, parsed: completion.slice(0, 1) };
    },
  };
  registerTextEnv({ id, description: 'reward 1 for a completion starting with a-z', options: {}, make: () => new TextEnv(letters) });
}

/**
 * A 1-layer, 32-wide GPT-2 (context 32, no value head) and its tokenizer trained on `corpus`
 * (another task's prompts and replies), written to dir/init.
 */
export async function tinyGpt2Dir(dir: string, corpus: readonly string[] = PROMPTS): Promise<string> {
  const tok = trainBpe(corpus, { vocab_size: 264 });
  const config: Gpt2Config = {
    ...GPT2_124M,
    vocab_size: tok.vocabSize,
    n_positions: 32,
    n_embd: 32,
    n_layer: 1,
    n_head: 2,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
    pad_token_id: tok.padId ?? -1,
  };
  const out = join(dir, 'init');
  await saveGpt2Directory(out, config, initParameters(new Gpt2LMHeadModel(config), new GraphRng(1)));
  saveTokenizer(tok, out, { modelMaxLength: 32 });
  return out;
}
