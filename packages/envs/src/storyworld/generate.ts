/**
 * Synthetic storyworlds and their prompts, drawn from a seed: the SFT data a small model learns the
 * format from, and the problems the env poses. A problem is a theme and three counts; the generator
 * builds a world that meets them and passes every verifier component (tested on thousands of seeds).
 *
 * Construction: encounters e0..e{E-1}, the last N of them endings (no options), the rest inner.
 * Each inner encounter after e0 hangs off an earlier inner one and each ending off some inner one,
 * so every encounter is reachable from e0; an inner encounter left without an option then gets one,
 * and a few extra options (forward or back, never to itself) make the graph more than a tree.
 */
import type { Rng } from '@rlmesh/core';
import type { StoryConstraints } from './verify';
import { type Encounter, type StoryOption, type Storyworld, WORLD_LIMITS } from './world';

export const THEMES: Record<string, readonly string[]> = {
  forest: ['the old oak', 'a dark path', 'the river bank', 'a hunter hut', 'the glade', 'a fallen log'],
  sea: ['the harbour', 'a storm deck', 'the reef', 'a sunken ship', 'the lighthouse', 'an island'],
  city: ['the market', 'a back alley', 'the tower', 'a tavern', 'the gate', 'the old bridge'],
  desert: ['the dunes', 'an oasis', 'a ruined fort', 'the caravan', 'a dry well', 'the salt flat'],
  castle: ['the great hall', 'a cellar', 'the throne', 'the armoury', 'a high wall', 'the chapel'],
};

export const NAMES = ['Ana', 'Bo', 'Cy', 'Dee', 'Eli', 'Fay', 'Gus', 'Hal', 'Ivy', 'Jon'] as const;

/** What a drawn problem holds: the prompt's theme and counts. */
export interface StoryPrompt extends StoryConstraints {
  theme: string;
}

/** The range of each count the generator and env draw from (within WORLD_LIMITS). */
export const COUNT_RANGES = { encounters: [3, 6], characters: [1, 3], endings: [1, 2] } as const;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function storyPromptText(p: StoryPrompt): string {
  return `Storyworld: ${p.theme}, ${plural(p.encounters, 'encounter')}, ${plural(p.characters, 'character')}, ${plural(p.endings, 'ending')}.\nJSON:`;
}

const between = (rng: Rng, [lo, hi]: readonly [number, number]) => lo + rng.int(hi - lo + 1);

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

/** k distinct items of xs in a random order. */
function sample<T>(rng: Rng, xs: readonly T[], k: number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, k);
}

export function drawStoryPrompt(rng: Rng): StoryPrompt {
  const theme = pick(rng, Object.keys(THEMES));
  const encounters = between(rng, COUNT_RANGES.encounters);
  const characters = between(rng, COUNT_RANGES.characters);
  // At least one inner encounter: the start cannot be an ending.
  const endings = Math.min(between(rng, COUNT_RANGES.endings), encounters - 1);
  return { theme, encounters, characters, endings };
}

/** A valid world meeting `p`'s counts. */
export function generateWorld(rng: Rng, p: StoryPrompt): Storyworld {
  if (p.encounters > WORLD_LIMITS.encounters[1] || p.endings >= p.encounters || p.characters > NAMES.length)
    throw new Error(`generateWorld: cannot meet ${JSON.stringify(p)}`);
  const chars = sample(rng, NAMES, p.characters);
  const places = sample(rng, THEMES[p.theme], Math.min(p.encounters, THEMES[p.theme].length));
  const inner = p.encounters - p.endings;
  const enc: Encounter[] = Array.from({ length: p.encounters }, (_, i) => ({
    id: `e${i}`,
    w: pick(rng, chars),
    t: places[i % places.length],
    o: [],
  }));
  const option = (to: number): StoryOption => {
    if (rng.uniform() < 0.5) return { to: `e${to}` };
    const d = (1 + rng.int(2)) * (rng.uniform() < 0.5 ? -1 : 1);
    return { to: `e${to}`, c: pick(rng, chars), d };
  };
  const link = (from: number, to: number) => {
    if (!enc[from].o.some((o) => o.to === `e${to}`)) enc[from].o.push(option(to));
  };
  for (let i = 1; i < p.encounters; i++) {
    const open = Array.from({ length: Math.min(i, inner) }, (_, j) => j).filter((j) => enc[j].o.length < 3);
    link(open.length ? pick(rng, open) : rng.int(Math.min(i, inner)), i);
  }
  for (let i = 0; i < inner; i++) {
    if (enc[i].o.length === 0) link(i, i + 1);
    if (rng.uniform() < 0.5) {
      const to = rng.int(p.encounters);
      if (to !== i && enc[i].o.length < 3) link(i, to);
    }
  }
  return { c: chars, s: 'e0', e: enc, n: enc.slice(inner).map((x) => x.id) };
}
