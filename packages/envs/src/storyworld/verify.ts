/**
 * The storyworld verifier: named reward components, each in [0, 1], and `total`, their weighted mean.
 *
 *   valid_json    1 when the completion (whitespace at the ends aside) parses as JSON
 *   schema        1 when it is exactly world.ts's shape: keys c s e n and no others, types, sizes and
 *                 ranges (WORLD_LIMITS), unique names and ids, every ending an encounter without options
 *   connectivity  the share of encounters reachable from the start ("s") along options' "to"
 *   no_dead_ends  the share of non-ending encounters with an option leading to an existing encounter
 *   endings       1 when at least one ending is reachable from the start and every listed ending is an
 *                 existing encounter
 *   consistency   the share of references that resolve: each option's "to" (an encounter), each
 *                 option's and encounter's character ("c", "w")
 *   constraints   the share of the prompt's three counts (encounters, characters, endings) met
 *
 * The graph components read the JSON tolerantly (an encounter is any object with a string id, an
 * option any object with a string "to"), so a world that breaks one rule loses that rule's
 * component and keeps the others: the schema is one component, not a gate. Text that is not JSON, is
 * over MAX_VERIFY_CHARS, or holds a lone surrogate or U+FFFD scores 0 everywhere; nothing throws.
 */
import type { Verdict } from '@rlmesh/core';
import { canonicalWorld, type Storyworld, WORLD_LIMITS } from './world';

export const STORY_COMPONENTS = ['valid_json', 'schema', 'connectivity', 'no_dead_ends', 'endings', 'consistency', 'constraints'] as const;
export type StoryComponent = (typeof STORY_COMPONENTS)[number];
export const STORY_REWARDS = [...STORY_COMPONENTS, 'total'] as const;

/** Longest text the verifier reads; a model's completion is far shorter (the env's byte limit). */
export const MAX_VERIFY_CHARS = 1 << 16;

/** What the prompt asked for. */
export interface StoryConstraints {
  encounters: number;
  characters: number;
  endings: number;
}

export type StoryWeights = Partial<Record<StoryComponent, number>>;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const share = (n: number, of: number) => (of === 0 ? 0 : n / of);

function zeros(): Record<string, number> {
  return Object.fromEntries(STORY_REWARDS.map((c) => [c, 0]));
}

/** Parses the completion as JSON, or null. Never throws. */
export function parseJson(completion: string): { value: unknown } | null {
  if (completion.length > MAX_VERIFY_CHARS || /\p{Cs}/u.test(completion) || completion.includes('\uFFFD')) return null;
  try {
    return { value: JSON.parse(completion.trim()) };
  } catch {
    return null;
  }
}

const OPTION_KEYS = new Set(['to', 'c', 'd']);

/** Whether `v` is exactly a Storyworld within WORLD_LIMITS (world.ts). */
export function matchesSchema(v: unknown): v is Storyworld {
  const L = WORLD_LIMITS;
  if (!isObj(v) || Object.keys(v).sort().join() !== 'c,e,n,s') return false;
  const name = (x: unknown) => isStr(x) && x.length > 0 && x.length <= L.nameChars;
  const unique = (xs: unknown[]) => new Set(xs).size === xs.length;
  const { c, s, e, n } = v;
  if (!Array.isArray(c) || c.length < L.characters[0] || c.length > L.characters[1] || !c.every(name) || !unique(c)) return false;
  if (!name(s)) return false;
  if (!Array.isArray(e) || e.length < L.encounters[0] || e.length > L.encounters[1]) return false;
  for (const x of e) {
    if (!isObj(x) || Object.keys(x).sort().join() !== 'id,o,t,w') return false;
    if (!name(x.id) || !name(x.w) || !isStr(x.t) || x.t.length > L.textChars) return false;
    if (!Array.isArray(x.o) || x.o.length > L.options[1]) return false;
    for (const o of x.o) {
      if (!isObj(o) || !name(o.to) || Object.keys(o).some((k) => !OPTION_KEYS.has(k))) return false;
      if ('c' in o !== 'd' in o) return false;
      if ('c' in o && (!name(o.c) || !Number.isInteger(o.d) || Math.abs(o.d as number) > L.delta || o.d === 0)) return false;
    }
  }
  const ids = e.map((x) => (x as Encounter).id);
  if (!unique(ids)) return false;
  if (!Array.isArray(n) || n.length === 0 || !n.every(name) || !unique(n)) return false;
  // An ending ends the story: it offers no way on.
  return n.every((id) => (e as Encounter[]).find((x) => x.id === id)?.o.length === 0);
}

type Encounter = Storyworld['e'][number];

/** The tolerant reading the graph components use. */
interface Graph {
  start: string | null;
  /** id -> the string targets of its options, and its options' and own character references. */
  nodes: Map<string, { to: string[]; chars: string[] }>;
  endings: string[];
  characters: Set<string>;
  counts: { encounters: number; characters: number; endings: number };
}

function readGraph(v: unknown): Graph | null {
  if (!isObj(v)) return null;
  const nodes: Graph['nodes'] = new Map();
  const list = Array.isArray(v.e) ? v.e : [];
  for (const x of list) {
    if (!isObj(x) || !isStr(x.id) || nodes.has(x.id)) continue;
    const opts = Array.isArray(x.o) ? x.o.filter(isObj) : [];
    const to = opts.map((o) => o.to).filter(isStr);
    const chars = [x.w, ...opts.filter((o) => 'c' in o).map((o) => o.c)].map((c) => (isStr(c) ? c : ''));
    nodes.set(x.id, { to, chars });
  }
  const strings = (a: unknown) => (Array.isArray(a) ? a.filter(isStr) : []);
  return {
    start: isStr(v.s) ? v.s : null,
    nodes,
    endings: strings(v.n),
    characters: new Set(strings(v.c)),
    counts: {
      encounters: list.length,
      characters: Array.isArray(v.c) ? v.c.length : 0,
      endings: Array.isArray(v.n) ? v.n.length : 0,
    },
  };
}

function reachable(g: Graph): Set<string> {
  const seen = new Set<string>();
  if (g.start === null || !g.nodes.has(g.start)) return seen;
  const stack = [g.start];
  seen.add(g.start);
  while (stack.length) {
    for (const t of g.nodes.get(stack.pop() as string)?.to ?? [])
      if (g.nodes.has(t) && !seen.has(t)) {
        seen.add(t);
        stack.push(t);
      }
  }
  return seen;
}

/** Every component but valid_json and total, for a parsed JSON value. */
export function scoreWorld(v: unknown, want: StoryConstraints): Record<StoryComponent, number> {
  const out = Object.fromEntries(STORY_COMPONENTS.map((c) => [c, 0])) as Record<StoryComponent, number>;
  out.valid_json = 1;
  out.schema = matchesSchema(v) ? 1 : 0;
  const g = readGraph(v);
  if (!g || g.nodes.size === 0) return out;
  const reach = reachable(g);
  const ends = new Set(g.endings);
  out.connectivity = share(reach.size, g.nodes.size);
  const inner = [...g.nodes.entries()].filter(([id]) => !ends.has(id));
  out.no_dead_ends = inner.length === 0 ? 1 : share(inner.filter(([, x]) => x.to.some((t) => g.nodes.has(t))).length, inner.length);
  out.endings = g.endings.length > 0 && g.endings.every((id) => g.nodes.has(id)) && g.endings.some((id) => reach.has(id)) ? 1 : 0;
  let refs = 0;
  let resolved = 0;
  for (const x of g.nodes.values()) {
    refs += x.to.length + x.chars.length;
    resolved += x.to.filter((t) => g.nodes.has(t)).length + x.chars.filter((c) => g.characters.has(c)).length;
  }
  out.consistency = share(resolved, refs);
  const met = (['encounters', 'characters', 'endings'] as const).filter((k) => g.counts[k] === want[k]).length;
  out.constraints = met / 3;
  return out;
}

/** The weighted mean of the components; weights default to 1 each. */
export function totalOf(components: Record<StoryComponent, number>, weights: StoryWeights = {}): number {
  let sum = 0;
  let norm = 0;
  for (const c of STORY_COMPONENTS) {
    const w = weights[c] ?? 1;
    sum += w * components[c];
    norm += w;
  }
  return norm > 0 ? sum / norm : 0;
}

export function verifyStoryworld(completion: string, want: StoryConstraints, weights: StoryWeights = {}): Verdict {
  const parsed = typeof completion === 'string' ? parseJson(completion) : null;
  if (!parsed) return { reward: zeros(), success: false, parsed: null };
  const comps = scoreWorld(parsed.value, want);
  const total = totalOf(comps, weights);
  const reward: Record<string, number> = { ...comps, total };
  const perfect = STORY_COMPONENTS.every((c) => comps[c] === 1);
  return { reward, success: perfect, parsed: comps.schema === 1 ? canonicalWorld(parsed.value as Storyworld) : null };
}
