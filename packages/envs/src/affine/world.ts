/**
 * What the multi-turn worlds share: their reward components, the action grammar, how a reply is
 * written into the conversation, and the options every world takes.
 *
 * Rewards (the AgentGym shaping of Affine's training guide; components stay apart until the learner weights them):
 *   goal      on the turn the task is completed: 1 (the shop: the purchase's match score, 1 when exact)
 *   progress  the world's step rewards for useful actions, each paid at most once per unit of need
 *   invalid   INVALID_PENALTY for an action the world cannot parse or carry out
 *
 * Actions are the first non-blank line of a completion, `verb` or `verb[argument]`, case-insensitive.
 * An episode ends terminated when the goal is met (or the shop's buy), truncated after
 * max_episode_steps actions (50, its max_episode_length) otherwise.
 */
import { DEFAULT_MAX_COMPLETION_BYTES, type Schema, type Turn } from '@rlmesh/core';
import { firstLine } from './common';

export const WORLD_REWARDS = ['goal', 'progress', 'invalid'] as const;
export const INVALID_PENALTY = -0.05;
export const DEFAULT_MAX_WORLD_STEPS = 50;

export interface Action {
  verb: string;
  /** The text inside the brackets, trimmed and lower-cased; '' without brackets. */
  arg: string;
}

const ACTION = /^([a-z][a-z ]*?)\s*(?:\[(.*)\])?$/i;

/** The action of a completion, or null when its first line is not `verb` or `verb[arg]`. */
export function parseAction(completion: string): Action | null {
  const line = firstLine(completion);
  const m = line === null ? null : ACTION.exec(line);
  if (!m) return null;
  return { verb: m[1].toLowerCase(), arg: (m[2] ?? '').trim().toLowerCase().replace(/\s+/g, ' ') };
}

/** How a reply joins the conversation: what the policy reads after its action, ending with the next cue. */
export function reply(text: string, done: boolean): string {
  return done ? `\nObservation: ${text}` : `\nObservation: ${text}\nAction:`;
}

export function formatAction(a: Action): string {
  return a.arg ? `${a.verb}[${a.arg}]` : a.verb;
}

/** A turn of a world: rewards filled in by name, the reply formatted. */
export function worldTurn(o: {
  text: string;
  action: Action | null;
  goal?: number;
  progress?: number;
  invalid?: boolean;
  done?: boolean;
  success?: boolean;
}): Turn {
  const done = o.done ?? false;
  return {
    reward: { goal: o.goal ?? 0, progress: o.progress ?? 0, invalid: o.invalid ? INVALID_PENALTY : 0 },
    success: o.success ?? false,
    parsed: o.action && formatAction(o.action),
    observation: reply(o.text, done),
    done,
  };
}

/** The turn for an action the world cannot parse or carry out. */
export function invalidTurn(action: Action | null, why: string): Turn {
  return worldTurn({ text: `Invalid action: ${why}`, action, invalid: true });
}

export const WORLD_OPTIONS = {
  max_episode_steps: {
    kind: 'int',
    default: DEFAULT_MAX_WORLD_STEPS,
    min: 1,
    max: 500,
    doc: 'actions before the episode is truncated',
  },
  max_completion_bytes: { kind: 'int', default: DEFAULT_MAX_COMPLETION_BYTES, min: 1, max: 1 << 20, doc: 'longest completion accepted' },
} as const satisfies Schema;

/** A scripted expert: the next action for a world's state (what the SFT demonstrations are made of). */
export type Expert<P> = (problem: P) => string;
