/**
 * Datasets of the card game from one seed: train and val from the id split, and a test set per split
 * (test_id, test_ood_*). Each set draws from its own generator forked from the seed in a fixed
 * order, so a test set does not change when the train size does. Test sets are drawn first; val
 * skips every test prompt and train every test and val prompt, so no ID prompt is in two sets. The
 * OOD sets cannot meet train by construction (tested). Within a set prompts are unique except in
 * train, which is a sample of the training distribution.
 */
import { Rng } from '@rlmesh/core';
import type { CompletionStyle } from './prompts';
import { type CardExample, drawExample, SPLITS, type SplitName } from './splits';

export interface CardsDatasetOptions {
  seed: number;
  nTrain: number;
  nVal: number;
  /** Examples in each test set. */
  nTest: number;
  /** The completions' form (prompts, answers and labels do not depend on it); default `answer`. */
  completion?: CompletionStyle;
}

export interface CardsDataset {
  name: string;
  split: SplitName;
  examples: CardExample[];
}

/** The sets in the order they are drawn (and their generators forked). */
export const DATASET_SETS: readonly { name: string; split: SplitName }[] = [
  ...SPLITS.map((split) => ({ name: `test_${split}`, split })),
  { name: 'val', split: 'id' },
  { name: 'train', split: 'id' },
];

// A set stops early only if its split runs out of unseen prompts, which these sizes never reach.
const MAX_ATTEMPTS_PER_EXAMPLE = 50;

function drawSet(
  rng: Rng,
  split: SplitName,
  n: number,
  exclude: Set<string>,
  unique: boolean,
  name: string,
  style: CompletionStyle,
): CardExample[] {
  const out: CardExample[] = [];
  const own = new Set<string>();
  for (let attempts = 0; out.length < n; attempts++) {
    if (attempts > n * MAX_ATTEMPTS_PER_EXAMPLE)
      throw new Error(`${name}: found only ${out.length} of ${n} prompts of split ${split} not used by another set`);
    const ex = drawExample(rng, split, style);
    if (exclude.has(ex.prompt) || (unique && own.has(ex.prompt))) continue;
    own.add(ex.prompt);
    out.push(ex);
  }
  return out;
}

export function buildCardsDatasets(o: CardsDatasetOptions): CardsDataset[] {
  const root = new Rng(o.seed);
  const rngs = DATASET_SETS.map(() => root.fork());
  const idPrompts = new Set<string>();
  return DATASET_SETS.map(({ name, split }, i) => {
    const n = name === 'train' ? o.nTrain : name === 'val' ? o.nVal : o.nTest;
    const examples = drawSet(rngs[i], split, n, split === 'id' ? idPrompts : new Set(), name !== 'train', name, o.completion ?? 'answer');
    if (split === 'id') for (const ex of examples) idPrompts.add(ex.prompt);
    return { name, split, examples };
  });
}

/** One JSONL line: what SFT reads (prompt, completion) and what analysis reads (answer, labels, rule). */
export function exampleRecord(ex: CardExample): Record<string, unknown> {
  return {
    prompt: ex.prompt,
    completion: ex.completion,
    answer: ex.answer,
    split: ex.split,
    family: ex.family,
    rule: { ...ex.rule, text: ex.rule_text, template: ex.template },
    cards: ex.cards,
    labels: ex.labels,
  };
}
