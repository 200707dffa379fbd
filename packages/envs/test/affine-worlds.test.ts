import { makeTextEnv, Rng, type TextEnv } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import {
  actCraft,
  actGrid,
  actShop,
  CRAFT_PROGRESS,
  type CraftProblem,
  craftExpert,
  drawCraft,
  drawGrid,
  drawShop,
  type Expert,
  type GridProblem,
  gridExpert,
  INVALID_PENALTY,
  parseAction,
  planNeeds,
  purchaseScore,
  type ShopProblem,
  searchShop,
  shopExpert,
  titleOf,
} from '../src';

/** Plays one episode with the expert; returns the last step and the summed rewards. */
function playExpert<P>(env: TextEnv, expert: Expert<P>, seed: number) {
  let prompt = env.reset(seed);
  const total: Record<string, number> = { goal: 0, progress: 0, invalid: 0 };
  for (let t = 1; ; t++) {
    const s = env.step(` ${expert(env.current as P)}`);
    for (const [c, r] of Object.entries(s.reward)) total[c] += r;
    if (s.terminated || s.truncated) return { last: s, total, steps: t };
    expect(s.prompt.startsWith(prompt)).toBe(true);
    prompt = s.prompt;
  }
}

const EXPERTS: [string, Expert<never>][] = [
  ['TextCraft', craftExpert as Expert<never>],
  ['GridGoals', gridExpert as Expert<never>],
  ['ShopSearch', shopExpert as Expert<never>],
];

describe('multi-turn worlds: experts', () => {
  for (const [id, expert] of EXPERTS)
    it(`${id}: the scripted expert reaches the goal on every one of 100 seeds within 50 steps`, () => {
      const env = makeTextEnv(id, {});
      for (let seed = 0; seed < 100; seed++) {
        const { last, total, steps } = playExpert(env, expert, seed);
        expect(last).toMatchObject({ terminated: true, truncated: false, success: true });
        expect(last.reward.goal).toBe(1);
        expect(total.invalid).toBe(0);
        expect(steps).toBeLessThanOrEqual(50);
      }
    });
});

describe('multi-turn worlds: rules', () => {
  it('every Affine env draws the same episode from the same seed, and different ones from different seeds', () => {
    for (const id of ['AffineSAT', 'AffineABD', 'AffineDED', 'TextCraft', 'GridGoals', 'ShopSearch']) {
      const [a, b] = [makeTextEnv(id, {}), makeTextEnv(id, {})];
      expect(a.reset(11)).toBe(b.reset(11));
      expect(a.current).toEqual(b.current);
      const prompts = new Set(Array.from({ length: 10 }, (_, i) => a.reset(100 + i)));
      expect(prompts.size).toBeGreaterThan(5);
    }
  });

  it('parses one action from the first line, case-insensitively', () => {
    expect(parseAction(' Craft[Oak  Planks]\nthen more')).toEqual({ verb: 'craft', arg: 'oak planks' });
    expect(parseAction('forward')).toEqual({ verb: 'forward', arg: '' });
    expect(parseAction('I will go forward!')).toBeNull();
  });

  it('truncates at max_episode_steps exactly, with the penalty on every invalid action and no exception', () => {
    for (const id of ['TextCraft', 'GridGoals', 'ShopSearch']) {
      const env = makeTextEnv(id, { max_episode_steps: 5 });
      env.reset(3);
      for (let t = 1; t <= 5; t++) {
        const s = env.step(t % 2 ? 'dance[wildly]' : '???');
        expect(s.reward.invalid).toBe(INVALID_PENALTY);
        expect(s.observation).toMatch(/^\nObservation: Invalid action: /);
        expect(s).toMatchObject({ terminated: false, truncated: t === 5, success: false });
      }
      expect(() => env.step('forward')).toThrow(/call reset first/);
    }
  });

  it('TextCraft: plans whole batches, pays progress only up to the plan, refuses missing inputs', () => {
    expect(planNeeds('wooden pickaxe')).toEqual({ 'wooden pickaxe': 1, 'oak planks': 5, stick: 2, 'oak log': 2 });
    const p: CraftProblem = {
      ...drawCraft(new Rng(0)),
      goal: 'wooden pickaxe',
      need: planNeeds('wooden pickaxe'),
      inventory: {},
      gained: {},
    };
    expect(actCraft(p, 'craft[stick]')).toMatchObject({ reward: { invalid: INVALID_PENALTY }, done: false });
    expect(actCraft(p, 'get[3 oak log]').reward.progress).toBeCloseTo(2 * CRAFT_PROGRESS);
    expect(actCraft(p, 'get[oak log]').reward.progress).toBe(0);
    expect(actCraft(p, 'get[diamond]').observation).toMatch(/"diamond" is not a base resource/);
    expect(actCraft(p, 'craft[oak planks]').reward.progress).toBeCloseTo(4 * CRAFT_PROGRESS);
    expect(actCraft(p, 'craft[oak planks]').reward.progress).toBeCloseTo(1 * CRAFT_PROGRESS);
    expect(actCraft(p, 'craft[stick]').reward.progress).toBeCloseTo(2 * CRAFT_PROGRESS);
    expect(p.inventory).toMatchObject({ 'oak planks': 6, stick: 4, 'oak log': 2 });
    const win = actCraft(p, 'craft[wooden pickaxe]');
    expect(win).toMatchObject({ reward: { goal: 1, progress: CRAFT_PROGRESS, invalid: 0 }, success: true, done: true });
  });

  it('GridGoals: moves, turns, blocks, picks up and opens by the rules', () => {
    const p: GridProblem = {
      prompt: '',
      things: [
        { type: 'ball', colour: 'red', x: 3, y: 1 },
        { type: 'door', colour: 'blue', x: 4, y: 0, open: false },
      ],
      agent: { x: 1, y: 1, dir: 0 },
      carrying: -1,
      mission: { kind: 'pickup', target: 0 },
    };
    expect(actGrid(p, 'forward').observation).toContain('Ahead: the red ball');
    expect(actGrid(p, 'forward')).toMatchObject({ reward: { invalid: INVALID_PENALTY }, done: false });
    expect(p.agent).toEqual({ x: 2, y: 1, dir: 0 });
    expect(actGrid(p, 'toggle').observation).toMatch(/no door ahead/);
    const pick = actGrid(p, 'pickup');
    expect(pick).toMatchObject({ reward: { goal: 1 }, success: true, done: true });
    p.mission = { kind: 'open', target: 1 };
    actGrid(p, 'forward');
    actGrid(p, 'forward');
    expect(actGrid(p, 'left').observation).toContain('Ahead: the blue door (closed)');
    expect(actGrid(p, 'toggle')).toMatchObject({ success: true, done: true });
    expect(actGrid(p, 'left').observation).toContain('the blue door (open) 1 right');
  });

  it('GridGoals: draws reproducibly by seed and describes things relative to the agent', () => {
    expect(drawGrid(new Rng(5))).toEqual(drawGrid(new Rng(5)));
    const p = drawGrid(new Rng(5));
    expect(p.prompt).toMatch(/Mission: (go to|pick up|open) the /);
  });

  it("ShopSearch: ranks titles by the query's words, scores a purchase like WebShop, pays shaping once", () => {
    const p: ShopProblem = drawShop(new Rng(8));
    const g = p.goal;
    const target = p.catalogue.find((x) => x.type === g.type && x.material === g.material && x.feature === g.feature);
    expect(p.catalogue.filter((x) => titleOf(x) === `${g.feature} ${g.material} ${g.type}`)).toHaveLength(1);
    expect(searchShop(p.catalogue, titleOf(target as never))[0]).toBe(target);
    expect(actShop(p, 'buy').observation).toMatch(/buy works on a product page/);
    expect(actShop(p, `search[${g.type}]`).reward.progress).toBe(0.1);
    expect(actShop(p, `search[${g.material} ${g.type}]`).reward.progress).toBe(0);
    const other = p.catalogue.find((x) => x !== target && (p.page as { ids: string[] }).ids.includes(x.id));
    if (other) {
      expect(actShop(p, `click[${other.id}]`).reward.progress).toBe(0.3);
      const bought = actShop(p, 'buy');
      expect(bought.done).toBe(true);
      expect(bought.reward.goal).toBeCloseTo(purchaseScore(g, other, null, null));
      expect(bought.reward.goal).toBeLessThan(1);
      expect(bought.success).toBe(false);
    }
    expect(purchaseScore(g, target as never, g.colour, g.size)).toBe(1);
    expect(purchaseScore(g, target as never, g.colour, null)).toBeCloseTo(5 / 6);
  });
});
