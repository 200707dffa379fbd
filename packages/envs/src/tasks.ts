/**
 * Symbolic WMIL tasks (phase 1's PatternEcho and the phase 2 tasks). Symbols are arbitrary discrete ids shown one-hot
 * (design decision 3: symbols, not tokens). Each task defines its hidden state, the observation, the
 * one correct action, and the transition; the DeterministicParent turns these into rewards.
 */
import type { Rng } from '@rlmesh/core';

export interface SymbolicTask<S = unknown> {
  readonly name: string;
  readonly numActions: number;
  readonly obsDim: number;
  readonly numLevels: number;
  /** The hidden state at the start of an episode of difficulty `level`. */
  initial(rng: Rng, level: number): S;
  /** Writes the observation of `state` (obsDim floats) at out[offset..]. */
  observe(state: S, out: Float32Array, offset: number): void;
  /** The action that earns goal reward 1 in `state`. */
  correct(state: S): number;
  /** The state after `action` (a task's dynamics may ignore the action). */
  next(state: S, action: number, rng: Rng, level: number): S;
}

/**
 * PatternEcho: the observation is the one-hot target t in [0, N); the correct action is t;
 * the next target is uniform at random. One level.
 */
export class PatternEcho implements SymbolicTask<number> {
  readonly name = 'pattern_echo';
  readonly numLevels = 1;
  readonly obsDim: number;
  constructor(readonly numActions = 8) {
    this.obsDim = numActions;
  }
  initial(rng: Rng): number {
    return rng.int(this.numActions);
  }
  observe(t: number, out: Float32Array, offset: number): void {
    out.fill(0, offset, offset + this.obsDim);
    out[offset + t] = 1;
  }
  correct(t: number): number {
    return t;
  }
  next(_t: number, _a: number, rng: Rng): number {
    return rng.int(this.numActions);
  }
}

export interface SequenceState {
  /** The last `window` symbols, oldest first. */
  seen: number[];
  step: number;
}

/**
 * SequenceNext: an arithmetic sequence x_{t+1} = (x_t + k) mod N. The observation is the one-hots of
 * the last `window` symbols, oldest first (obsDim = window * N); the correct action is the next
 * symbol. On each step the sequence advances by its true next element, whatever the action. The step
 * k is drawn per episode: level 0: k = 1; level 1: k in {1, 2}; level 2: k in {1, 2, 3}.
 */
export class SequenceNext implements SymbolicTask<SequenceState> {
  readonly name = 'sequence_next';
  readonly numLevels = 3;
  readonly obsDim: number;
  constructor(
    readonly numActions = 8,
    readonly window = 3,
  ) {
    if (window < 2) throw new Error(`SequenceNext: window must be >= 2 to show the step, got ${window}`);
    this.obsDim = window * numActions;
  }
  initial(rng: Rng, level: number): SequenceState {
    const step = 1 + rng.int(level + 1);
    const start = rng.int(this.numActions);
    return { step, seen: Array.from({ length: this.window }, (_, i) => (start + i * step) % this.numActions) };
  }
  observe(s: SequenceState, out: Float32Array, offset: number): void {
    out.fill(0, offset, offset + this.obsDim);
    s.seen.forEach((x, i) => {
      out[offset + i * this.numActions + x] = 1;
    });
  }
  correct(s: SequenceState): number {
    return (s.seen[s.seen.length - 1] + s.step) % this.numActions;
  }
  next(s: SequenceState): SequenceState {
    return { step: s.step, seen: [...s.seen.slice(1), this.correct(s)] };
  }
}

export interface ConditionalState {
  target: number;
  rule: number;
}

/**
 * Conditional: the observation is one-hot target t (N) followed by one-hot rule r (3). Rule 0: echo,
 * the correct action is t; rule 1: mirror, N-1-t; rule 2: successor, (t+1) mod N. Level 0 uses rule
 * 0 only, level 1 rules {0, 1}, level 2 rules {0, 1, 2}. The next state draws a new target and rule.
 */
export class Conditional implements SymbolicTask<ConditionalState> {
  readonly name = 'conditional';
  readonly numLevels = 3;
  readonly obsDim: number;
  constructor(readonly numActions = 8) {
    this.obsDim = numActions + 3;
  }
  initial(rng: Rng, level: number): ConditionalState {
    return { target: rng.int(this.numActions), rule: rng.int(level + 1) };
  }
  observe(s: ConditionalState, out: Float32Array, offset: number): void {
    out.fill(0, offset, offset + this.obsDim);
    out[offset + s.target] = 1;
    out[offset + this.numActions + s.rule] = 1;
  }
  correct(s: ConditionalState): number {
    const n = this.numActions;
    return s.rule === 0 ? s.target : s.rule === 1 ? n - 1 - s.target : (s.target + 1) % n;
  }
  next(_s: ConditionalState, _a: number, rng: Rng, level: number): ConditionalState {
    return this.initial(rng, level);
  }
}
