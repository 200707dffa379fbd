import { ConfigError, isTextEnv, makeTextEnv, Rng, TextInputError } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import {
  buildStoryDatasets,
  canonicalWorld,
  drawStoryPrompt,
  generateWorld,
  MAX_VERIFY_CHARS,
  STORY_COMPONENTS,
  STORY_REWARDS,
  type StoryConstraints,
  type Storyworld,
  storyPromptText,
  verifyStoryworld,
} from '../src';

const ALL_ONE = Object.fromEntries(STORY_REWARDS.map((c) => [c, 1]));
const ALL_ZERO = Object.fromEntries(STORY_REWARDS.map((c) => [c, 0]));

/** A small valid world by hand: e0 -> e1 -> e2 (ending), e0 -> e3 (ending). */
function world(): Storyworld {
  return {
    c: ['Ana', 'Bo'],
    s: 'e0',
    e: [
      { id: 'e0', w: 'Ana', t: 'the gate', o: [{ to: 'e1', c: 'Bo', d: 1 }, { to: 'e3' }] },
      { id: 'e1', w: 'Bo', t: 'the hall', o: [{ to: 'e2' }, { to: 'e0', c: 'Ana', d: -2 }] },
      { id: 'e2', w: 'Ana', t: 'the throne', o: [] },
      { id: 'e3', w: 'Bo', t: 'a cellar', o: [] },
    ],
    n: ['e2', 'e3'],
  };
}
const WANT: StoryConstraints = { encounters: 4, characters: 2, endings: 2 };
const score = (w: unknown, want = WANT) => verifyStoryworld(` ${JSON.stringify(w)}`, want).reward;

/** Every component 1 except those named, which must be below 1. */
function brokenExactly(r: Record<string, number>, broken: string[]) {
  for (const c of STORY_COMPONENTS) {
    if (broken.includes(c)) expect(r[c], c).toBeLessThan(1);
    else expect(r[c], c).toBe(1);
  }
  expect(r.total).toBeLessThan(1);
}

describe('storyworld verifier', () => {
  it('scores the hand-made world 1 on every component', () => {
    const v = verifyStoryworld(` ${canonicalWorld(world())}`, WANT);
    expect(v.reward).toEqual(ALL_ONE);
    expect(v.success).toBe(true);
    expect(v.parsed).toBe(canonicalWorld(world()));
  });

  it("passes every generated world on every component, and the generator meets the prompt's counts", () => {
    const rng = new Rng(5);
    for (let i = 0; i < 2000; i++) {
      const p = drawStoryPrompt(rng);
      const w = generateWorld(rng, p);
      const v = verifyStoryworld(` ${canonicalWorld(w)}`, p);
      if (!v.success) throw new Error(`world ${i} fails: ${JSON.stringify(v.reward)} ${canonicalWorld(w)}`);
      expect(w.e.length).toBe(p.encounters);
    }
  });

  it('fails exactly the component a hand-broken world breaks', () => {
    const cases: [string, (w: Storyworld) => void, string[]][] = [
      ['an unknown key', (w) => Object.assign(w, { extra: 1 }), ['schema']],
      ['a consequence out of range', (w) => Object.assign(w.e[0].o[0], { d: 9 }), ['schema']],
      ['an ending with an option', (w) => w.e[2].o.push({ to: 'e0' }), ['schema']],
      ['an unreachable encounter', (w) => (w.e[0].o = [{ to: 'e1' }]), ['connectivity']],
      ['a dead end', (w) => (w.e[1].o = [{ to: 'e9' }]), ['no_dead_ends', 'connectivity', 'consistency']],
      ['an unknown character in a consequence', (w) => Object.assign(w.e[0].o[0], { c: 'Zed' }), ['consistency']],
      ['an encounter met by nobody in the cast', (w) => (w.e[1].w = 'Zed'), ['consistency']],
      ['an option to nowhere', (w) => w.e[0].o.push({ to: 'e7' }), ['consistency']],
      ['an ending that is no encounter', (w) => w.n.push('e8'), ['endings', 'constraints', 'schema']],
      [
        'no ending reachable',
        (w) => {
          w.e[0].o = [{ to: 'e1' }];
          w.e[1].o = [{ to: 'e0' }];
        },
        ['endings', 'connectivity'],
      ],
    ];
    for (const [what, breakIt, broken] of cases) {
      const w = world();
      breakIt(w);
      const r = score(w);
      try {
        brokenExactly(r, broken);
      } catch (e) {
        throw new Error(`${what}: ${JSON.stringify(r)}: ${(e as Error).message}`);
      }
    }
    // A dead end alone: e1's only way on removed while e2 stays reachable from e0.
    const w = world();
    w.e[0].o.push({ to: 'e2' });
    w.e[1].o = [];
    brokenExactly(score(w), ['no_dead_ends']);
    // Counts that differ from the prompt's: constraints alone.
    brokenExactly(score(world(), { encounters: 5, characters: 2, endings: 1 }), ['constraints']);
    expect(score(world(), { encounters: 5, characters: 2, endings: 1 }).constraints).toBeCloseTo(1 / 3);
  });

  it('gives 0 on every component, never an exception, for text that is not a world', () => {
    const bad = [
      '',
      ' {"c":["Ana"],"s":"e0","e":[',
      'not json',
      `{"c":${'['.repeat(50_000)}`,
      'x'.repeat(MAX_VERIFY_CHARS + 1),
      ` ${canonicalWorld(world())}${' '.repeat(MAX_VERIFY_CHARS)}`,
      '{"c":["\uD800"]}',
      '{"c":["\uFFFD"]}',
      ` ${canonicalWorld(world())} trailing`,
    ];
    for (const s of bad) {
      const v = verifyStoryworld(s, WANT);
      expect(v.reward, s.slice(0, 40)).toEqual(ALL_ZERO);
      expect(v.success).toBe(false);
    }
    // JSON that is not an object: valid_json only.
    for (const s of ['42', '[1,2]', 'null', '"e0"']) expect(verifyStoryworld(s, WANT).reward.valid_json).toBe(1);
    expect(verifyStoryworld('[1,2]', WANT).reward.total).toBeCloseTo(1 / 7);
    // Deep nesting that is valid JSON is read without recursion.
    expect(() => verifyStoryworld(`${'['.repeat(20_000)}${']'.repeat(20_000)}`, WANT)).not.toThrow();
  });

  it('weights total as configured', () => {
    const w = world();
    w.e[1].w = 'Zed';
    const env = makeTextEnv('Storyworld', { weights: { consistency: 0, schema: 2 } });
    env.reset(0);
    const p = env.current as unknown as StoryConstraints;
    const r = verifyStoryworld(JSON.stringify(w), p, { consistency: 0, schema: 2 }).reward;
    const expected = (2 * r.schema + r.valid_json + r.connectivity + r.no_dead_ends + r.endings + r.constraints) / 7;
    expect(r.total).toBeCloseTo(expected);
  });
});

describe('Storyworld env and datasets', () => {
  it('is registered and plays one-step episodes whose prompt states the counts', () => {
    expect(isTextEnv('Storyworld')).toBe(true);
    const env = makeTextEnv('Storyworld');
    expect(env.rewardComponents).toEqual(STORY_REWARDS);
    const prompt = env.reset(3);
    const p = env.current as unknown as StoryConstraints & { theme: string };
    expect(prompt).toBe(storyPromptText(p));
    const w = generateWorld(new Rng(1), p);
    const s = env.step(` ${canonicalWorld(w)}`);
    expect(s).toMatchObject({ success: true, terminated: true, reward: ALL_ONE });
    env.reset(3);
    expect(() => env.step('')).toThrow(TextInputError);
    expect(() => env.step('x'.repeat(5000))).toThrow(/at most 4096/);
    expect(env.step('{').reward).toEqual(ALL_ZERO);
  });

  it('refuses bad weights naming the key', () => {
    expect(() => makeTextEnv('Storyworld', { weights: { colour: 1 } })).toThrow(ConfigError);
    expect(() => makeTextEnv('Storyworld', { weights: { colour: 1 } })).toThrow(/env\.options\.weights\.colour/);
    expect(() => makeTextEnv('Storyworld', { weights: { schema: -1 } })).toThrow(/>= 0/);
    expect(() => makeTextEnv('Storyworld', { weights: Object.fromEntries(STORY_COMPONENTS.map((c) => [c, 0])) })).toThrow(
      /must not all be 0/,
    );
  });

  it('draws datasets from a seed, each set on its own generator', () => {
    const a = buildStoryDatasets({ seed: 2, nTrain: 50, nVal: 10, nTest: 10 });
    const b = buildStoryDatasets({ seed: 2, nTrain: 80, nVal: 10, nTest: 10 });
    expect(b[1].examples).toEqual(a[1].examples);
    expect(b[2].examples).toEqual(a[2].examples);
    expect(b[0].examples.slice(0, 50)).toEqual(a[0].examples);
    for (const s of a) for (const ex of s.examples) expect(verifyStoryworld(ex.completion, ex).success, ex.completion).toBe(true);
    expect(buildStoryDatasets({ seed: 3, nTrain: 5, nVal: 1, nTest: 1 })[0].examples).not.toEqual(a[0].examples.slice(0, 5));
  });
});
