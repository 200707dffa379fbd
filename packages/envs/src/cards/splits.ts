/**
 * The splits: one in-distribution split and five out-of-distribution ones, each differing from it in
 * one named way, so a drop in accuracy has one cause.
 *
 *   id               the training distribution: 7 families, training templates, RED/BLUE/GREEN,
 *                    values 1-9, 3-6 cards
 *   ood_composition  the two held-out compositions threshold_add_sub and parity_add_sub (each
 *                    readout and each aggregate is trained, the pairing is not)
 *   ood_values       card values 10-19
 *   ood_colour       the unseen colour YELLOW on cards and named by every rule
 *   ood_paraphrase   the held-out template set
 *   ood_length       9-12 cards
 *
 * Threshold rules draw their answer first (BIG or SMALL, evenly) and K near the aggregate (within
 * K_SPREAD), so the rule needs the exact aggregate and the labels stay balanced. K is never negative,
 * so no split shows a number form that training does not.
 */
import type { Rng } from '@rlmesh/core';
import { type CompletionStyle, formatCardCompletion, formatPrompt, ruleText, type TemplateSet, templateCount } from './prompts';
import {
  type Aggregate,
  type AggregateKind,
  ALL_FAMILIES,
  aggregateValue,
  type Card,
  type CardLabels,
  evaluateRule,
  ID_COLOURS,
  type Readout,
  type ReadoutKind,
  type Rule,
  ruleColours,
  UNSEEN_COLOUR,
} from './rules';

export const SPLITS = ['id', 'ood_composition', 'ood_values', 'ood_colour', 'ood_paraphrase', 'ood_length'] as const;
export type SplitName = (typeof SPLITS)[number];

/** The compositions no training split contains. */
export const HELD_OUT_FAMILIES = ['threshold_add_sub', 'parity_add_sub'] as const;
export const ID_FAMILIES = ALL_FAMILIES.filter((f) => !(HELD_OUT_FAMILIES as readonly string[]).includes(f.family));

export interface SplitSpec {
  name: SplitName;
  description: string;
  families: readonly { readout: ReadoutKind; aggregate: AggregateKind; family: string }[];
  /** Colours cards are drawn from. */
  palette: readonly string[];
  /** A colour every rule of the split must name, if any. */
  mustName?: string;
  values: readonly [number, number];
  cards: readonly [number, number];
  templates: TemplateSet;
}

const ID_SPEC: Omit<SplitSpec, 'name' | 'description'> = {
  families: ID_FAMILIES,
  palette: ID_COLOURS,
  values: [1, 9],
  cards: [3, 6],
  templates: 'train',
};

export const SPLIT_SPECS: Record<SplitName, SplitSpec> = {
  id: { ...ID_SPEC, name: 'id', description: 'the training distribution' },
  ood_composition: {
    ...ID_SPEC,
    name: 'ood_composition',
    description: 'held-out (readout, aggregate) pairings: threshold and parity of add_sub',
    families: ALL_FAMILIES.filter((f) => (HELD_OUT_FAMILIES as readonly string[]).includes(f.family)),
  },
  ood_values: { ...ID_SPEC, name: 'ood_values', description: 'card values 10-19', values: [10, 19] },
  ood_colour: {
    ...ID_SPEC,
    name: 'ood_colour',
    description: `the unseen colour ${UNSEEN_COLOUR}, on cards and named by every rule`,
    // Only families whose rule names a colour can name the unseen one.
    families: ID_FAMILIES.filter((f) => f.aggregate !== 'total'),
    palette: [...ID_COLOURS, UNSEEN_COLOUR],
    mustName: UNSEEN_COLOUR,
  },
  ood_paraphrase: { ...ID_SPEC, name: 'ood_paraphrase', description: 'rule text from the held-out template set', templates: 'paraphrase' },
  ood_length: { ...ID_SPEC, name: 'ood_length', description: '9-12 cards', cards: [9, 12] },
};

/** How far K may lie from the aggregate. */
export const K_SPREAD = 10;
const MAX_REDRAWS = 64;

export interface CardExample {
  split: SplitName;
  family: string;
  rule: Rule;
  rule_text: string;
  template: number;
  cards: Card[];
  prompt: string;
  completion: string;
  answer: string;
  labels: CardLabels;
}

const between = (rng: Rng, [lo, hi]: readonly [number, number]) => lo + rng.int(hi - lo + 1);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];

function drawAggregate(rng: Rng, kind: AggregateKind, spec: SplitSpec): Aggregate {
  if (kind === 'total') return { kind };
  const must = spec.mustName;
  if (kind === 'colour_sum') return { kind, colour: must ?? pick(rng, spec.palette) };
  const add = pick(rng, spec.palette);
  const sub = pick(
    rng,
    spec.palette.filter((c) => c !== add),
  );
  // The named colour takes the added or the subtracted side, evenly; the other side keeps its draw.
  if (must && add !== must && sub !== must) return rng.int(2) === 0 ? { kind, add: must, sub } : { kind, add, sub: must };
  return { kind, add, sub };
}

function drawCards(rng: Rng, spec: SplitSpec): Card[] {
  const cards = Array.from({ length: between(rng, spec.cards) }, () => ({
    colour: pick(rng, spec.palette),
    value: between(rng, spec.values),
  }));
  // A colour the split must test is on at least one card, or its rules would read an empty sum.
  const must = spec.mustName;
  if (must && !cards.some((c) => c.colour === must)) cards[rng.int(cards.length)].colour = must;
  return cards;
}

/** K for a threshold rule with the answer `big` on aggregate v, or null when none exists (v <= 0 and BIG). */
function drawK(rng: Rng, v: number, big: boolean): number | null {
  const lo = big ? Math.max(0, v - K_SPREAD) : Math.max(0, v);
  const hi = big ? v - 1 : v + K_SPREAD - 1;
  return hi < lo ? null : lo + rng.int(hi - lo + 1);
}

/** One example of `split`, every choice drawn from `rng` (the completion style draws nothing). */
export function drawExample(rng: Rng, split: SplitName, style: CompletionStyle = 'answer'): CardExample {
  const spec = SPLIT_SPECS[split];
  const f = pick(rng, spec.families);
  const aggregate = drawAggregate(rng, f.aggregate, spec);
  if (spec.mustName && !ruleColours(aggregate).includes(spec.mustName))
    throw new Error(`drawExample: ${split} rule does not name ${spec.mustName}`);
  const big = rng.int(2) === 0;
  let cards = drawCards(rng, spec);
  let readout: Readout;
  if (f.readout === 'threshold') {
    let k = drawK(rng, aggregateValue(aggregate, cards), big);
    for (let i = 0; k === null && i < MAX_REDRAWS; i++) {
      cards = drawCards(rng, spec);
      k = drawK(rng, aggregateValue(aggregate, cards), big);
    }
    // Some hands never reach BIG at K >= 0 (add_sub of a hand without the added colour); SMALL then.
    readout = { kind: 'threshold', k: k ?? (drawK(rng, aggregateValue(aggregate, cards), false) as number) };
  } else {
    readout = { kind: f.readout };
  }
  const rule: Rule = { aggregate, readout };
  const template = rng.int(templateCount(spec.templates, rule));
  const text = ruleText(spec.templates, rule, template);
  const labels = evaluateRule(rule, cards, spec.palette);
  return {
    split,
    family: f.family,
    rule,
    rule_text: text,
    template,
    cards,
    prompt: formatPrompt(text, cards),
    completion: formatCardCompletion(style, rule, cards, labels),
    answer: labels.label,
    labels,
  };
}
