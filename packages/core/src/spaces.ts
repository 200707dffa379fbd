/**
 * Observation and action spaces, as Gymnasium defines them (Discrete, Box, MultiDiscrete), plus a
 * token-sequence space for text policies. Every space knows how it lays out in the flat buffers that
 * vector environments and trajectory chunks use: `flatSize` numbers per row, as int32 (discrete
 * kinds) or float32 (Box).
 */
import type { Rng } from './rng';

export type Space = Discrete | Box | MultiDiscrete | TokenSequence;

export class Discrete {
  readonly kind = 'discrete';
  readonly shape: readonly number[] = [];
  readonly flatSize = 1;
  readonly dtype = 'int32';
  constructor(readonly n: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`Discrete: n must be a positive integer, got ${n}`);
  }
  contains(x: number | ArrayLike<number>): boolean {
    const v = typeof x === 'number' ? x : x.length === 1 ? x[0] : Number.NaN;
    return Number.isInteger(v) && v >= 0 && v < this.n;
  }
  sample(rng: Rng): number {
    return rng.int(this.n);
  }
  toJSON() {
    return { kind: this.kind, n: this.n };
  }
}

const expand = (v: number | readonly number[], size: number, what: string): number[] => {
  if (typeof v === 'number') return new Array(size).fill(v);
  if (v.length !== size) throw new Error(`Box: ${what} has ${v.length} entries, shape holds ${size}`);
  return [...v];
};

/** A float32 box; `low` / `high` are per element (a scalar given to the constructor applies to all). */
export class Box {
  readonly kind = 'box';
  readonly size: number;
  readonly flatSize: number;
  readonly dtype = 'float32';
  readonly low: readonly number[];
  readonly high: readonly number[];
  constructor(
    low: number | readonly number[],
    high: number | readonly number[],
    readonly shape: readonly number[],
  ) {
    if (!shape.every((d) => Number.isInteger(d) && d >= 1))
      throw new Error(`Box: shape must hold positive integers, got [${shape.join(',')}]`);
    this.size = shape.reduce((a, b) => a * b, 1);
    this.flatSize = this.size;
    this.low = expand(low, this.size, 'low');
    this.high = expand(high, this.size, 'high');
    for (let i = 0; i < this.size; i++) {
      if (!(this.low[i] <= this.high[i])) throw new Error(`Box: low[${i}] ${this.low[i]} must not exceed high[${i}] ${this.high[i]}`);
    }
  }
  /** True when every bound is finite (a policy can then squash or clip into it). */
  get bounded(): boolean {
    return this.low.every(Number.isFinite) && this.high.every(Number.isFinite);
  }
  contains(x: ArrayLike<number>): boolean {
    if (x.length !== this.size) return false;
    for (let i = 0; i < x.length; i++) if (!(x[i] >= this.low[i] && x[i] <= this.high[i])) return false;
    return true;
  }
  sample(rng: Rng): Float32Array {
    return Float32Array.from({ length: this.size }, (_, i) => {
      const lo = Number.isFinite(this.low[i]) ? this.low[i] : -1;
      const hi = Number.isFinite(this.high[i]) ? this.high[i] : 1;
      return rng.uniformRange(lo, hi);
    });
  }
  toJSON() {
    return { kind: this.kind, low: [...this.low], high: [...this.high], shape: [...this.shape] };
  }
}

export class MultiDiscrete {
  readonly kind = 'multi_discrete';
  readonly shape: readonly number[];
  readonly flatSize: number;
  readonly dtype = 'int32';
  constructor(readonly nvec: readonly number[]) {
    if (nvec.length === 0 || !nvec.every((n) => Number.isInteger(n) && n >= 1))
      throw new Error(`MultiDiscrete: needs positive integer entries, got [${nvec.join(',')}]`);
    this.shape = [nvec.length];
    this.flatSize = nvec.length;
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

/**
 * A sequence of token ids from a vocabulary, at most `maxLength` long (prompts and completions of
 * text policies). Flat layout: `maxLength` int32 ids, padded with `padId` past the sequence's length.
 */
export class TokenSequence {
  readonly kind = 'token_sequence';
  readonly shape: readonly number[];
  readonly flatSize: number;
  readonly dtype = 'int32';
  constructor(
    readonly vocabSize: number,
    readonly maxLength: number,
    readonly padId = 0,
  ) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1)
      throw new Error(`TokenSequence: vocabSize must be a positive integer, got ${vocabSize}`);
    if (!Number.isInteger(maxLength) || maxLength < 1)
      throw new Error(`TokenSequence: maxLength must be a positive integer, got ${maxLength}`);
    if (!Number.isInteger(padId) || padId < 0 || padId >= vocabSize)
      throw new Error(`TokenSequence: padId must be a token id, got ${padId}`);
    this.shape = [maxLength];
    this.flatSize = maxLength;
  }
  contains(x: ArrayLike<number>): boolean {
    if (x.length > this.maxLength) return false;
    for (let i = 0; i < x.length; i++) if (!Number.isInteger(x[i]) || x[i] < 0 || x[i] >= this.vocabSize) return false;
    return true;
  }
  sample(rng: Rng): Int32Array {
    return Int32Array.from({ length: this.maxLength }, () => rng.int(this.vocabSize));
  }
  toJSON() {
    return { kind: this.kind, vocab_size: this.vocabSize, max_length: this.maxLength, pad_id: this.padId };
  }
}

export type SpaceJson =
  | { kind: 'discrete'; n: number }
  | { kind: 'box'; low: number | number[]; high: number | number[]; shape: number[] }
  | { kind: 'multi_discrete'; nvec: number[] }
  | { kind: 'token_sequence'; vocab_size: number; max_length: number; pad_id?: number };

export function spaceFromJSON(j: SpaceJson): Space {
  switch (j.kind) {
    case 'discrete':
      return new Discrete(j.n);
    case 'box':
      return new Box(j.low ?? Number.NEGATIVE_INFINITY, j.high ?? Number.POSITIVE_INFINITY, j.shape ?? []);
    case 'multi_discrete':
      return new MultiDiscrete(j.nvec ?? []);
    case 'token_sequence':
      return new TokenSequence(j.vocab_size, j.max_length, j.pad_id ?? 0);
    default:
      throw new Error(`unknown space kind ${(j as { kind: string }).kind}`);
  }
}

/** A row buffer for `rows` values of `space` (int32 for discrete kinds, float32 for Box). */
export function allocRows(space: Space, rows: number): Int32Array | Float32Array {
  return space.dtype === 'float32' ? new Float32Array(rows * space.flatSize) : new Int32Array(rows * space.flatSize);
}
