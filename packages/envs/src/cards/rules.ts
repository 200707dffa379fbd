/**
 * The card-rule scoring game's rule space. A hand is a list of cards (a colour and a value); a rule
 * is an aggregate (which cards count, and with which sign) read out one of three ways:
 *
 *   aggregate   colour_sum(C)  sum of the C cards
 *               total          sum of all cards
 *               add_sub(A, B)  sum of the A cards minus sum of the B cards ("add red, subtract blue")
 *   readout     number         the aggregate itself
 *               threshold(K)   BIG if the aggregate is greater than K, otherwise SMALL
 *               parity         EVEN or ODD by the aggregate's parity
 *
 * A rule family is one (readout, aggregate) cell; compositions are the cells whose readout is not
 * `number`. Evaluating a rule yields the answer and the intermediate labels a probe or a circuit
 * analysis needs: per-colour sums, which cards the rule selected (and their signs), the aggregate
 * ("total") and the final label.
 */

export const ID_COLOURS = ['RED', 'BLUE', 'GREEN'] as const;
/** Never on a card or in a rule outside the unseen-colour split. */
export const UNSEEN_COLOUR = 'YELLOW';

export interface Card {
  colour: string;
  value: number;
}

export type Aggregate = { kind: 'colour_sum'; colour: string } | { kind: 'total' } | { kind: 'add_sub'; add: string; sub: string };
export type Readout = { kind: 'number' } | { kind: 'threshold'; k: number } | { kind: 'parity' };

export interface Rule {
  aggregate: Aggregate;
  readout: Readout;
}

export const AGGREGATES = ['colour_sum', 'total', 'add_sub'] as const;
export const READOUTS = ['number', 'threshold', 'parity'] as const;
export type AggregateKind = (typeof AGGREGATES)[number];
export type ReadoutKind = (typeof READOUTS)[number];

/** A family is one (readout, aggregate) cell; the bare aggregate's name when the readout is `number`. */
export function familyOf(readout: ReadoutKind, aggregate: AggregateKind): string {
  return readout === 'number' ? aggregate : `${readout}_${aggregate}`;
}

export const ALL_FAMILIES: readonly { readout: ReadoutKind; aggregate: AggregateKind; family: string }[] = READOUTS.flatMap((readout) =>
  AGGREGATES.map((aggregate) => ({ readout, aggregate, family: familyOf(readout, aggregate) })),
);

export interface CardLabels {
  /** Sum of the values of each colour of the palette (0 for a colour with no card). */
  colour_sums: Record<string, number>;
  /** Per card: 1 when the rule's aggregate reads it, else 0. */
  selected: number[];
  /** Per card: +1 added, -1 subtracted, 0 ignored. */
  sign: number[];
  /** The aggregate's value (what the readout reads). */
  total: number;
  /** The final answer. */
  label: string;
}

export function signOf(agg: Aggregate, colour: string): number {
  switch (agg.kind) {
    case 'total':
      return 1;
    case 'colour_sum':
      return colour === agg.colour ? 1 : 0;
    case 'add_sub':
      return colour === agg.add ? 1 : colour === agg.sub ? -1 : 0;
  }
}

export function aggregateValue(agg: Aggregate, cards: readonly Card[]): number {
  let v = 0;
  for (const c of cards) v += signOf(agg, c.colour) * c.value;
  return v;
}

export function readoutLabel(readout: Readout, v: number): string {
  switch (readout.kind) {
    case 'number':
      return String(v);
    case 'threshold':
      return v > readout.k ? 'BIG' : 'SMALL';
    case 'parity':
      return v % 2 === 0 ? 'EVEN' : 'ODD';
  }
}

/** The rule's answer and every intermediate label, for `palette`'s colours. */
export function evaluateRule(rule: Rule, cards: readonly Card[], palette: readonly string[]): CardLabels {
  const colour_sums = Object.fromEntries(palette.map((c) => [c, 0]));
  for (const c of cards) colour_sums[c.colour] = (colour_sums[c.colour] ?? 0) + c.value;
  const sign = cards.map((c) => signOf(rule.aggregate, c.colour));
  const total = aggregateValue(rule.aggregate, cards);
  return { colour_sums, selected: sign.map((s) => (s === 0 ? 0 : 1)), sign, total, label: readoutLabel(rule.readout, total) };
}

/** The colours a rule's text names. */
export function ruleColours(agg: Aggregate): string[] {
  return agg.kind === 'colour_sum' ? [agg.colour] : agg.kind === 'add_sub' ? [agg.add, agg.sub] : [];
}
