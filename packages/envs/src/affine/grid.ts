/**
 * BabyAI-like grid world in text: one walled room of 6x6 floor cells with coloured balls, boxes and
 * keys on the floor and closed coloured doors in the walls. The agent has a cell and a heading.
 *
 *   forward   moves one cell ahead (walls, doors and objects block it)
 *   left / right   turns 90 degrees
 *   pickup    picks up the object ahead (one at a time)
 *   drop      puts the carried object on the free floor cell ahead
 *   toggle    opens (or closes) the door ahead
 *
 * Missions: `go to the <colour> <type>` (met when it is in the cell ahead), `pick up the <colour>
 * <type>`, `open the <colour> door`. Every observation says what is ahead, what is carried, and
 * where each thing lies relative to the agent (steps forward or back, left or right): the room is
 * fully observed, so the task is exact. goal pays 1 when the mission is met (BabyAI's only
 * reward in Affine's training guide); progress stays 0; a blocked move or an action with nothing to act on is
 * invalid. Drawn layouts are checked solvable by the expert's search, which is also the expert.
 */
import type { MultiTurnTextTask, Rng, TextEnvSpec, Turn } from '@rlmesh/core';
import { TextEnv } from '@rlmesh/core';
import { type Expert, invalidTurn, parseAction, WORLD_OPTIONS, WORLD_REWARDS, worldTurn } from './world';

export const GRID_SIZE = 8; // 6x6 floor inside the walls
export const COLOURS = ['red', 'green', 'blue', 'purple', 'yellow', 'grey'] as const;
export const OBJECT_TYPES = ['ball', 'box', 'key'] as const;
const HEADINGS = ['east', 'south', 'west', 'north'] as const;
const DX = [1, 0, -1, 0];
const DY = [0, 1, 0, -1];

export interface GridThing {
  type: 'ball' | 'box' | 'key' | 'door';
  colour: string;
  x: number;
  y: number;
  /** Doors only. */
  open?: boolean;
}

export interface GridMission {
  kind: 'goto' | 'pickup' | 'open';
  /** Index into things. */
  target: number;
}

export interface GridProblem {
  prompt: string;
  things: GridThing[];
  agent: { x: number; y: number; dir: number };
  /** Index into things of the carried object, or -1. */
  carrying: number;
  mission: GridMission;
}

const name = (t: GridThing) => `${t.colour} ${t.type}`;
const isWall = (x: number, y: number) => x <= 0 || y <= 0 || x >= GRID_SIZE - 1 || y >= GRID_SIZE - 1;

function thingAt(p: GridProblem, x: number, y: number): number {
  return p.things.findIndex((t, i) => i !== p.carrying && t.x === x && t.y === y);
}

function ahead(p: GridProblem, x = p.agent.x, y = p.agent.y, dir = p.agent.dir): [number, number] {
  return [x + DX[dir], y + DY[dir]];
}

function blocked(p: GridProblem, x: number, y: number): boolean {
  return isWall(x, y) || thingAt(p, x, y) >= 0;
}

export function missionText(p: GridProblem): string {
  const t = p.things[p.mission.target];
  return p.mission.kind === 'goto'
    ? `go to the ${name(t)}`
    : p.mission.kind === 'pickup'
      ? `pick up the ${name(t)}`
      : `open the ${name(t)}`;
}

function missionMet(p: GridProblem): boolean {
  const m = p.mission;
  if (m.kind === 'pickup') return p.carrying === m.target;
  if (m.kind === 'open') return p.things[m.target].open === true;
  const [fx, fy] = ahead(p);
  return thingAt(p, fx, fy) === m.target;
}

function relative(p: GridProblem, t: GridThing): string {
  const { x, y, dir } = p.agent;
  const fwd = (t.x - x) * DX[dir] + (t.y - y) * DY[dir];
  const right = (t.x - x) * DX[(dir + 1) % 4] + (t.y - y) * DY[(dir + 1) % 4];
  const parts: string[] = [];
  if (fwd) parts.push(`${Math.abs(fwd)} ${fwd > 0 ? 'forward' : 'back'}`);
  if (right) parts.push(`${Math.abs(right)} ${right > 0 ? 'right' : 'left'}`);
  return parts.join(' and ') || 'here';
}

export function describeGrid(p: GridProblem): string {
  const [fx, fy] = ahead(p);
  const front = thingAt(p, fx, fy);
  const frontText =
    front >= 0
      ? `the ${name(p.things[front])}${p.things[front].type === 'door' ? (p.things[front].open ? ' (open)' : ' (closed)') : ''}`
      : isWall(fx, fy)
        ? 'a wall'
        : 'empty floor';
  const seen = p.things
    .map((t, i) => ({ t, i }))
    .filter(({ i }) => i !== p.carrying)
    .map(({ t }) => `the ${name(t)}${t.type === 'door' ? (t.open ? ' (open)' : ' (closed)') : ''} ${relative(p, t)}`);
  const carried = p.carrying >= 0 ? `the ${name(p.things[p.carrying])}` : 'nothing';
  return `You face ${HEADINGS[p.agent.dir]}. Ahead: ${frontText}. You carry ${carried}. You see: ${seen.join('; ')}.`;
}

/**
 * Shortest action sequence (forward / left / right, then the mission's last action) that meets the
 * mission from the current state, by breadth-first search over (cell, heading); null when none.
 */
export function planGrid(p: GridProblem): string[] | null {
  const m = p.mission;
  const target = p.things[m.target];
  const final = m.kind === 'pickup' ? ['pickup'] : m.kind === 'open' ? ['toggle'] : [];
  const key = (x: number, y: number, d: number) => (y * GRID_SIZE + x) * 4 + d;
  const start = { x: p.agent.x, y: p.agent.y, dir: p.agent.dir };
  const prev = new Map<number, { from: number; action: string } | null>([[key(start.x, start.y, start.dir), null]]);
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const s = queue[head];
    const k = key(s.x, s.y, s.dir);
    const [fx, fy] = ahead(p, s.x, s.y, s.dir);
    if (fx === target.x && fy === target.y && p.carrying !== m.target) {
      const path: string[] = [];
      for (let at = prev.get(k); at; at = prev.get(at.from)) path.unshift(at.action);
      return [...path, ...final];
    }
    const next: [string, number, number, number][] = [
      ['left', s.x, s.y, (s.dir + 3) % 4],
      ['right', s.x, s.y, (s.dir + 1) % 4],
    ];
    if (!blocked(p, fx, fy)) next.push(['forward', fx, fy, s.dir]);
    for (const [action, x, y, dir] of next) {
      const nk = key(x, y, dir);
      if (prev.has(nk)) continue;
      prev.set(nk, { from: k, action });
      queue.push({ x, y, dir });
    }
  }
  return null;
}

function freeFloor(rng: Rng, p: Omit<GridProblem, 'prompt'>): [number, number] {
  for (;;) {
    const x = 1 + rng.int(GRID_SIZE - 2);
    const y = 1 + rng.int(GRID_SIZE - 2);
    if (!p.things.some((t) => t.x === x && t.y === y) && !(p.agent.x === x && p.agent.y === y)) return [x, y];
  }
}

function drawLayout(rng: Rng): Omit<GridProblem, 'prompt'> {
  const p: Omit<GridProblem, 'prompt'> = {
    things: [],
    agent: { x: 0, y: 0, dir: rng.int(4) },
    carrying: -1,
    mission: { kind: 'goto', target: 0 },
  };
  const kinds = new Set<string>();
  for (let n = 2 + rng.int(4); p.things.length < n; ) {
    const t = { type: OBJECT_TYPES[rng.int(3)], colour: COLOURS[rng.int(COLOURS.length)] };
    if (kinds.has(name({ ...t, x: 0, y: 0 }))) continue;
    kinds.add(name({ ...t, x: 0, y: 0 }));
    const [x, y] = freeFloor(rng, p);
    p.things.push({ ...t, x, y });
  }
  const doorColours = new Set<string>();
  for (let n = 1 + rng.int(2), tries = 0; doorColours.size < n && tries < 100; tries++) {
    const colour = COLOURS[rng.int(COLOURS.length)];
    const side = rng.int(4);
    const along = 1 + rng.int(GRID_SIZE - 2);
    const [x, y] = side === 0 ? [GRID_SIZE - 1, along] : side === 1 ? [along, GRID_SIZE - 1] : side === 2 ? [0, along] : [along, 0];
    if (doorColours.has(colour) || p.things.some((t) => t.x === x && t.y === y)) continue;
    doorColours.add(colour);
    p.things.push({ type: 'door', colour, x, y, open: false });
  }
  [p.agent.x, p.agent.y] = freeFloor(rng, p);
  return p;
}

export function drawGrid(rng: Rng): GridProblem {
  for (;;) {
    const p = { prompt: '', ...drawLayout(rng) };
    const doors = p.things.map((t, i) => ({ t, i })).filter(({ t }) => t.type === 'door');
    const objects = p.things.map((t, i) => ({ t, i })).filter(({ t }) => t.type !== 'door');
    const kind = (['goto', 'pickup', 'open'] as const)[rng.int(3)];
    const pool = kind === 'open' ? doors : objects;
    p.mission = { kind, target: pool[rng.int(pool.length)].i };
    // A layout whose target is walled in by objects, or that starts facing a go-to target, is redrawn.
    const plan = planGrid(p);
    if (!plan || (kind === 'goto' && plan.length === 0)) continue;
    p.prompt = [
      'You are in a grid world: one room with walls around it, objects on the floor and doors in the walls.',
      `Mission: ${missionText(p)}.`,
      'Actions: forward, left, right, pickup, drop, toggle (opens or closes a door ahead). Reply with one action per turn.',
      `Observation: ${describeGrid(p)}`,
      'Action:',
    ].join('\n');
    return p;
  }
}

function done(p: GridProblem, text: string, action: ReturnType<typeof parseAction>): Turn {
  const met = missionMet(p);
  return worldTurn({ text: met ? `${text} Mission complete.` : text, action, goal: met ? 1 : 0, done: met, success: met });
}

export function actGrid(p: GridProblem, completion: string): Turn {
  const a = parseAction(completion);
  if (!a || a.arg) return invalidTurn(a, 'write one action: forward, left, right, pickup, drop or toggle');
  const [fx, fy] = ahead(p);
  const front = thingAt(p, fx, fy);
  switch (a.verb) {
    case 'left':
    case 'right':
      p.agent.dir = (p.agent.dir + (a.verb === 'left' ? 3 : 1)) % 4;
      return done(p, describeGrid(p), a);
    case 'forward':
      if (blocked(p, fx, fy))
        return invalidTurn(a, `you cannot move forward: ${front >= 0 ? `the ${name(p.things[front])}` : 'a wall'} is in the way`);
      p.agent.x = fx;
      p.agent.y = fy;
      return done(p, describeGrid(p), a);
    case 'pickup':
      if (front < 0 || p.things[front].type === 'door') return invalidTurn(a, 'there is no object ahead to pick up');
      if (p.carrying >= 0) return invalidTurn(a, `you already carry the ${name(p.things[p.carrying])}; drop it first`);
      p.carrying = front;
      return done(p, `You pick up the ${name(p.things[front])}. ${describeGrid(p)}`, a);
    case 'drop': {
      if (p.carrying < 0) return invalidTurn(a, 'you carry nothing');
      if (blocked(p, fx, fy)) return invalidTurn(a, 'there is no free floor ahead to drop on');
      const t = p.things[p.carrying];
      [t.x, t.y] = [fx, fy];
      p.carrying = -1;
      return done(p, `You drop the ${name(t)}. ${describeGrid(p)}`, a);
    }
    case 'toggle': {
      if (front < 0 || p.things[front].type !== 'door') return invalidTurn(a, 'there is no door ahead');
      const door = p.things[front];
      door.open = !door.open;
      return done(p, `You ${door.open ? 'open' : 'close'} the ${name(door)}. ${describeGrid(p)}`, a);
    }
    default:
      return invalidTurn(a, `unknown action "${a.verb}"; actions: forward, left, right, pickup, drop, toggle`);
  }
}

/** The expert: the first action of the shortest plan from the current state. */
export const gridExpert: Expert<GridProblem> = (p) => {
  const plan = planGrid(p);
  if (!plan || plan.length === 0) throw new Error(`gridExpert: no plan to ${missionText(p)}`);
  return plan[0];
};

export class GridTask implements MultiTurnTextTask<GridProblem> {
  readonly name = 'GridGoals';
  readonly rewardComponents = WORLD_REWARDS;
  readonly numLevels = 1;
  draw(rng: Rng): GridProblem {
    return drawGrid(rng);
  }
  act(p: GridProblem, completion: string): Turn {
    return actGrid(p, completion);
  }
}

export const gridGoals: TextEnvSpec<typeof WORLD_OPTIONS> = {
  id: 'GridGoals',
  description: 'a BabyAI-like grid room in text: go to, pick up or open a coloured thing (multi-turn text)',
  options: WORLD_OPTIONS,
  make: (o) => new TextEnv(new GridTask(), o.max_episode_steps, o.max_completion_bytes),
};
