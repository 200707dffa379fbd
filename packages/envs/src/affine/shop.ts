/**
 * WebShop-like shopping search over a catalogue generated per episode. An instruction names a
 * product by three attributes (feature, material, type), two options (colour, size) and a budget;
 * the shop shows pages the agent moves between.
 *
 *   search[query]   from any page: the 10 best titles for the query's words (ties by product id)
 *   click[<id>]     on a results page: that product's page
 *   click[<option>] on a product page: selects a colour or a size the product offers
 *   back            from a product page to the last results
 *   buy             on a product page: buys it with the selected options, ending the episode
 *
 * goal is WebShop's score of the purchase: (attributes matched + options matched + [price within
 * budget]) / (3 + 2 + 1), so 1 only for the right product with the right options at the right
 * price; success when it is 1. progress pays Affine's training-guide shaping once per episode each: 0.1 for the
 * first search, 0.3 for the first product page opened.
 *
 * The catalogue always holds exactly one product with all three attributes (priced within the
 * budget and offering both options) and near misses that share one or two of them.
 */
import type { MultiTurnTextTask, Rng, TextEnvSpec, Turn } from '@rlmesh/core';
import { TextEnv } from '@rlmesh/core';
import { type Expert, invalidTurn, parseAction, WORLD_OPTIONS, WORLD_REWARDS, worldTurn } from './world';

const CATEGORIES = {
  boots: {
    materials: ['leather', 'suede', 'rubber'],
    features: ['waterproof', 'insulated', 'lightweight'],
    sizes: ['7', '8', '9', '10', '11'],
  },
  shirt: {
    materials: ['cotton', 'linen', 'polyester'],
    features: ['slim fit', 'long sleeve', 'short sleeve'],
    sizes: ['s', 'm', 'l', 'xl'],
  },
  backpack: { materials: ['canvas', 'nylon', 'leather'], features: ['waterproof', 'anti theft', 'rolling'], sizes: ['20l', '30l', '40l'] },
  mug: { materials: ['ceramic', 'glass', 'steel'], features: ['insulated', 'microwave safe', 'handmade'], sizes: ['8oz', '12oz', '16oz'] },
  jacket: { materials: ['down', 'wool', 'fleece'], features: ['hooded', 'packable', 'insulated'], sizes: ['s', 'm', 'l', 'xl'] },
} as const;
type Category = keyof typeof CATEGORIES;
const CATEGORY_NAMES = Object.keys(CATEGORIES) as Category[];
const SHOP_COLOURS = ['black', 'white', 'navy', 'red', 'green', 'grey', 'brown'] as const;
export const SEARCH_PROGRESS = 0.1;
export const CLICK_PROGRESS = 0.3;
const PAGE_SIZE = 10;

export interface Product {
  id: string;
  type: Category;
  material: string;
  feature: string;
  colours: string[];
  sizes: string[];
  price: number;
}

export interface ShopGoal {
  type: Category;
  material: string;
  feature: string;
  colour: string;
  size: string;
  budget: number;
}

export interface ShopProblem {
  prompt: string;
  catalogue: Product[];
  goal: ShopGoal;
  page:
    | { kind: 'start' }
    | { kind: 'results'; ids: string[] }
    | { kind: 'product'; id: string; colour: string | null; size: string | null };
  /** The last results, for back. */
  results: string[];
  searched: boolean;
  clicked: boolean;
}

export const titleOf = (p: Product) => `${p.feature} ${p.material} ${p.type}`;

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];
function sample<T>(rng: Rng, xs: readonly T[], n: number): T[] {
  const pool = [...xs];
  const out: T[] = [];
  while (out.length < n && pool.length) out.push(pool.splice(rng.int(pool.length), 1)[0]);
  return out;
}

export function drawShop(rng: Rng): ShopProblem {
  const type = pick(rng, CATEGORY_NAMES);
  const c = CATEGORIES[type];
  const goal: ShopGoal = {
    type,
    material: pick(rng, c.materials),
    feature: pick(rng, c.features),
    colour: pick(rng, SHOP_COLOURS),
    size: pick(rng, c.sizes),
    budget: 20 + 10 * rng.int(8),
  };
  const options = (must: boolean) => ({
    colours: must
      ? [
          goal.colour,
          ...sample(
            rng,
            SHOP_COLOURS.filter((x) => x !== goal.colour),
            2,
          ),
        ]
      : sample(rng, SHOP_COLOURS, 3),
    sizes: must
      ? [
          goal.size,
          ...sample(
            rng,
            c.sizes.filter((x) => x !== goal.size),
            1,
          ),
        ]
      : sample(rng, c.sizes, 2),
  });
  const products: Omit<Product, 'id'>[] = [
    { type, material: goal.material, feature: goal.feature, ...options(true), price: goal.budget - 1 - rng.int(10) },
  ];
  const seen = new Set([`${type}/${goal.material}/${goal.feature}`]);
  // Near misses of the goal (same type, one attribute changed), then the rest of the shop.
  for (let tries = 0; products.length < 24 && tries < 500; tries++) {
    const t = products.length < 8 ? type : pick(rng, CATEGORY_NAMES);
    const cat = CATEGORIES[t];
    const p = { type: t, material: pick(rng, cat.materials), feature: pick(rng, cat.features) };
    const k = `${t}/${p.material}/${p.feature}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const near = t === type && (p.material === goal.material || p.feature === goal.feature);
    products.push({ ...p, ...options(near && rng.int(2) === 0), price: 5 + rng.int(90) });
  }
  const order = sample(rng, products, products.length);
  const catalogue = order.map((p, i) => ({ ...p, id: `b${String(i + 1).padStart(3, '0')}` }));
  const prompt = [
    'You are shopping in a web shop.',
    `Instruction: find a ${goal.feature} ${goal.material} ${goal.type} in colour ${goal.colour}, size ${goal.size}, priced under ${goal.budget}.00 dollars, and buy it.`,
    'Actions: search[query]; click[product id] on a results page; click[option] on a product page to choose a colour or size; back; buy.',
    'Reply with one action per turn.',
    "Observation: The shop's search page. Type a query with search[...].",
    'Action:',
  ].join('\n');
  return { prompt, catalogue, goal, page: { kind: 'start' }, results: [], searched: false, clicked: false };
}

/** The products best matching `query`: most query words in the title, then catalogue order. */
export function searchShop(catalogue: readonly Product[], query: string): Product[] {
  const words = new Set(query.split(/[^a-z0-9]+/).filter(Boolean));
  const score = (p: Product) =>
    titleOf(p)
      .split(' ')
      .filter((w) => words.has(w)).length;
  return catalogue
    .map((p) => ({ p, s: score(p) }))
    .filter(({ s }) => s > 0)
    .sort((a, b) => b.s - a.s || a.p.id.localeCompare(b.p.id))
    .slice(0, PAGE_SIZE)
    .map(({ p }) => p);
}

/** WebShop's purchase score. */
export function purchaseScore(g: ShopGoal, p: Product, colour: string | null, size: string | null): number {
  const attrs = Number(p.type === g.type) + Number(p.material === g.material) + Number(p.feature === g.feature);
  const opts = Number(colour === g.colour) + Number(size === g.size);
  return (attrs + opts + Number(p.price < g.budget)) / 6;
}

function productText(p: Product, colour: string | null, size: string | null): string {
  return [
    `Product ${p.id}: ${titleOf(p)}, price ${p.price}.00 dollars.`,
    `Colours: ${p.colours.join(', ')} (selected: ${colour ?? 'none'}). Sizes: ${p.sizes.join(', ')} (selected: ${size ?? 'none'}).`,
    'Actions here: click[colour or size], buy, back, search[query].',
  ].join(' ');
}

function resultsText(ps: readonly Product[], query: string): string {
  if (!ps.length) return `No results for "${query}". Try other words with search[...].`;
  return `Results for "${query}": ${ps.map((p) => `[${p.id}] ${titleOf(p)}, ${p.price}.00 dollars`).join('; ')}. Open one with click[id].`;
}

export function actShop(p: ShopProblem, completion: string): Turn {
  const a = parseAction(completion);
  if (!a) return invalidTurn(null, 'write one action: search[query], click[...], back or buy');
  if (a.verb === 'search') {
    if (!a.arg) return invalidTurn(a, 'search needs words: search[query]');
    const found = searchShop(p.catalogue, a.arg);
    p.results = found.map((x) => x.id);
    p.page = { kind: 'results', ids: p.results };
    const progress = p.searched ? 0 : SEARCH_PROGRESS;
    p.searched = true;
    return worldTurn({ text: resultsText(found, a.arg), action: a, progress });
  }
  const page = p.page;
  if (a.verb === 'click') {
    if (page.kind === 'results') {
      if (!page.ids.includes(a.arg)) return invalidTurn(a, `"${a.arg}" is not a product on this page; click one of ${page.ids.join(', ')}`);
      const product = p.catalogue.find((x) => x.id === a.arg) as Product;
      p.page = { kind: 'product', id: product.id, colour: null, size: null };
      const progress = p.clicked ? 0 : CLICK_PROGRESS;
      p.clicked = true;
      return worldTurn({ text: productText(product, null, null), action: a, progress });
    }
    if (page.kind === 'product') {
      const product = p.catalogue.find((x) => x.id === page.id) as Product;
      if (product.colours.includes(a.arg)) page.colour = a.arg;
      else if (product.sizes.includes(a.arg)) page.size = a.arg;
      else
        return invalidTurn(a, `"${a.arg}" is not an option of this product; options: ${[...product.colours, ...product.sizes].join(', ')}`);
      return worldTurn({ text: productText(product, page.colour, page.size), action: a });
    }
    return invalidTurn(a, 'there is nothing to click on the search page; search first');
  }
  if (a.verb === 'back' && !a.arg) {
    if (page.kind !== 'product') return invalidTurn(a, 'back works on a product page');
    const found = p.results.map((id) => p.catalogue.find((x) => x.id === id) as Product);
    p.page = { kind: 'results', ids: p.results };
    return worldTurn({ text: resultsText(found, 'your last search'), action: a });
  }
  if (a.verb === 'buy' && !a.arg) {
    if (page.kind !== 'product') return invalidTurn(a, 'buy works on a product page');
    const product = p.catalogue.find((x) => x.id === page.id) as Product;
    const score = purchaseScore(p.goal, product, page.colour, page.size);
    const text = `You bought ${titleOf(product)} (${page.colour ?? 'no colour'}, ${page.size ?? 'no size'}) for ${product.price}.00 dollars. Score ${score.toFixed(2)}.`;
    return worldTurn({ text, action: a, goal: score, done: true, success: score === 1 });
  }
  return invalidTurn(a, `unknown action "${a.verb}"; actions: search[query], click[...], back, buy`);
}

/** The expert: search the goal's title, open the one exact product, choose colour and size, buy. */
export const shopExpert: Expert<ShopProblem> = (p) => {
  const g = p.goal;
  const target = p.catalogue.find((x) => x.type === g.type && x.material === g.material && x.feature === g.feature) as Product;
  const page = p.page;
  if (page.kind === 'product' && page.id === target.id) {
    if (page.colour !== g.colour) return `click[${g.colour}]`;
    if (page.size !== g.size) return `click[${g.size}]`;
    return 'buy';
  }
  if (page.kind === 'results' && page.ids.includes(target.id)) return `click[${target.id}]`;
  return `search[${titleOf(target)}]`;
};

export class ShopTask implements MultiTurnTextTask<ShopProblem> {
  readonly name = 'ShopSearch';
  readonly rewardComponents = WORLD_REWARDS;
  readonly numLevels = 1;
  draw(rng: Rng): ShopProblem {
    return drawShop(rng);
  }
  act(p: ShopProblem, completion: string): Turn {
    return actShop(p, completion);
  }
}

export const shopSearch: TextEnvSpec<typeof WORLD_OPTIONS> = {
  id: 'ShopSearch',
  description:
    'a WebShop-like shop: search a generated catalogue, open a product, choose options, buy; scored by attribute match (multi-turn text)',
  options: WORLD_OPTIONS,
  make: (o) => new TextEnv(new ShopTask(), o.max_episode_steps, o.max_completion_bytes),
};
