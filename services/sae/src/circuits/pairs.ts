/**
 * Prompt pairs for activation patching. A pair is a source record whose activations are patched
 * into a target record's run; the two differ in one thing, and their answers differ, so the logit
 * difference between the two answers says how much of the source record's behaviour the patch carries.
 *   rule_colour      the rule's (first) colour changed to another colour of the palette
 *   card_value       one selected card's value changed (within its split's range) so the answer changes
 *   id_to_ood_values one selected card's value v raised to v + 10 (ood_values' 10-19): ID source, OOD target
 *   ood_values_to_id the same pairs the other way round
 * Source = clean, target = corrupted: patching clean activations into the corrupted run (denoising).
 * New records are written with the card game's own rules and templates (@rlmesh/envs), so their
 * prompts, answers, labels and completions (answer alone or worked, as the record's) are what
 * `rlmesh data cards` would write for them.
 */
import { Rng } from '@rlmesh/core';
import {
  type Aggregate,
  type Card,
  evaluateRule,
  formatCardCompletion,
  formatCompletion,
  formatPrompt,
  type Rule,
  ruleText,
  SPLIT_SPECS,
  type SplitName,
} from '@rlmesh/envs';
import type { CardRecord } from './examples';

export const PAIR_KINDS = ['rule_colour', 'card_value', 'id_to_ood_values', 'ood_values_to_id'] as const;
export type PairKind = (typeof PAIR_KINDS)[number];

export interface PromptPair {
  kind: PairKind;
  source: CardRecord;
  target: CardRecord;
}

function templateSet(rec: CardRecord) {
  return SPLIT_SPECS[rec.split as SplitName]?.templates ?? 'train';
}

/** The record `rec` would be with `rule` and `cards`, or null when its template cannot word the rule. */
function rewrite(rec: CardRecord, rule: Rule, cards: Card[], split = rec.split): CardRecord | null {
  const set = templateSet(rec);
  let text: string;
  try {
    // The original must be this template's wording, or the rewrite would change more than one thing.
    if (ruleText(set, rec.rule, rec.rule.template) !== rec.rule.text) return null;
    text = ruleText(set, rule, rec.rule.template);
  } catch {
    return null;
  }
  const labels = evaluateRule(rule, cards, Object.keys(rec.labels.colour_sums));
  // The rewrite keeps the record's completion style, so the two sides of a pair differ in one thing.
  const style = rec.completion === formatCompletion(rec.answer) ? 'answer' : 'worked';
  return {
    ...rec,
    prompt: formatPrompt(text, cards),
    completion: formatCardCompletion(style, rule, cards, labels),
    answer: labels.label,
    rule: { ...rule, text, template: rec.rule.template },
    cards,
    labels,
    split,
    line: 0,
  };
}

function otherColour(agg: Aggregate, palette: string[], rng: Rng): Aggregate[] {
  const named = agg.kind === 'colour_sum' ? [agg.colour] : agg.kind === 'add_sub' ? [agg.add, agg.sub] : [];
  const others = rng.shuffle(palette.filter((c) => !named.includes(c)));
  if (agg.kind === 'colour_sum') return others.map((colour) => ({ ...agg, colour }));
  if (agg.kind === 'add_sub') return others.map((add) => ({ ...agg, add }));
  return [];
}

function corruptRuleColour(rec: CardRecord, rng: Rng): CardRecord | null {
  for (const aggregate of otherColour(rec.rule.aggregate, Object.keys(rec.labels.colour_sums), rng)) {
    const r = rewrite(rec, { aggregate, readout: rec.rule.readout }, rec.cards);
    if (r && r.answer !== rec.answer) return r;
  }
  return null;
}

function corruptCardValue(rec: CardRecord, rng: Rng): CardRecord | null {
  const selected = rng.shuffle(rec.cards.map((_, i) => i).filter((i) => rec.labels.selected[i] === 1));
  // Values stay in the record's split's range (1-9, or 10-19 for ood_values), so only the value changes.
  const [lo, hi] = SPLIT_SPECS[rec.split as SplitName]?.values ?? [1, 9];
  const range = Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);
  for (const i of selected)
    for (const v of rng.shuffle(range.filter((v) => v !== rec.cards[i].value))) {
      const cards = rec.cards.map((c, j) => (j === i ? { ...c, value: v } : c));
      const r = rewrite(rec, rec.rule, cards);
      if (r && r.answer !== rec.answer) return r;
    }
  return null;
}

function raiseToOodValues(rec: CardRecord, rng: Rng): CardRecord | null {
  if (rec.split !== 'id') return null;
  for (const i of rng.shuffle(rec.cards.map((_, i) => i).filter((i) => rec.labels.selected[i] === 1))) {
    const cards = rec.cards.map((c, j) => (j === i ? { ...c, value: c.value + 10 } : c));
    const r = rewrite(rec, rec.rule, cards, 'ood_values');
    if (r && r.answer !== rec.answer) return r;
  }
  return null;
}

/** Up to `n` pairs of each kind from `records` (seeded); a record that admits no pair of a kind is skipped. */
export function buildPairs(records: readonly CardRecord[], n: number, seed: number): Record<PairKind, PromptPair[]> {
  const out: Record<PairKind, PromptPair[]> = { rule_colour: [], card_value: [], id_to_ood_values: [], ood_values_to_id: [] };
  const rng = new Rng(seed);
  for (const rec of rng.shuffle([...records])) {
    const colour = out.rule_colour.length < n ? corruptRuleColour(rec, rng) : null;
    if (colour) out.rule_colour.push({ kind: 'rule_colour', source: rec, target: colour });
    const value = out.card_value.length < n ? corruptCardValue(rec, rng) : null;
    if (value) out.card_value.push({ kind: 'card_value', source: rec, target: value });
    const ood = out.id_to_ood_values.length < n ? raiseToOodValues(rec, rng) : null;
    if (ood) {
      out.id_to_ood_values.push({ kind: 'id_to_ood_values', source: rec, target: ood });
      out.ood_values_to_id.push({ kind: 'ood_values_to_id', source: ood, target: rec });
    }
  }
  return out;
}
