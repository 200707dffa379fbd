/**
 * TextCraft-like crafting world: a goal item, a recipe book, and two ways to gain items.
 *
 *   get[item] or get[N item]   takes N (default 1, at most 64) of a base resource
 *   craft[item]                uses one recipe once: its inputs out of the inventory, its output in
 *   inventory                  shows the inventory
 *
 * The prompt lists the recipes the goal needs and DISTRACTORS others, shuffled, as TextCraft does.
 * progress pays 0.15 (Affine's training guide pays it per TextCraft step) for each unit of an item the goal's plan
 * needs, up to the plan's amount: the plan is the recipe tree expanded with whole batches, so an
 * agent cannot farm it by getting or crafting more than the goal uses. goal pays 1 when the goal
 * item is in the inventory, which ends the episode.
 */
import type { MultiTurnTextTask, Rng, TextEnvSpec, Turn } from '@rlmesh/core';
import { TextEnv } from '@rlmesh/core';
import { type Expert, invalidTurn, parseAction, WORLD_OPTIONS, WORLD_REWARDS, worldTurn } from './world';

export interface Recipe {
  output: string;
  count: number;
  inputs: Record<string, number>;
}

export const BASE_ITEMS = [
  'oak log',
  'cobblestone',
  'coal',
  'iron ore',
  'gold ore',
  'sand',
  'string',
  'flint',
  'feather',
  'redstone',
  'sugar cane',
  'leather',
] as const;

const r = (output: string, count: number, inputs: Record<string, number>): Recipe => ({ output, count, inputs });

export const RECIPES: readonly Recipe[] = [
  r('oak planks', 4, { 'oak log': 1 }),
  r('stick', 4, { 'oak planks': 2 }),
  r('crafting table', 1, { 'oak planks': 4 }),
  r('chest', 1, { 'oak planks': 8 }),
  r('wooden pickaxe', 1, { 'oak planks': 3, stick: 2 }),
  r('stone pickaxe', 1, { cobblestone: 3, stick: 2 }),
  r('furnace', 1, { cobblestone: 8 }),
  r('torch', 4, { coal: 1, stick: 1 }),
  r('iron ingot', 1, { 'iron ore': 1, coal: 1 }),
  r('gold ingot', 1, { 'gold ore': 1, coal: 1 }),
  r('iron nugget', 9, { 'iron ingot': 1 }),
  r('iron pickaxe', 1, { 'iron ingot': 3, stick: 2 }),
  r('bucket', 1, { 'iron ingot': 3 }),
  r('shears', 1, { 'iron ingot': 2 }),
  r('compass', 1, { 'iron ingot': 4, redstone: 1 }),
  r('clock', 1, { 'gold ingot': 4, redstone: 1 }),
  r('lantern', 1, { 'iron nugget': 8, torch: 1 }),
  r('glass', 1, { sand: 1, coal: 1 }),
  r('glass pane', 16, { glass: 6 }),
  r('bow', 1, { stick: 3, string: 3 }),
  r('arrow', 4, { flint: 1, stick: 1, feather: 1 }),
  r('ladder', 3, { stick: 7 }),
  r('paper', 3, { 'sugar cane': 3 }),
  r('book', 1, { paper: 3, leather: 1 }),
  r('bookshelf', 1, { 'oak planks': 6, book: 3 }),
];

const RECIPE_OF = new Map(RECIPES.map((x) => [x.output, x]));
const BASE = new Set<string>(BASE_ITEMS);
export const DISTRACTORS = 4;
export const CRAFT_PROGRESS = 0.15;
const MAX_GET = 64;

export interface CraftProblem {
  prompt: string;
  goal: string;
  /** item -> count */
  inventory: Record<string, number>;
  /** The goal's plan: units of each item it uses (goal included), batches rounded up. */
  need: Record<string, number>;
  /** Units of each needed item gained so far (what progress has paid for). */
  gained: Record<string, number>;
}

/** Units of every item a plan for `goal` gains, crafting whole batches: the recipe tree expanded. */
export function planNeeds(goal: string): Record<string, number> {
  const need: Record<string, number> = {};
  // Crafted items in an order where every item comes before its inputs, so a total is final when read.
  const order: string[] = [];
  const visit = (item: string, seen: Set<string>) => {
    if (seen.has(item)) return;
    seen.add(item);
    for (const input of Object.keys(RECIPE_OF.get(item)?.inputs ?? {})) visit(input, seen);
    order.push(item);
  };
  visit(goal, new Set());
  need[goal] = 1;
  for (const item of order.reverse()) {
    const recipe = RECIPE_OF.get(item);
    if (!recipe || !need[item]) continue;
    const batches = Math.ceil(need[item] / recipe.count);
    for (const [input, n] of Object.entries(recipe.inputs)) need[input] = (need[input] ?? 0) + batches * n;
  }
  return need;
}

function formatRecipe(x: Recipe): string {
  const inputs = Object.entries(x.inputs).map(([item, n]) => `${n} ${item}`);
  return `craft[${x.output}]: ${inputs.join(', ')} -> ${x.count} ${x.output}`;
}

function inventoryText(inv: Record<string, number>): string {
  const items = Object.entries(inv).filter(([, n]) => n > 0);
  return items.length ? items.map(([item, n]) => `${n} ${item}`).join(', ') : 'empty';
}

function shuffle<T>(rng: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

export function drawCraft(rng: Rng): CraftProblem {
  const goal = RECIPES[rng.int(RECIPES.length)].output;
  const need = planNeeds(goal);
  const used = RECIPES.filter((x) => need[x.output]);
  const others = shuffle(
    rng,
    RECIPES.filter((x) => !need[x.output]),
  ).slice(0, DISTRACTORS);
  const book = shuffle(rng, [...used, ...others]).map(formatRecipe);
  const prompt = [
    `You are in a crafting world. Goal: craft 1 ${goal}.`,
    `Base resources you can take: ${BASE_ITEMS.join(', ')}.`,
    'Recipes:',
    ...book,
    'Actions: get[item] or get[N item] takes base resources; craft[item] uses its recipe once; inventory shows what you hold.',
    'Reply with one action per turn.',
    'Observation: Your inventory is empty.',
    'Action:',
  ].join('\n');
  return { prompt, goal, inventory: {}, need, gained: {} };
}

/** Adds `n` of `item`, returning the progress reward it earns. */
function gain(p: CraftProblem, item: string, n: number): number {
  p.inventory[item] = (p.inventory[item] ?? 0) + n;
  const useful = Math.max(0, Math.min(n, (p.need[item] ?? 0) - (p.gained[item] ?? 0)));
  p.gained[item] = (p.gained[item] ?? 0) + useful;
  return Math.round(useful * CRAFT_PROGRESS * 1e6) / 1e6;
}

export function actCraft(p: CraftProblem, completion: string): Turn {
  const a = parseAction(completion);
  if (!a) return invalidTurn(null, 'write one action: get[item], craft[item] or inventory');
  if (a.verb === 'inventory' && !a.arg) return worldTurn({ text: `Inventory: ${inventoryText(p.inventory)}.`, action: a });
  if (a.verb === 'get') {
    const m = /^(?:(\d+) )?(.+)$/.exec(a.arg);
    const n = m?.[1] ? Number(m[1]) : 1;
    const item = m?.[2] ?? '';
    if (!BASE.has(item)) return invalidTurn(a, `"${item}" is not a base resource; base resources: ${BASE_ITEMS.join(', ')}`);
    if (!(n >= 1 && n <= MAX_GET)) return invalidTurn(a, `take 1 to ${MAX_GET} at a time`);
    const progress = gain(p, item, n);
    return worldTurn({ text: `Got ${n} ${item}. Inventory: ${inventoryText(p.inventory)}.`, action: a, progress });
  }
  if (a.verb === 'craft') {
    const recipe = RECIPE_OF.get(a.arg);
    if (!recipe) return invalidTurn(a, `there is no recipe for "${a.arg}"`);
    const missing = Object.entries(recipe.inputs).filter(([item, n]) => (p.inventory[item] ?? 0) < n);
    if (missing.length)
      return invalidTurn(
        a,
        `crafting ${recipe.output} needs ${missing.map(([item, n]) => `${n} ${item} (you have ${p.inventory[item] ?? 0})`).join(', ')}`,
      );
    for (const [item, n] of Object.entries(recipe.inputs)) p.inventory[item] -= n;
    const progress = gain(p, recipe.output, recipe.count);
    const done = (p.inventory[p.goal] ?? 0) >= 1;
    const text = `Crafted ${recipe.count} ${recipe.output}. Inventory: ${inventoryText(p.inventory)}.${done ? ` Goal reached: you have 1 ${p.goal}.` : ''}`;
    return worldTurn({ text, action: a, progress, goal: done ? 1 : 0, done, success: done });
  }
  return invalidTurn(a, `unknown action "${a.verb}"; actions: get[item], get[N item], craft[item], inventory`);
}

/**
 * The expert: take every base resource the plan needs (one get per resource), then craft any plan
 * recipe whose output is still short and whose inputs it holds. The plan's totals cover every
 * recipe's inputs, so some such recipe exists until the goal is made.
 */
export const craftExpert: Expert<CraftProblem> = (p) => {
  for (const item of BASE_ITEMS) {
    const missing = (p.need[item] ?? 0) - (p.gained[item] ?? 0);
    if (missing > 0) return `get[${missing} ${item}]`;
  }
  for (const recipe of RECIPES) {
    if (!p.need[recipe.output] || (p.gained[recipe.output] ?? 0) >= p.need[recipe.output]) continue;
    if (Object.entries(recipe.inputs).every(([item, n]) => (p.inventory[item] ?? 0) >= n)) return `craft[${recipe.output}]`;
  }
  throw new Error(`craftExpert: no action makes progress towards ${p.goal}`);
};

export class CraftTask implements MultiTurnTextTask<CraftProblem> {
  readonly name = 'TextCraft';
  readonly rewardComponents = WORLD_REWARDS;
  readonly numLevels = 1;
  draw(rng: Rng): CraftProblem {
    return drawCraft(rng);
  }
  act(p: CraftProblem, completion: string): Turn {
    return actCraft(p, completion);
  }
}

export const textCraft: TextEnvSpec<typeof WORLD_OPTIONS> = {
  id: 'TextCraft',
  description: 'a TextCraft-like crafting world: get base resources and craft up a recipe tree to a goal item (multi-turn text)',
  options: WORLD_OPTIONS,
  make: (o) => new TextEnv(new CraftTask(), o.max_episode_steps, o.max_completion_bytes),
};
