/**
 * Automatic dropout: when the archive holds more trajectories than a training batch needs, drop a
 * share of them before judging, which saves judge calls and keeps the trainer from seeing the same
 * market over and over.
 *
 * The rule: with `available` trajectories and `target` wanted, the rate is
 * `min(maxRate, 1 - target / available)` (0 when available <= target), and `maxRate` defaults to
 * 0.3: 5,000 available for a batch of 1,000 gives 30% (capped), keeping about 3,500.
 *
 * It is applied per window, because a window is a GRPO group whose members must stay comparable:
 * each window of n trajectories loses exactly floor(rate * n) of them, chosen by a seeded shuffle
 * keyed by the window id (the same seed drops the same trajectories whatever other windows exist).
 * So the cap holds in every window, not just on average, and a window of n >= 2 keeps at least 2
 * (floor(0.3 n) <= n - 2 for every n >= 2 when maxRate <= 0.5).
 */
import { Rng } from '@rlmesh/core';
import { ArchiveInputError } from './errors';

export const MAX_DROPOUT_RATE = 0.3;

export function dropoutRate(available: number, target: number, maxRate = MAX_DROPOUT_RATE): number {
  if (!Number.isInteger(available) || available < 0)
    throw new ArchiveInputError(`available: must be a non-negative integer, got ${available}`);
  if (!Number.isInteger(target) || target < 1) throw new ArchiveInputError(`target: must be a positive integer, got ${target}`);
  if (!(maxRate >= 0 && maxRate <= 0.5)) throw new ArchiveInputError(`maxDropout: must be in [0, 0.5], got ${maxRate}`);
  if (available <= target) return 0;
  return Math.min(maxRate, 1 - target / available);
}

/** FNV-1a: a stable 32-bit hash of the window id, mixed into the seed. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export interface DropoutResult<T> {
  rate: number;
  available: number;
  kept: number;
  /** Each input window with the members it keeps, in their original order. */
  windows: { windowId: string; members: T[] }[];
}

/** Applies the rate to each window; `seed` makes the choice reproducible. */
export function applyDropout<T>(
  windows: { windowId: string; members: T[] }[],
  options: { target: number; seed: number; maxRate?: number },
): DropoutResult<T> {
  if (!Number.isInteger(options.seed)) throw new ArchiveInputError(`seed: must be an integer, got ${options.seed}`);
  const available = windows.reduce((n, w) => n + w.members.length, 0);
  const rate = dropoutRate(available, options.target, options.maxRate);
  const out = windows.map(({ windowId, members }) => {
    // 1 - 4/5 is 0.19999999999999996 in floating point; the epsilon keeps floor(0.2 * 5) at 1. A true
    // fraction below an integer is at least 1/available away from it, far above the epsilon.
    const drop = Math.floor(rate * members.length + 1e-9);
    if (drop === 0) return { windowId, members: [...members] };
    const rng = new Rng((options.seed ^ hash32(windowId)) >>> 0);
    const order = rng.shuffle(members.map((_, i) => i));
    const dropped = new Set(order.slice(0, drop));
    return { windowId, members: members.filter((_, i) => !dropped.has(i)) };
  });
  return { rate, available, kept: out.reduce((n, w) => n + w.members.length, 0), windows: out };
}
