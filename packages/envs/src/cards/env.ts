/**
 * CardRules: the card game as a text environment. Reset draws an example of the configured split
 * and shows its prompt; a step scores the completion with the verifier (reward components correct
 * and format). One completion ends the episode unless max_episode_steps allows retries, which end at
 * the first correct answer.
 */
import { DEFAULT_MAX_COMPLETION_BYTES, type Rng, type Schema, TextEnv, type TextEnvSpec, type TextTask, type Verdict } from '@rlmesh/core';
import { type CardExample, drawExample, SPLITS, type SplitName } from './splits';
import { CARD_REWARDS, verifyAnswer } from './verify';

export type CardProblem = CardExample;

export class CardRulesTask implements TextTask<CardProblem> {
  readonly name = 'CardRules';
  readonly rewardComponents = CARD_REWARDS;
  readonly numLevels = 1;
  constructor(readonly split: SplitName) {}
  draw(rng: Rng): CardProblem {
    return drawExample(rng, this.split);
  }
  verify(problem: CardProblem, completion: string): Verdict {
    return verifyAnswer(completion, problem.answer, problem.rule.readout.kind);
  }
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
} as const satisfies Schema;

export const cardRules: TextEnvSpec<typeof CARD_OPTIONS> = {
  id: 'CardRules',
  description: 'the card-rule scoring game: a rule and a hand of cards in, the answer out (text)',
  options: CARD_OPTIONS,
  make: (o) => new TextEnv(new CardRulesTask(o.split), o.max_episode_steps, o.max_completion_bytes),
};
