/**
 * Rule text and the prompt format. The prompt is
 *
 *   Rule: <rule text>
 *   Cards:
 *   RED 3
 *   BLUE 5
 *
 *   Answer:
 *
 * and the completion is either the answer alone after a space (" 7", " BIG"; style `answer`) or the work
 * that leads to it (style `worked`): the selected cards in hand order, each with its sign and the
 * running total after it, then the readout, as in
 *
 *    RED 3 = 3 + RED 5 = 8 - BLUE 2 = 6            number: the last total is the answer
 *    RED 3 = 3 + RED 5 = 8 > 7, BIG                threshold (BIG when the total is greater than K)
 *    - BLUE 4 = -4 <= 7, SMALL
 *    none = 0, EVEN                                parity (no card selected: the empty sum)
 *
 * The worked form writes out the intermediate labels a rule needs (which cards it reads, with which
 * sign, and the running sum), so a small model learns one step per token, each a copy or a one-digit
 * addition, instead of selecting, summing and reading out inside a single forward pass. Rule text is composed from an
 * aggregate phrase inside a readout sentence, so an unseen (readout, aggregate) composition is
 * written only with phrases the training rules use. Two template sets exist: the training set and a
 * held-out paraphrase set that shares no template with it (the paraphrase split uses only the latter).
 */
import { type Aggregate, type AggregateKind, type Card, type CardLabels, type ReadoutKind, type Rule, signOf } from './rules';

export type TemplateSet = 'train' | 'paraphrase';

interface Templates {
  /** Per aggregate: phrases with {C} (colour_sum), {A} and {B} (add_sub). */
  aggregate: Record<AggregateKind, readonly string[]>;
  /** Per readout: sentences with {agg} and {K} (threshold). */
  readout: Record<ReadoutKind, readonly string[]>;
  /** Whole-rule sentences for one (readout, aggregate) cell, drawn alongside the composed ones. */
  whole: Partial<Record<string, readonly string[]>>;
}

export const TEMPLATES: Record<TemplateSet, Templates> = {
  train: {
    aggregate: {
      colour_sum: ['the sum of the {C} cards', 'the total of the {C} cards'],
      total: ['the sum of all cards', 'the total of all cards'],
      add_sub: ['the sum of the {A} cards minus the sum of the {B} cards', 'the total of the {A} cards minus the total of the {B} cards'],
    },
    readout: {
      number: ['Answer with {agg}.', 'Give {agg}.'],
      threshold: ['Answer BIG if {agg} is greater than {K}, otherwise SMALL.', 'If {agg} is greater than {K} answer BIG, else SMALL.'],
      parity: ['Answer EVEN if {agg} is even, otherwise ODD.', 'If {agg} is even answer EVEN, else ODD.'],
    },
    whole: { add_sub: ['Add the {A} cards and subtract the {B} cards.'] },
  },
  paraphrase: {
    aggregate: {
      colour_sum: ['the combined value of the {C} cards', 'what the {C} cards add up to'],
      total: ['the combined value of every card', 'what all the cards add up to'],
      add_sub: ["the {A} cards' combined value less that of the {B} cards", 'what the {A} cards add up to, reduced by the {B} cards'],
    },
    readout: {
      number: ['Report {agg}.', 'Tell me {agg}.'],
      threshold: [
        'Say BIG when {agg} exceeds {K} and SMALL when it does not.',
        'Reply SMALL unless {agg} is above {K}, in which case reply BIG.',
      ],
      parity: ['Say ODD when {agg} is odd and EVEN when it is not.', 'Reply EVEN if {agg} divides by two, ODD if not.'],
    },
    whole: { add_sub: ['Count the {A} cards up and the {B} cards down.'] },
  },
};

function fillAggregate(t: string, agg: Aggregate): string {
  if (agg.kind === 'colour_sum') return t.replaceAll('{C}', agg.colour);
  if (agg.kind === 'add_sub') return t.replaceAll('{A}', agg.add).replaceAll('{B}', agg.sub);
  return t;
}

/** Every way `set` can word the rule's cell, as (readout sentence, aggregate phrase) pairs plus whole sentences. */
export function templateCount(set: TemplateSet, rule: Rule): number {
  const t = TEMPLATES[set];
  const cell = rule.readout.kind === 'number' ? rule.aggregate.kind : '';
  return t.readout[rule.readout.kind].length * t.aggregate[rule.aggregate.kind].length + (t.whole[cell]?.length ?? 0);
}

/** The rule's text in template `index` of `set` (0 <= index < templateCount). */
export function ruleText(set: TemplateSet, rule: Rule, index: number): string {
  const t = TEMPLATES[set];
  const readouts = t.readout[rule.readout.kind];
  const aggs = t.aggregate[rule.aggregate.kind];
  const composed = readouts.length * aggs.length;
  if (!Number.isInteger(index) || index < 0 || index >= templateCount(set, rule))
    throw new Error(`ruleText: template index ${index} out of range for ${rule.readout.kind}/${rule.aggregate.kind}`);
  if (index >= composed) {
    const whole = t.whole[rule.aggregate.kind] ?? [];
    return fillAggregate(whole[index - composed], rule.aggregate);
  }
  const sentence = readouts[Math.floor(index / aggs.length)];
  const phrase = fillAggregate(aggs[index % aggs.length], rule.aggregate);
  const k = rule.readout.kind === 'threshold' ? String(rule.readout.k) : '';
  return sentence.replace('{agg}', phrase).replaceAll('{K}', k);
}

export const PROMPT_SUFFIX = 'Answer:';

export function formatPrompt(text: string, cards: readonly Card[]): string {
  return `Rule: ${text}\nCards:\n${cards.map((c) => `${c.colour} ${c.value}`).join('\n')}\n\n${PROMPT_SUFFIX}`;
}

/** The training target for an answer: what follows "Answer:". */
export function formatCompletion(answer: string): string {
  return ` ${answer}`;
}

export const COMPLETION_STYLES = ['answer', 'worked'] as const;
export type CompletionStyle = (typeof COMPLETION_STYLES)[number];

/** The worked completion: the signed selected cards with running totals, then the readout (see the top of this file). */
export function formatWorkedCompletion(rule: Rule, cards: readonly Card[], labels: CardLabels): string {
  const steps: string[] = [];
  let total = 0;
  for (const c of cards) {
    const sign = signOf(rule.aggregate, c.colour);
    if (sign === 0) continue;
    total += sign * c.value;
    const op = sign < 0 ? '- ' : steps.length === 0 ? '' : '+ ';
    steps.push(`${op}${c.colour} ${c.value} = ${total}`);
  }
  const work = steps.length === 0 ? `none = ${labels.total}` : steps.join(' ');
  switch (rule.readout.kind) {
    case 'number':
      return ` ${work}`;
    case 'threshold':
      return ` ${work} ${labels.total > rule.readout.k ? '>' : '<='} ${rule.readout.k}, ${labels.label}`;
    case 'parity':
      return ` ${work}, ${labels.label}`;
  }
}

export function formatCardCompletion(style: CompletionStyle, rule: Rule, cards: readonly Card[], labels: CardLabels): string {
  return style === 'worked' ? formatWorkedCompletion(rule, cards, labels) : formatCompletion(labels.label);
}
