/**
 * A storyworld: characters, encounters joined by options, and endings. The JSON is kept compact
 * (one-letter keys, short ids) so a small model trained from scratch can write one whole:
 *
 *   {"c":["Ana","Bo"],                         characters: 1-6 unique names
 *    "s":"e0",                                 the start encounter's id
 *    "e":[{"id":"e0","w":"Ana","t":"the old oak",    encounters: id, who is met (a character), text
 *          "o":[{"to":"e1","c":"Bo","d":1},          options: where they lead, and optionally a
 *               {"to":"e2"}]},                        consequence: character c's standing changes by d
 *         {"id":"e1", ...}, ...],
 *    "n":["e2"]}                               the endings: encounters with no options
 *
 * canonicalWorld writes exactly this key order without whitespace: the form the synthetic data uses.
 */

export interface StoryOption {
  to: string;
  /** The character the consequence touches, with `d`; both or neither. */
  c?: string;
  d?: number;
}

export interface Encounter {
  id: string;
  w: string;
  t: string;
  o: StoryOption[];
}

export interface Storyworld {
  c: string[];
  s: string;
  e: Encounter[];
  n: string[];
}

/** The bounds the schema component checks. */
export const WORLD_LIMITS = {
  characters: [1, 6],
  encounters: [1, 8],
  options: [0, 4],
  nameChars: 16,
  textChars: 40,
  delta: 3,
} as const;

/** The world's JSON with the schema's key order and no whitespace. */
export function canonicalWorld(w: Storyworld): string {
  return JSON.stringify({
    c: w.c,
    s: w.s,
    e: w.e.map((x) => ({
      id: x.id,
      w: x.w,
      t: x.t,
      o: x.o.map((o) => (o.c === undefined ? { to: o.to } : { to: o.to, c: o.c, d: o.d })),
    })),
    n: w.n,
  });
}
