/** Tiny GPT-2 directories for text-policy tests: random weights, a BPE tokenizer trained on card prompts. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCardsDatasets } from '@rlmesh/envs';
import { initParameters, Rng } from '@rlmesh/graph';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel, saveGpt2Directory } from '@rlmesh/learner';
import { saveTokenizer, trainBpe } from '@rlmesh/text';

/** Test sets of this dataset seed back the small suites below. */
export const CARD_SEED = 3;

/** A small cards suite: eight ID test examples and six from seeds 4..9 of the ood_values test set. */
export const CARDS_SUITE = `name: cards-small
entries:
  - { name: id, env: { id: CardRules, options: { split: id, test_seed: ${CARD_SEED}, test_n: 16 } }, episodes: 8 }
  - { name: values, env: { id: CardRules, options: { split: ood_values, test_seed: ${CARD_SEED}, test_n: 16 } }, episodes: 6, seed: 4, split: OOD }
`;

/**
 * Writes a random GPT-2 (one layer, 32 wide) with a tokenizer trained on card prompts and answers into
 * `dir`; `tokenizer: false` leaves the tokenizer out.
 */
export async function tinyGpt2Dir(dir: string, o: { nPositions?: number; tokenizer?: boolean } = {}): Promise<string> {
  const corpus = buildCardsDatasets({ seed: CARD_SEED, nTrain: 0, nVal: 0, nTest: 16 }).flatMap((s) =>
    s.examples.map((e) => e.prompt + e.completion),
  );
  const tok = trainBpe(corpus, { vocab_size: 300 });
  const n = o.nPositions ?? 256;
  const config: Gpt2Config = {
    ...GPT2_124M,
    vocab_size: tok.vocabSize,
    n_positions: n,
    n_embd: 32,
    n_layer: 1,
    n_head: 2,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
  };
  await saveGpt2Directory(dir, config, initParameters(new Gpt2LMHeadModel(config), new Rng(5)));
  if (o.tokenizer !== false) saveTokenizer(tok, dir, { modelMaxLength: n });
  return dir;
}

/** A tokenizer.json this library cannot run (a Unigram model) in `dir`. */
export function unknownTokenizer(dir: string): void {
  writeFileSync(
    join(dir, 'tokenizer.json'),
    JSON.stringify({ version: '1.0', model: { type: 'Unigram', vocab: [['a', 0]] }, added_tokens: [], pre_tokenizer: null }),
  );
}
