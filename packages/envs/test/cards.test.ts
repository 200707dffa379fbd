import { ConfigError, isTextEnv, makeTextEnv, Rng, registerTextEnv, TextInputError, textEnvIds } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import {
  buildCardsDatasets,
  type CardExample,
  CardRulesTask,
  drawExample,
  evaluateRule,
  formatPrompt,
  formatWorkedCompletion,
  HELD_OUT_FAMILIES,
  heldOutPrompts,
  ID_COLOURS,
  parseAnswer,
  type Rule,
  ruleText,
  SPLIT_SPECS,
  SPLITS,
  TEMPLATES,
  testSet,
  UNSEEN_COLOUR,
  verifyAnswer,
} from '../src';

const sets = buildCardsDatasets({ seed: 11, nTrain: 3000, nVal: 300, nTest: 300 });
const byName = Object.fromEntries(sets.map((s) => [s.name, s.examples]));
const ID_SETS = ['train', 'val', 'test_id'];

/** Reads the hand back out of a prompt, independently of the generator's card list. */
function cardsOf(prompt: string): { colour: string; value: number }[] {
  const m = /\nCards:\n([\s\S]*)\n\nAnswer:$/.exec(prompt);
  if (!m) throw new Error(`not a card prompt: ${prompt}`);
  return m[1].split('\n').map((line) => {
    const [colour, value] = line.split(' ');
    return { colour, value: Number(value) };
  });
}

/** The answer from first principles: a direct reading of the rule, written apart from rules.ts. */
function solve(rule: Rule, cards: { colour: string; value: number }[]): string {
  const a = rule.aggregate;
  let v = 0;
  for (const c of cards) {
    if (a.kind === 'total') v += c.value;
    else if (a.kind === 'colour_sum' && c.colour === a.colour) v += c.value;
    else if (a.kind === 'add_sub' && c.colour === a.add) v += c.value;
    else if (a.kind === 'add_sub' && c.colour === a.sub) v -= c.value;
  }
  if (rule.readout.kind === 'threshold') return v > rule.readout.k ? 'BIG' : 'SMALL';
  if (rule.readout.kind === 'parity') return Math.abs(v) % 2 === 0 ? 'EVEN' : 'ODD';
  return String(v);
}

/** Rule text with colours and numbers blanked: what a template contributes. */
const skeleton = (ex: CardExample) => ex.rule_text.replace(/\b(RED|BLUE|GREEN|YELLOW)\b/g, 'C').replace(/\d+/g, 'K');

describe('card game: rules and labels', () => {
  it('writes the prompt in the documented format', () => {
    const rule: Rule = { aggregate: { kind: 'add_sub', add: 'RED', sub: 'BLUE' }, readout: { kind: 'number' } };
    const cards = [
      { colour: 'RED', value: 3 },
      { colour: 'BLUE', value: 5 },
      { colour: 'GREEN', value: 2 },
      { colour: 'RED', value: 4 },
    ];
    expect(formatPrompt(ruleText('train', rule, 4), cards)).toBe(
      'Rule: Add the RED cards and subtract the BLUE cards.\nCards:\nRED 3\nBLUE 5\nGREEN 2\nRED 4\n\nAnswer:',
    );
    expect(evaluateRule(rule, cards, ID_COLOURS)).toEqual({
      colour_sums: { RED: 7, BLUE: 5, GREEN: 2 },
      selected: [1, 1, 0, 1],
      sign: [1, -1, 0, 1],
      total: 2,
      label: '2',
    });
    const big: Rule = { aggregate: { kind: 'total' }, readout: { kind: 'threshold', k: 13 } };
    expect(evaluateRule(big, cards, ID_COLOURS).label).toBe('BIG');
    expect(evaluateRule({ ...big, readout: { kind: 'threshold', k: 14 } }, cards, ID_COLOURS).label).toBe('SMALL');
    expect(evaluateRule({ aggregate: { kind: 'colour_sum', colour: 'BLUE' }, readout: { kind: 'parity' } }, cards, ID_COLOURS).label).toBe(
      'ODD',
    );
  });

  it('gives every example the answer a direct reading of its prompt gives, and consistent labels', () => {
    for (const { examples } of sets) {
      for (const ex of examples.slice(0, 300)) {
        const cards = cardsOf(ex.prompt);
        expect(cards).toEqual(ex.cards);
        expect(ex.answer).toBe(solve(ex.rule, cards));
        expect(ex.completion).toBe(` ${ex.answer}`);
        expect(ex.labels.label).toBe(ex.answer);
        expect(ex.labels.selected).toHaveLength(cards.length);
        const colourTotal = Object.values(ex.labels.colour_sums).reduce((a, b) => a + b, 0);
        expect(colourTotal).toBe(cards.reduce((a, c) => a + c.value, 0));
        expect(ex.labels.sign.reduce((a, s, i) => a + s * cards[i].value, 0)).toBe(ex.labels.total);
        expect(ex.prompt.startsWith(`Rule: ${ex.rule_text}\nCards:\n`)).toBe(true);
      }
    }
  });

  it('balances BIG/SMALL and EVEN/ODD in the training set', () => {
    const count = (label: string) => byName.train.filter((e) => e.answer === label).length;
    for (const [a, b] of [
      ['BIG', 'SMALL'],
      ['EVEN', 'ODD'],
    ]) {
      const share = count(a) / (count(a) + count(b));
      expect(share).toBeGreaterThan(0.4);
      expect(share).toBeLessThan(0.6);
    }
  });
});

describe('card game: datasets and splits', () => {
  it('is deterministic from the seed, and test sets do not depend on the train size', () => {
    const again = buildCardsDatasets({ seed: 11, nTrain: 3000, nVal: 300, nTest: 300 });
    expect(again).toEqual(sets);
    const other = buildCardsDatasets({ seed: 12, nTrain: 10, nVal: 10, nTest: 10 });
    expect(other.find((s) => s.name === 'test_id')?.examples.map((e) => e.prompt)).not.toEqual(
      byName.test_id.slice(0, 10).map((e) => e.prompt),
    );
    const smaller = buildCardsDatasets({ seed: 11, nTrain: 5, nVal: 300, nTest: 300 });
    for (const s of smaller.filter((x) => x.name !== 'train')) expect(s.examples).toEqual(byName[s.name]);
    expect(sets.map((s) => [s.name, s.examples.length])).toEqual([...SPLITS.map((s) => [`test_${s}`, 300]), ['val', 300], ['train', 3000]]);
  });

  it('keeps every ID prompt in one set, and each test set free of repeats', () => {
    const seen = new Map<string, string>();
    for (const name of ID_SETS) {
      for (const ex of byName[name]) {
        const other = seen.get(ex.prompt);
        if (other !== undefined && other !== name) throw new Error(`prompt in ${other} and ${name}: ${ex.prompt}`);
        seen.set(ex.prompt, name);
      }
    }
    for (const s of sets.filter((x) => x.name !== 'train')) expect(new Set(s.examples.map((e) => e.prompt)).size).toBe(s.examples.length);
  });

  it('shifts each OOD split in exactly its named way', () => {
    const id = ID_SETS.flatMap((n) => byName[n]);
    const heldOut: readonly string[] = HELD_OUT_FAMILIES;
    // ID: trained families, colours, values, lengths and templates only
    for (const ex of id) {
      expect(heldOut).not.toContain(ex.family);
      expect(ex.prompt).not.toContain(UNSEEN_COLOUR);
      expect(ex.cards.every((c) => c.value >= 1 && c.value <= 9)).toBe(true);
      expect(ex.cards.length).toBeGreaterThanOrEqual(3);
      expect(ex.cards.length).toBeLessThanOrEqual(6);
    }
    const idFamilies = new Set(id.map((e) => e.family));
    expect(idFamilies.size).toBe(7);
    // composition: only held-out pairings, each of whose parts ID trains
    const comp = byName.test_ood_composition;
    expect(new Set(comp.map((e) => e.family))).toEqual(new Set(heldOut));
    for (const f of heldOut) {
      const [readout, aggregate] = [f.split('_')[0], f.slice(f.indexOf('_') + 1)];
      expect([...idFamilies].some((g) => g.startsWith(`${readout}_`))).toBe(true);
      expect(idFamilies).toContain(aggregate);
    }
    // values 10-19 on every card
    expect(byName.test_ood_values.every((e) => e.cards.every((c) => c.value >= 10 && c.value <= 19))).toBe(true);
    // colour: named by every rule and on at least one card
    for (const ex of byName.test_ood_colour) {
      expect(ex.rule_text).toContain(UNSEEN_COLOUR);
      expect(ex.cards.some((c) => c.colour === UNSEEN_COLOUR)).toBe(true);
    }
    // paraphrase: no template skeleton shared with ID
    const idSkeletons = new Set(id.map(skeleton));
    for (const ex of byName.test_ood_paraphrase) expect(idSkeletons.has(skeleton(ex))).toBe(false);
    // length: 9-12 cards
    expect(byName.test_ood_length.every((e) => e.cards.length >= 9 && e.cards.length <= 12)).toBe(true);
    // and each OOD split keeps the rest of the ID distribution
    for (const split of SPLITS.filter((s) => s !== 'id')) {
      const spec = SPLIT_SPECS[split];
      const changed = (['families', 'palette', 'values', 'cards', 'templates'] as const).filter(
        (k) => JSON.stringify(spec[k]) !== JSON.stringify(SPLIT_SPECS.id[k]),
      );
      expect(changed.length, `${split} changes ${changed.join(', ')}`).toBeLessThanOrEqual(split === 'ood_colour' ? 2 : 1);
    }
  });

  it('shares no template between the training and paraphrase sets', () => {
    const all = (set: 'train' | 'paraphrase') =>
      [...Object.values(TEMPLATES[set].aggregate), ...Object.values(TEMPLATES[set].readout), ...Object.values(TEMPLATES[set].whole)].flat();
    const train = new Set(all('train'));
    for (const t of all('paraphrase')) expect(train.has(t)).toBe(false);
  });
});

describe('card game: verifier', () => {
  it('parses the first token of the first non-blank line', () => {
    expect(parseAnswer(' 17')).toBe('17');
    expect(parseAnswer('\n\n -4\nRule: more')).toBe('-4');
    expect(parseAnswer(' 007.')).toBe('7');
    expect(parseAnswer(' big')).toBe('BIG');
    expect(parseAnswer(' 17abc')).toBeNull();
    expect(parseAnswer('   ')).toBeNull();
    expect(parseAnswer(' 99999999999999999999')).toBeNull();
  });

  it('rewards a correct parsed answer with 1, anything else with 0, and formats apart', () => {
    expect(verifyAnswer(' 17', '17', 'number')).toEqual({ reward: { correct: 1, format: 1 }, success: true, parsed: '17' });
    expect(verifyAnswer(' 17\nRule:', '17', 'number').reward).toEqual({ correct: 1, format: 0 });
    expect(verifyAnswer(' 18', '17', 'number').reward).toEqual({ correct: 0, format: 1 });
    expect(verifyAnswer(' BIG', '17', 'number').reward).toEqual({ correct: 0, format: 0 });
    expect(verifyAnswer(' Big', 'BIG', 'threshold').reward).toEqual({ correct: 1, format: 0 });
    expect(verifyAnswer(' EVEN', 'BIG', 'threshold').reward).toEqual({ correct: 0, format: 0 });
    for (const ex of byName.test_id.slice(0, 100)) {
      expect(verifyAnswer(ex.completion, ex.answer, ex.rule.readout.kind).reward).toEqual({ correct: 1, format: 1 });
      const wrong = /^-?\d+$/.test(ex.answer) ? String(Number(ex.answer) + 1) : ex.answer === 'BIG' ? 'SMALL' : 'BIG';
      expect(verifyAnswer(` ${wrong}`, ex.answer, ex.rule.readout.kind).reward.correct).toBe(0);
    }
  });

  it('parses the last token of a worked line and checks its shape, not its arithmetic', () => {
    expect(parseAnswer(' RED 3 = 3 - BLUE 2 = 1, ODD\nRule: more')).toBe('ODD');
    expect(parseAnswer(' - RED 3 = -3')).toBe('-3');
    expect(parseAnswer(' RED 3 = 3 + RED 5 = 8 > 7, big.')).toBe('BIG');
    expect(parseAnswer(' RED 3 = ')).toBeNull();
    expect(verifyAnswer(' none = 0, EVEN', 'EVEN', 'parity').reward).toEqual({ correct: 1, format: 1 });
    expect(verifyAnswer(' RED 3 = 4, EVEN', 'EVEN', 'parity').reward).toEqual({ correct: 1, format: 1 });
    expect(verifyAnswer(' RED 3 = 3, EVEN', 'ODD', 'parity').reward).toEqual({ correct: 0, format: 1 });
    expect(verifyAnswer(' RED 3 = 3 > 2, BIG', 'ODD', 'parity').reward).toEqual({ correct: 0, format: 0 });
    expect(verifyAnswer(' RED 3 = 3 + = 3', '3', 'number').reward).toEqual({ correct: 1, format: 0 });
    expect(verifyAnswer(' RED 3 = 3 + BLUE 4 = 9', '9', 'number').reward).toEqual({ correct: 1, format: 1 });
  });
});

describe('card game: worked completions', () => {
  const worked = buildCardsDatasets({ seed: 11, nTrain: 3000, nVal: 300, nTest: 300, completion: 'worked' });

  it('changes only the completions: the same prompts, answers and labels as the answer style', () => {
    for (const [i, s] of worked.entries()) {
      const plain = sets[i].examples;
      expect(s.examples.map((e) => [e.prompt, e.answer, e.labels])).toEqual(plain.map((e) => [e.prompt, e.answer, e.labels]));
    }
  });

  it('lists the selected cards in hand order with their signs and running totals, then the readout; the verifier takes it', () => {
    const rule: Rule = { aggregate: { kind: 'add_sub', add: 'RED', sub: 'BLUE' }, readout: { kind: 'threshold', k: 2 } };
    const cards = [
      { colour: 'BLUE', value: 2 },
      { colour: 'GREEN', value: 9 },
      { colour: 'RED', value: 7 },
    ];
    expect(formatWorkedCompletion(rule, cards, evaluateRule(rule, cards, ID_COLOURS))).toBe(' - BLUE 2 = -2 + RED 7 = 5 > 2, BIG');
    for (const s of worked)
      for (const ex of s.examples.slice(0, 200)) {
        const picked = ex.cards.filter((_, j) => ex.labels.selected[j] === 1);
        const steps = [...ex.completion.matchAll(/([-+] )?([A-Z]+) (\d+) = (-?\d+)/g)];
        expect(steps.map((m) => ({ colour: m[2], value: Number(m[3]) }))).toEqual(picked);
        let running = 0;
        for (const [j, m] of steps.entries()) {
          running += (m[1] === '- ' ? -1 : 1) * Number(m[3]);
          expect(Number(m[4])).toBe(running);
          if (j > 0) expect(m[1]).toBeDefined();
        }
        expect(ex.completion).toContain(`= ${ex.labels.total}`);
        expect(verifyAnswer(ex.completion, ex.answer, ex.rule.readout.kind).reward).toEqual({ correct: 1, format: 1 });
      }
  });
});

describe('CardRules text env', () => {
  it('draws the same prompt for the same seed and seeds only in reset', () => {
    const a = makeTextEnv('CardRules', { split: 'ood_length' });
    const b = makeTextEnv('CardRules', { split: 'ood_length' });
    const first = a.reset(5);
    expect(b.reset(5)).toBe(first);
    expect(a.reset()).not.toBe(first);
    expect(cardsOf(first).length).toBeGreaterThanOrEqual(9);
    expect(first).toBe(drawExample(new Rng(5), 'ood_length').prompt);
  });

  it('scores one completion, terminates, and refuses a step after the end', () => {
    const env = makeTextEnv('CardRules');
    env.reset(3);
    const answer = (env.current as CardExample).answer;
    expect(env.step(` ${answer}`)).toMatchObject({
      reward: { correct: 1, format: 1 },
      success: true,
      terminated: true,
      truncated: false,
      prompt: '',
    });
    expect(() => env.step(` ${answer}`)).toThrow(/call reset first/);
    env.reset(4);
    expect(env.step(' not an answer')).toMatchObject({
      reward: { correct: 0, format: 0 },
      success: false,
      terminated: true,
      parsed: 'NOT',
    });
  });

  it('allows retries up to max_episode_steps, ending at the first correct answer', () => {
    const env = makeTextEnv('CardRules', { max_episode_steps: 3 });
    const prompt = env.reset(8);
    const answer = (env.current as CardExample).answer;
    expect(env.step(' x')).toMatchObject({ terminated: false, prompt });
    expect(env.step(` ${answer}`)).toMatchObject({ terminated: true, success: true, prompt: '' });
    env.reset(8);
    for (let i = 0; i < 2; i++) expect(env.step(' x').terminated).toBe(false);
    expect(env.step(' x').terminated).toBe(true);
  });

  it('refuses empty, oversize and invalid completions naming the field, and keeps the episode', () => {
    const env = makeTextEnv('CardRules', { max_completion_bytes: 8 });
    env.reset(1);
    const refused = (c: string) => {
      try {
        env.step(c);
      } catch (e) {
        expect(e).toBeInstanceOf(TextInputError);
        return (e as Error).message;
      }
      throw new Error('expected a TextInputError');
    };
    expect(refused('')).toBe('completion: must not be empty');
    expect(refused(' 123456789')).toBe('completion: must be at most 8 UTF-8 bytes, got 10');
    expect(refused(' ééééé')).toBe('completion: must be at most 8 UTF-8 bytes, got 11');
    expect(refused(' 1\uD800')).toMatch(/^completion: must be valid Unicode/);
    expect(refused(' 1\uFFFD')).toMatch(/^completion: must be valid UTF-8/);
    expect(env.step(' 1').terminated).toBe(true);
  });

  it('never shows a held-out val or test prompt when holdout_seed is set', () => {
    const first = drawExample(new Rng(5), 'id');
    const task = new CardRulesTask('id', new Set([first.prompt]));
    expect(task.draw(new Rng(5)).prompt).not.toBe(first.prompt);
    expect(new CardRulesTask('id').draw(new Rng(5)).prompt).toBe(first.prompt);
    const held = heldOutPrompts(11, 300, 300);
    expect(held.size).toBe(300 + SPLITS.length * 300);
    for (const ex of [...byName.val, ...byName.test_id, ...byName.test_ood_length]) expect(held.has(ex.prompt)).toBe(true);
    const env = makeTextEnv('CardRules', { holdout_seed: 11, holdout_n_val: 300, holdout_n_test: 300 });
    for (let i = 0; i < 200; i++) expect(held.has(env.reset(i))).toBe(false);
  });

  it('shows the test set of test_seed by reset seed, the same lines rlmesh data cards writes', () => {
    // byName's test sets hold 300 examples of seed 11; a test set of 40 is their first 40.
    for (const split of ['id', 'ood_length'] as const) {
      const env = makeTextEnv('CardRules', { split, test_seed: 11, test_n: 40 });
      const want = byName[`test_${split}`].slice(0, 40);
      expect(Array.from({ length: 40 }, (_, i) => env.reset(i))).toEqual(want.map((e) => e.prompt));
      // Out of order too: the seed is the index, not a generator's state.
      expect(env.reset(7)).toBe(want[7].prompt);
      expect(env.step(want[7].completion)).toMatchObject({ success: true, reward: { correct: 1, format: 1 } });
    }
    // Built once per process: every env of a suite's wave shares the set rather than drawing it again.
    expect(testSet(11, 'ood_values', 40)).toBe(testSet(11, 'ood_values', 40));
    const env = makeTextEnv('CardRules', { test_seed: 11, test_n: 40 });
    expect(() => env.reset(40)).toThrow('reset seed 40: the id test set holds examples 0..39 (test_n)');
    expect(() => env.reset()).toThrow(/reset needs a seed/);
    expect(() => makeTextEnv('CardRules', { test_seed: 11, holdout_seed: 11 }, 'entries[2].env.options')).toThrow(
      new ConfigError(
        'entries[2].env.options.test_seed',
        'and holdout_seed exclude each other: the test set is what holdout_seed keeps out',
      ),
    );
  });

  it('replays from a snapshot', () => {
    const env = makeTextEnv('CardRules');
    env.reset(21);
    const saved = env.snapshot();
    const next = [env.step(' 1'), env.reset(), env.reset()];
    env.restore(saved);
    expect([env.step(' 1'), env.reset(), env.reset()]).toEqual(next);
  });

  it('registers once, in its own registry, under an id no numeric env has', () => {
    expect(textEnvIds()).toContain('CardRules');
    expect(isTextEnv('CardRules')).toBe(true);
    expect(isTextEnv('CartPole-v1')).toBe(false);
    const spec = { id: 'CartPole-v1', description: '', options: {}, make: () => makeTextEnv('CardRules') };
    expect(() => registerTextEnv(spec)).toThrow(/env "CartPole-v1" is already registered/);
    expect(() => registerTextEnv({ ...spec, id: 'CardRules' })).toThrow(/env "CardRules" is already registered/);
  });

  it('names a bad option', () => {
    expect(() => makeTextEnv('CardRules', { split: 'ood_moon' })).toThrow(ConfigError);
    expect(() => makeTextEnv('CardRules', { split: 'ood_moon' })).toThrow(/^env\.options\.split: must be one of id, ood_composition/);
    expect(() => makeTextEnv('Cards')).toThrow(/unknown text env "Cards"; known text envs: CardRules/);
  });
});
