/**
 * CardRules: the card game as a text environment. Reset draws an example of the configured split
 * and shows its prompt; a step scores the completion with the verifier (reward components correct
 * and format). One completion ends the episode unless max_episode_steps allows retries, which end at
 * the first correct answer.
 *
 * RL on the id split must not train on the evaluation prompts: with holdout_seed set, the env
 * never shows a prompt of the val or test sets that `rlmesh data cards --seed <holdout_seed>`
 * (with the same --n-val / --n-test) writes.
 */
import { DEFAULT_MAX_COMPLETION_BYTES, type Rng, type Schema, TextEnv, type TextEnvSpec, type TextTask, type Verdict } from '@rlmesh/core';
import { buildCardsDatasets } from './dataset';
import { type CardExample, drawExample, SPLITS, type SplitName } from './splits';
import { CARD_REWARDS, verifyAnswer } from './verify';

export type CardProblem = CardExample;

export class CardRulesTask implements TextTask<CardProblem> {
  readonly name = 'CardRules';
  readonly rewardComponents = CARD_REWARDS;
  readonly numLevels = 1;
  constructor(
    readonly split: SplitName,
    private readonly holdout: ReadonlySet<string> = new Set(),
  ) {}
  draw(rng: Rng): CardProblem {
    for (let i = 0; ; i++) {
      const ex = drawExample(rng, this.split);
      if (!this.holdout.has(ex.prompt)) return ex;
      if (i > 1000) throw new Error(`CardRules: split ${this.split} seems to hold nothing outside the held-out prompts`);
    }
  }
  verify(problem: CardProblem, completion: string): Verdict {
    return verifyAnswer(completion, problem.answer, problem.rule.readout.kind);
  }
}

const HOLDOUTS = new Map<string, ReadonlySet<string>>();

/** The val and test prompts of the datasets drawn from `seed` (every split's), built once per process. */
export function heldOutPrompts(seed: number, nVal: number, nTest: number): ReadonlySet<string> {
  const key = `${seed}/${nVal}/${nTest}`;
  let set = HOLDOUTS.get(key);
  if (!set) {
    const sets = buildCardsDatasets({ seed, nTrain: 0, nVal, nTest }).filter((s) => s.name !== 'train');
    set = new Set(sets.flatMap((s) => s.examples.map((e) => e.prompt)));
    HOLDOUTS.set(key, set);
  }
  return set;
}

const CARD_OPTIONS = {
  split: { kind: 'string', default: 'id', oneOf: SPLITS, doc: 'which split episodes are drawn from' },
  max_episode_steps: { kind: 'int', default: 1, min: 1, max: 16, doc: 'answers allowed per episode; a correct one ends it' },
  max_completion_bytes: {
    kind: 'int',
    default: DEFAULT_MAX_COMPLETION_BYTES,
    min: 1,
    max: 1 << 20,
    doc: 'longest completion accepted, in UTF-8 bytes; longer ones are refused',
  },
  holdout_seed: {
    kind: 'int',
    default: -1,
    min: -1,
    max: 2 ** 32 - 1,
    doc: 'never show the val/test prompts of this dataset seed (-1: none)',
  },
  holdout_n_val: { kind: 'int', default: 500, min: 0, max: 100_000, doc: '--n-val of the held-out datasets' },
  holdout_n_test: { kind: 'int', default: 1000, min: 0, max: 100_000, doc: '--n-test of the held-out datasets' },
} as const satisfies Schema;

export const cardRules: TextEnvSpec<typeof CARD_OPTIONS> = {
  id: 'CardRules',
  description: 'the card-rule scoring game: a rule and a hand of cards in, the answer out (text)',
  options: CARD_OPTIONS,
  make: (o) => {
    const holdout = o.holdout_seed >= 0 ? heldOutPrompts(o.holdout_seed, o.holdout_n_val, o.holdout_n_test) : undefined;
    return new TextEnv(new CardRulesTask(o.split, holdout), o.max_episode_steps, o.max_completion_bytes);
  },
};
