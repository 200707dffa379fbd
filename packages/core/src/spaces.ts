/** Observation and action spaces, as Gymnasium defines them (Discrete, Box, MultiDiscrete). */
import type { Rng } from './rng';

export type Space = Discrete | Box | MultiDiscrete;

export class Discrete {
  readonly kind = 'discrete';
  readonly shape: readonly number[] = [];
  constructor(readonly n: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`Discrete: n must be a positive integer, got ${n}`);
  }
  contains(x: number): boolean {
    return Number.isInteger(x) && x >= 0 && x < this.n;
  }
  sample(rng: Rng): number {
    return rng.int(this.n);
  }
  toJSON() {
    return { kind: this.kind, n: this.n };
  }
}

/** A float32 box with per-space bounds (scalar low/high apply to every element). */
export class Box {
  readonly kind = 'box';
  readonly size: number;
  constructor(
    readonly low: number,
    readonly high: number,
    readonly shape: readonly number[],
  ) {
    if (!(low <= high)) throw new Error(`Box: low ${low} must not exceed high ${high}`);
    this.size = shape.reduce((a, b) => a * b, 1);
  }
  contains(x: ArrayLike<number>): boolean {
    if (x.length !== this.size) return false;
    for (let i = 0; i < x.length; i++) if (!(x[i] >= this.low && x[i] <= this.high)) return false;
    return true;
  }
  sample(rng: Rng): Float32Array {
    const lo = Number.isFinite(this.low) ? this.low : -1;
    const hi = Number.isFinite(this.high) ? this.high : 1;
    return Float32Array.from({ length: this.size }, () => rng.uniformRange(lo, hi));
  }
  toJSON() {
    return { kind: this.kind, low: this.low, high: this.high, shape: [...this.shape] };
  }
}

export class MultiDiscrete {
  readonly kind = 'multi_discrete';
  readonly shape: readonly number[];
  constructor(readonly nvec: readonly number[]) {
    if (!nvec.every((n) => Number.isInteger(n) && n >= 1))
      throw new Error(`MultiDiscrete: every entry must be a positive integer, got [${nvec.join(',')}]`);
    this.shape = [nvec.length];
  }
  contains(x: ArrayLike<number>): boolean {
    if (x.length !== this.nvec.length) return false;
    for (let i = 0; i < x.length; i++) if (!Number.isInteger(x[i]) || x[i] < 0 || x[i] >= this.nvec[i]) return false;
    return true;
  }
  sample(rng: Rng): Int32Array {
    return Int32Array.from(this.nvec, (n) => rng.int(n));
  }
  toJSON() {
    return { kind: this.kind, nvec: [...this.nvec] };
  }
}

export function spaceFromJSON(j: { kind: string; n?: number; low?: number; high?: number; shape?: number[]; nvec?: number[] }): Space {
  switch (j.kind) {
    case 'discrete':
      return new Discrete(j.n ?? 0);
    case 'box':
      return new Box(j.low ?? -Infinity, j.high ?? Infinity, j.shape ?? []);
    case 'multi_discrete':
      return new MultiDiscrete(j.nvec ?? []);
    default:
      throw new Error(`unknown space kind ${j.kind}`);
  }
}
