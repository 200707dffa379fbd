/**
 * CardRules: the card game as a text environment. Reset draws an example of the configured split
 * and shows its prompt; a step scores the completion with the verifier (reward components correct
 * and format). One completion ends the episode unless max_episode_steps allows retries, which end at
 * the first correct answer.
 *
 * RL on the id split must not train on the evaluation prompts: with holdout_seed set, the env
 * never shows a prompt of the val or test sets that `rlmesh data cards --seed <holdout_seed>`
 * (with the same --n-val / --n-test) writes. Evaluation does the opposite: with test_seed set, the
 * episodes are exactly that seed's test set, in file order, which no training set holds.
 */
import {
  ConfigError,
  DEFAULT_MAX_COMPLETION_BYTES,
  type Rng,
  type Schema,
  TextEnv,
  type TextEnvSpec,
  type TextTask,
  type Verdict,
} from '@rlmesh/core';
import { buildCardsDatasets } from './dataset';
import { type CardExample, drawExample, SPLITS, type SplitName } from './splits';
import { CARD_REWARDS, verifyAnswer } from './verify';

export type CardProblem = CardExample;

export class CardRulesTask implements TextTask<CardProblem> {
  readonly name = 'CardRules';
  readonly rewardComponents = CARD_REWARDS;
  readonly numLevels = 1;
  /**
   * `tests`: the split's test set; episodes then show its examples by reset seed (seed i: example
   * i, line i + 1 of the file) instead of fresh draws.
   */
  constructor(
    readonly split: SplitName,
    private readonly holdout: ReadonlySet<string> = new Set(),
    private readonly tests: readonly CardExample[] | null = null,
  ) {}
  draw(rng: Rng, _level = 0, seed?: number): CardProblem {
    if (this.tests) {
      if (seed === undefined) throw new Error('CardRules with test_seed shows test example <seed>: reset needs a seed');
      const ex = this.tests[seed];
      if (!ex) throw new Error(`reset seed ${seed}: the ${this.split} test set holds examples 0..${this.tests.length - 1} (test_n)`);
      return ex;
    }
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

const TEST_SETS = new Map<string, readonly CardExample[]>();

/**
 * The first `n` examples of `split`'s test set drawn from dataset seed `seed`: the lines of
 * test_<split>.jsonl that `rlmesh data cards --seed <seed>` writes with any --n-test >= n (a test set
 * is drawn first from its own generator, so a smaller one is a prefix of a larger one). Built once
 * per process.
 */
export function testSet(seed: number, split: SplitName, n: number): readonly CardExample[] {
  const key = `${seed}/${n}`;
  if (!TEST_SETS.has(`${key}/${split}`))
    for (const s of buildCardsDatasets({ seed, nTrain: 0, nVal: 0, nTest: n }))
      if (s.name.startsWith('test_')) TEST_SETS.set(`${key}/${s.split}`, s.examples);
  return TEST_SETS.get(`${key}/${split}`) as readonly CardExample[];
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
  test_seed: {
    kind: 'int',
    default: -1,
    min: -1,
    max: 2 ** 32 - 1,
    doc: "episodes are this dataset seed's test set of the split: reset seed i shows example i (-1: fresh draws)",
  },
  test_n: { kind: 'int', default: 1000, min: 1, max: 100_000, doc: 'test examples available with test_seed (reset seeds 0..test_n-1)' },
} as const satisfies Schema;

export const cardRules: TextEnvSpec<typeof CARD_OPTIONS> = {
  id: 'CardRules',
  description: 'the card-rule scoring game: a rule and a hand of cards in, the answer out (text)',
  options: CARD_OPTIONS,
  make: (o) => {
    if (o.test_seed >= 0) {
      if (o.holdout_seed >= 0)
        throw new ConfigError('test_seed', 'and holdout_seed exclude each other: the test set is what holdout_seed keeps out');
      return new TextEnv(
        new CardRulesTask(o.split, undefined, testSet(o.test_seed, o.split, o.test_n)),
        o.max_episode_steps,
        o.max_completion_bytes,
      );
    }
    const holdout = o.holdout_seed >= 0 ? heldOutPrompts(o.holdout_seed, o.holdout_n_val, o.holdout_n_test) : undefined;
    return new TextEnv(new CardRulesTask(o.split, holdout), o.max_episode_steps, o.max_completion_bytes);
  },
};
